"""What every desk page shares: whose desk it is, the reader's language, and amounts and times as typed."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from api.web.templating import gettext, render
from escrow.access.callers import Role, require_role
from escrow.access.users import SignedIn
from escrow.db.records import Institution
from escrow.ids import new_id
from escrow.registry.institutions import visible_institution
from escrow.rules.calendar import BUSINESS_TZ
from escrow.rules.money import parse_yuan

Translate = Callable[[str], str]
_LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")


async def posted_form(request: Request) -> dict[str, str]:
    """A post's text fields (parsed once: the CSRF check reads the same form)."""
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


FormDep = Annotated[dict[str, str], Depends(posted_form)]


def institution_of(person: SignedIn) -> UUID:
    """The institution whose desk this is: its own staff's only; anyone else is told 'not found'."""
    require_role(person.caller, Role.INSTITUTION)
    assert person.caller.institution_id is not None, "institution staff belong to an institution"
    return person.caller.institution_id


def translator(request: Request) -> Translate:
    return lambda message: gettext(request, message)


def desk_page(
    request: Request,
    session: Session,
    person: SignedIn,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> HTMLResponse:
    """A desk page with its institution (name, status) for the header and the hold banner."""
    institution: Institution = visible_institution(session, person.caller, institution_of(person))
    return render(request, template, {"person": person, "institution": institution, **context}, status)


def fen_of(text: str) -> int | None:
    """'6,000' or '6000.50' yuan as fen; None when it is not a positive amount with at most two decimals."""
    try:
        fen = parse_yuan(text)
    except ValueError:
        return None
    return fen if fen > 0 else None


def beijing_instant(text: str) -> datetime | None:
    """'2026-12-01T10:30' or '2026-12-01 10:30[:00]', read as Beijing time; None when not such a time."""
    if not _LOCAL_TIME.match(text.strip()):
        return None
    try:
        return datetime.fromisoformat(text.strip().replace(" ", "T")).replace(tzinfo=BUSINESS_TZ)
    except ValueError:
        return None


def new_key(kind: str) -> str:
    """An idempotency key for one form as shown: sent twice (a double click, a reload), it acts once."""
    return f"desk-{kind}-{new_id()}"


def to_uuid(text: str) -> UUID | None:
    try:
        return UUID(text.strip())
    except ValueError:
        return None
