"""A parent's home (what waits for them, their contracts), a contract's hours and money, and its terms."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import SessionDep
from api.web.phone.face import PREFIX, ParentDep, PhoneRoute, phone_page
from escrow.families.overview import contract_classes, contract_summary, contract_terms, my_contracts, waiting_classes
from escrow.families.refunds import my_refunds

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PhoneRoute)


@router.get("/home")
def home_page(request: Request, session: SessionDep, person: ParentDep) -> Response:
    caller = person.caller
    context = {
        "contracts": my_contracts(session, caller=caller),
        "waiting": waiting_classes(session, caller=caller),
        "refunds": [r for r in my_refunds(session, caller=caller) if r.paid_at is None],
    }
    return phone_page(request, session, person, "m/home.html", context)


@router.get("/contracts/{institution_id}/{contract_id}")
def contract_page(
    request: Request, session: SessionDep, person: ParentDep, institution_id: UUID, contract_id: UUID
) -> Response:
    caller = person.caller
    context = {
        "summary": contract_summary(session, caller=caller, institution_id=institution_id, contract_id=contract_id),
        "classes": contract_classes(session, caller=caller, institution_id=institution_id, contract_id=contract_id),
    }
    return phone_page(request, session, person, "m/contract.html", context)


@router.get("/contracts/{institution_id}/{contract_id}/terms")
def terms_page(
    request: Request, session: SessionDep, person: ParentDep, institution_id: UUID, contract_id: UUID
) -> Response:
    terms = contract_terms(session, caller=person.caller, institution_id=institution_id, contract_id=contract_id)
    return phone_page(request, session, person, "m/terms.html", {"terms": terms})
