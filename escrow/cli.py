"""The `escrow` command line."""

from __future__ import annotations

import logging
import os
import signal

import typer

from escrow.database import make_engine, migration_status, resolve_database_url, upgrade_to_head
from escrow.settings import get_settings

app = typer.Typer(
    help="Ledger and escrow engine for supervised prepaid tuition.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema: apply and inspect migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _migrated_url() -> str:
    url = resolve_database_url(get_settings())
    engine = make_engine(url, pool_size=1)
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    return url


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(1, min=1, help="worker processes"),
) -> None:
    """Migrate the database to head, then serve the HTTP API (embedded PostgreSQL when no URL is set)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    url = _migrated_url()
    # workers are new processes: hand them the server this process started or was given
    os.environ["ESCROW_DATABASE_URL"] = url
    get_settings.cache_clear()
    # uvicorn re-raises SIGTERM once it has shut down; exit normally instead so that the
    # embedded PostgreSQL is stopped by its exit hook
    signal.signal(signal.SIGTERM, _exit_quietly)
    typer.echo(f"escrow serving on http://{host}:{port} (docs at /docs)")
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, workers=workers)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    url = _migrated_url()
    engine = make_engine(url, pool_size=1)
    current, _ = migration_status(engine)
    engine.dispose()
    typer.echo(f"database at {current}")


@db_app.command("status")
def db_status() -> None:
    """Show the database's migration and the code's head; exit 1 when they differ."""
    engine = make_engine(resolve_database_url(get_settings()), pool_size=1)
    current, head = migration_status(engine)
    engine.dispose()
    typer.echo(f"database: {current}\ncode head: {head}")
    raise typer.Exit(0 if current == head else 1)
