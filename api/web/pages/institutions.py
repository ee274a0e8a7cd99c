"""Institutions: search and filter; an institution's page; a contract's transactions and postings."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import SessionDep
from api.web.routing import PageRoute
from api.web.sessions import PersonDep
from api.web.templating import render
from escrow.access.audit import institution_trail
from escrow.access.callers import Role, require_role
from escrow.access.users import SignedIn, list_staff
from escrow.bank.statements import list_statements
from escrow.families.complaints import recent_complaints
from escrow.families.evaluations import evaluation_summary, recent_evaluations
from escrow.flows.books import institution_balances, list_transactions
from escrow.flows.classes import list_classes
from escrow.flows.holds import list_holds
from escrow.registry.contracts import get_contract
from escrow.registry.institutions import visible_institution
from escrow.rules.states import InstitutionStatus
from escrow.supervision import dashboard, reports
from escrow.supervision.alerts import list_alerts

router = APIRouter(prefix="/console/institutions", include_in_schema=False, route_class=PageRoute)
STATUSES = tuple(InstitutionStatus)
MODELS = ("custody", "reserve")


@router.get("")
def institutions_page(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    q: str = "",
    status: str = "",
    model: str = "",
    alerts: str = "",
) -> Response:
    rows = dashboard.find_institutions(
        session,
        caller=person.caller,
        text_query=q,
        status=status if status in STATUSES else None,
        supervision_model=model if model in MODELS else None,
        with_open_alerts=alerts == "open",
    )
    filters = {"q": q, "status": status, "model": model, "alerts": alerts}
    context = {"person": person, "rows": rows, "filters": filters, "statuses": STATUSES, "models": MODELS}
    template = "institutions_rows.html" if request.headers.get("HX-Request") else "institutions.html"
    return render(request, template, context)


@router.get("/{institution_id}")
def institution_page(request: Request, session: SessionDep, person: PersonDep, institution_id: UUID) -> Response:
    return render(request, "institution.html", institution_context(session, person, institution_id))


def institution_context(
    session: SessionDep, person: SignedIn, institution_id: UUID, errors: dict[str, str] | None = None
) -> dict[str, Any]:
    """What the institution's page shows (and the forms on it, with what was wrong with a refused one)."""
    caller = person.caller
    require_role(caller, Role.REGULATOR)  # the regulator's console; an institution's desk is its own face
    institution = visible_institution(session, caller, institution_id)
    trend = dashboard.held_by_day(session, caller=caller, institution_id=institution_id)
    trail, chain_break = institution_trail(session, scope=caller, institution_id=institution_id)
    return {
        "person": person,
        "institution": institution,
        "errors": errors or {},
        "balances": institution_balances(session, caller=caller, institution_id=institution_id, as_of=None),
        "contracts": reports.held_contracts(
            session, caller=caller, institution_id=institution_id, as_of=None, cursor=None, limit=100
        ).items,
        "alerts": list_alerts(
            session,
            caller=caller,
            institution_id=institution_id,
            rule=None,
            severity=None,
            state=None,
            cursor=None,
            limit=100,
        ).items,
        "holds": list_holds(session, caller=caller, institution_id=institution_id).items,
        "statements": list_statements(
            session, caller=caller, institution_id=institution_id, on=None, cursor=None, limit=30
        ).items,
        "staff": list_staff(session, caller=caller, institution_id=institution_id),
        "evaluations": evaluation_summary(session, caller=caller, institution_id=institution_id),
        "comments": recent_evaluations(session, caller=caller, institution_id=institution_id, limit=10),
        "complaints": recent_complaints(session, caller=caller, institution_id=institution_id, limit=10),
        "trail": trail,
        "chain_break": chain_break,
        "trend": json.dumps({"days": [d.day.isoformat() for d in trend], "held": [d.held_fen for d in trend]}),
    }


@router.get("/{institution_id}/contracts/{contract_id}")
def contract_page(
    request: Request, session: SessionDep, person: PersonDep, institution_id: UUID, contract_id: UUID
) -> Response:
    return render(request, "contract.html", contract_context(session, person, institution_id, contract_id))


def contract_context(
    session: SessionDep,
    person: SignedIn,
    institution_id: UUID,
    contract_id: UUID,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What a contract's page shows: its classes (a dispute resolved there) and its transactions."""
    caller = person.caller
    require_role(caller, Role.REGULATOR)
    contract = get_contract(session, caller=caller, institution_id=institution_id, contract_id=contract_id)
    return {
        "person": person,
        "errors": errors or {},
        "institution": visible_institution(session, caller, institution_id),
        "contract": contract,
        "classes": list_classes(
            session, caller=caller, institution_id=institution_id, contract_id=contract_id, cursor=None, limit=100
        ).items,
        "transactions": list_transactions(
            session, caller=caller, institution_id=institution_id, contract_id=contract_id, cursor=None, limit=100
        ).items,
    }
