"""Jurisdictions and their policy versions: the rules in force on a date, or the national defaults."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.access.audit import OPERATOR, note
from escrow.access.callers import Caller, Role, require_role
from escrow.db.paging import Page
from escrow.db.records import Jurisdiction, PolicyVersion
from escrow.errors import Conflict, InvalidRequest, NotFound, PolicyViolation
from escrow.rules.policy import NATIONAL_DEFAULTS, Policy, ReleaseCadence, SupervisionModel, policy_problems


def add_jurisdiction(session: Session, *, code: str, name: str) -> Jurisdiction:
    """Register a jurisdiction by its 6-digit administrative division code (an operator's command)."""
    if not (len(code) == 6 and code.isdigit()):
        raise InvalidRequest(f"a jurisdiction code is a 6-digit administrative division code, got {code!r}")
    existing = session.get(Jurisdiction, code)
    if existing is not None:
        return existing
    row = Jurisdiction(code=code, name=name)
    session.add(row)
    session.flush()
    note(
        session,
        OPERATOR,
        "jurisdiction.added",
        institution_id=None,
        object_type="jurisdiction",
        object_id=code,
        after={"name": name},
    )
    return row


def visible_jurisdiction(session: Session, caller: Caller, code: str) -> Jurisdiction:
    require_role(caller, Role.REGULATOR)
    row = session.get(Jurisdiction, code) if code in caller.jurisdictions else None
    if row is None:
        raise NotFound(f"jurisdiction {code} does not exist or is outside your scope")
    return row


def list_jurisdictions(session: Session, *, caller: Caller) -> Page[Jurisdiction]:
    require_role(caller, Role.REGULATOR)
    rows = session.scalars(
        select(Jurisdiction).where(Jurisdiction.code.in_(sorted(caller.jurisdictions))).order_by(Jurisdiction.code)
    ).all()
    return Page(list(rows), None)


def set_policy(
    session: Session, *, caller: Caller, jurisdiction_code: str, effective_date: date, policy: Policy, today: date
) -> PolicyVersion:
    """Add a policy version taking effect on `effective_date` (today or later: the past is not rewritten)."""
    visible_jurisdiction(session, caller, jurisdiction_code)
    problems = policy_problems(policy)
    if effective_date < today:
        problems.append(f"effective_date {effective_date} is in the past; a policy takes effect today or later")
    if problems:
        raise PolicyViolation(problems)
    if session.get(PolicyVersion, (jurisdiction_code, effective_date)) is not None:
        raise Conflict(f"jurisdiction {jurisdiction_code} already has a policy taking effect on {effective_date}")
    row = PolicyVersion(
        jurisdiction_code=jurisdiction_code,
        effective_date=effective_date,
        created_by=caller.principal,
        **_columns(policy),
    )
    session.add(row)
    session.flush()
    note(
        session,
        caller,
        "policy.set",
        institution_id=None,
        object_type="policy_version",
        object_id=f"{jurisdiction_code}:{effective_date}",
        after=_columns(policy),
        at=None,
    )
    return row


def list_policies(session: Session, *, caller: Caller, jurisdiction_code: str) -> Page[PolicyVersion]:
    visible_jurisdiction(session, caller, jurisdiction_code)
    rows = session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.jurisdiction_code == jurisdiction_code)
        .order_by(PolicyVersion.effective_date)
    ).all()
    return Page(list(rows), None)


def policy_in_force(session: Session, *, jurisdiction_code: str, on: date) -> tuple[Policy, date | None]:
    """The jurisdiction's policy on a date and the date that version took effect (None: national defaults)."""
    row = session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.jurisdiction_code == jurisdiction_code, PolicyVersion.effective_date <= on)
        .order_by(PolicyVersion.effective_date.desc())
        .limit(1)
    ).first()
    if row is None:
        return NATIONAL_DEFAULTS, None
    return policy_of(row), row.effective_date


def policy_version(session: Session, *, jurisdiction_code: str, effective_date: date | None) -> Policy:
    """A recorded version exactly (how a contract is judged by the policy it was signed under)."""
    if effective_date is None:
        return NATIONAL_DEFAULTS
    row = session.get(PolicyVersion, (jurisdiction_code, effective_date))
    if row is None:  # pragma: no cover - contracts reference versions that exist
        raise NotFound(f"no policy of {jurisdiction_code} took effect on {effective_date}")
    return policy_of(row)


def policy_of(row: PolicyVersion) -> Policy:
    return Policy(
        max_months=row.max_months,
        max_hours=row.max_hours,
        max_non_subject_fen=row.max_non_subject_fen,
        guide_price_margin_bp=row.guide_price_margin_bp,
        confirm_after_working_days=row.confirm_after_working_days,
        refund_response_working_days=row.refund_response_working_days,
        max_class_backdate_days=row.max_class_backdate_days,
        max_term_start_past_days=row.max_term_start_past_days,
        release_cadence=ReleaseCadence(row.release_cadence),
        release_tranches_pct=tuple(row.release_tranches_pct),
        default_supervision_model=SupervisionModel(row.default_supervision_model),
        alert_thresholds={**NATIONAL_DEFAULTS.alert_thresholds, **row.alert_thresholds},
    )


def _columns(policy: Policy) -> dict[str, object]:
    values = asdict(policy)
    values["release_cadence"] = policy.release_cadence.value
    values["release_tranches_pct"] = list(policy.release_tranches_pct)
    values["default_supervision_model"] = policy.default_supervision_model.value
    values["alert_thresholds"] = dict(policy.alert_thresholds)
    return values
