"""Jurisdictions and their policy versions (regulators)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented
from api.schemas import Day, JurisdictionOut, PageOf, PolicyIn, PolicyOut
from escrow.registry import jurisdictions
from escrow.registry.calendar import jurisdiction_today
from escrow.rules.policy import Policy

router = APIRouter(prefix="/jurisdictions", tags=["policy"], route_class=ApiRoute)
Code = Annotated[str, Path(pattern=r"^[0-9]{6}$", description="6-digit administrative division code")]


def _out(code: str, effective: date | None, policy: Policy) -> PolicyOut:
    return PolicyOut(jurisdiction_code=code, effective_date=effective, **policy_fields(policy))


def policy_fields(policy: Policy) -> dict[str, object]:
    return {
        "max_months": policy.max_months,
        "max_hours": policy.max_hours,
        "max_non_subject_fen": policy.max_non_subject_fen,
        "guide_price_margin_bp": policy.guide_price_margin_bp,
        "confirm_after_working_days": policy.confirm_after_working_days,
        "refund_response_working_days": policy.refund_response_working_days,
        "max_class_backdate_days": policy.max_class_backdate_days,
        "max_term_start_past_days": policy.max_term_start_past_days,
        "release_cadence": policy.release_cadence,
        "release_tranches_pct": list(policy.release_tranches_pct),
        "default_supervision_model": policy.default_supervision_model,
        "alert_thresholds": dict(policy.alert_thresholds),
    }


@router.get("", operation_id="list_jurisdictions", responses=documented(403))
def list_jurisdictions(session: SessionDep, caller: CallerDep) -> PageOf[JurisdictionOut]:
    """The jurisdictions this regulator supervises."""
    page = jurisdictions.list_jurisdictions(session, caller=caller)
    return PageOf(items=[JurisdictionOut.model_validate(j) for j in page.items], next_cursor=None)


@router.get("/{code}/policies", operation_id="list_policy_versions", responses=documented(403, 404))
def list_policies(code: Code, session: SessionDep, caller: CallerDep) -> PageOf[PolicyOut]:
    """Every policy version of a jurisdiction, oldest first."""
    page = jurisdictions.list_policies(session, caller=caller, jurisdiction_code=code)
    items = [_out(code, v.effective_date, jurisdictions.policy_of(v)) for v in page.items]
    return PageOf(items=items, next_cursor=None)


@router.post("/{code}/policies", status_code=201, operation_id="set_policy", responses=documented(403, 404, 409))
def set_policy(code: Code, body: PolicyIn, session: SessionDep, caller: CallerDep, now: Now) -> PolicyOut:
    """Add a policy version that takes effect on `effective_date` (today or later)."""
    fields = body.model_dump(exclude={"effective_date"})
    fields["release_tranches_pct"] = tuple(fields["release_tranches_pct"])
    row = jurisdictions.set_policy(
        session,
        caller=caller,
        jurisdiction_code=code,
        effective_date=body.effective_date,
        policy=Policy(**fields),
        today=jurisdiction_today(session, jurisdiction_code=code, now=now),
    )
    return _out(code, row.effective_date, jurisdictions.policy_of(row))


@router.get("/{code}/policy", operation_id="get_policy_in_force", responses=documented(403, 404))
def policy_in_force(
    code: Code, session: SessionDep, caller: CallerDep, now: Now, on: Annotated[Day | None, Query()] = None
) -> PolicyOut:
    """The policy in force on a date (default today): the latest version, or the national defaults."""
    jurisdictions.visible_jurisdiction(session, caller, code)
    policy, effective = jurisdictions.policy_in_force(
        session, jurisdiction_code=code, on=on or jurisdiction_today(session, jurisdiction_code=code, now=now)
    )
    return _out(code, effective, policy)
