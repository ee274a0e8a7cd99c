"""The demo's database: the one every command uses, made anew, and never one the demo did not make."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from escrow.db.database import normalize_url
from escrow.db.embedded import recreate_marked_database, start_embedded
from escrow.errors import EscrowError
from escrow.settings import Settings

DEMO_MARK = "made by escrow demo, which may drop it"


def make_demo_database(settings: Settings) -> str:
    """The database every command uses (the embedded server's, or ESCROW_DATABASE_URL's), made anew and
    marked as the demo's; one the demo did not make is refused with the setting to change. Its URL."""
    if settings.database_url:
        target = normalize_url(settings.database_url)
        hint = "set ESCROW_DATABASE_URL to a database of its own, e.g. one ending /escrow_demo"
    else:
        server = make_url(start_embedded(settings.data_dir, "postgres"))
        target = server.set(database=settings.embedded_database_name).render_as_string(hide_password=False)
        hint = "set ESCROW_EMBEDDED_DATABASE_NAME to another name, e.g. escrow_demo"
    try:
        return recreate_marked_database(target, mark=DEMO_MARK)
    except EscrowError as exc:
        raise EscrowError(f"{exc.detail}; to seed a demo, {hint}") from None
