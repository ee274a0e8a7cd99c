"""The desk's dashboard: the money (held, releasable, paid out, refunds owed) and what is coming due."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.auth import Now
from api.deps import SessionDep
from api.web.desk.common import desk_page, institution_of
from api.web.routing import PageRoute
from api.web.sessions import PersonDep
from escrow.flows.books import institution_balances
from escrow.flows.desk import desk_agenda

router = APIRouter(prefix="/desk", include_in_schema=False, route_class=PageRoute)


@router.get("")
def dashboard_page(request: Request, session: SessionDep, person: PersonDep, now: Now) -> Response:
    institution_id = institution_of(person)
    balances = institution_balances(session, caller=person.caller, institution_id=institution_id, as_of=None)
    agenda = desk_agenda(session, caller=person.caller, institution_id=institution_id, now=now)
    context = {"now": now, "balances": balances.by_kind, "agenda": agenda}
    return desk_page(request, session, person, "desk/dashboard.html", context)
