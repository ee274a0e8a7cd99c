"""The custody bank's daily statements of the institution's account, as imported and reconciled."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import SessionDep
from api.web.desk.common import desk_page, institution_of
from api.web.routing import PageRoute
from api.web.sessions import PersonDep
from escrow.bank.statements import get_statement, list_statements

router = APIRouter(prefix="/desk/statements", include_in_schema=False, route_class=PageRoute)
SHOWN = 90  # about a quarter of daily statements


@router.get("")
def statements_page(request: Request, session: SessionDep, person: PersonDep) -> Response:
    institution_id = institution_of(person)
    page = list_statements(
        session, caller=person.caller, institution_id=institution_id, on=None, cursor=None, limit=200
    )
    statements = sorted(page.items, key=lambda s: (s.statement_date, s.imported_at), reverse=True)[:SHOWN]
    return desk_page(request, session, person, "desk/statements.html", {"statements": statements})


@router.get("/{statement_id}")
def statement_page(request: Request, session: SessionDep, person: PersonDep, statement_id: UUID) -> Response:
    statement, lines = get_statement(
        session, caller=person.caller, institution_id=institution_of(person), statement_id=statement_id
    )
    return desk_page(request, session, person, "desk/statement.html", {"statement": statement, "lines": lines})
