"""Alembic environment: the schema is made only here, by hand-written migrations."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine


def run(connection: Connection) -> None:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    given = context.config.attributes.get("connection")
    if given is not None:
        run(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        from escrow.db.database import resolve_database_url
        from escrow.settings import get_settings

        url = resolve_database_url(get_settings())
    engine = create_engine(url)
    with engine.connect() as connection:
        run(connection)
        connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: the triggers need a live database")
main()
