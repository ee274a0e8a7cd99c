"""Institutions: registered by a regulator, each with its own books opened at registration."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, institution_scope, require_role
from escrow.db.paging import Page, keyset
from escrow.db.records import Institution
from escrow.errors import Conflict, InvalidRequest, NotFound
from escrow.ids import new_id
from escrow.ledger.engine import open_account
from escrow.ledger.model import AccountKind, Side, account_code
from escrow.registry.jurisdictions import policy_in_force, visible_jurisdiction
from escrow.rules.identity import credit_code_problem
from escrow.rules.policy import SupervisionModel

# the codes of an institution's own accounts (one of each; each code is its account's kind)
CUSTODY_CASH = AccountKind.CUSTODY_CASH.value
RELEASABLE = AccountKind.RELEASABLE.value
PAYOUT_PENDING = AccountKind.PAYOUT_PENDING.value
RESERVE_CASH = AccountKind.RESERVE_CASH.value
RESERVE_DEPOSIT = AccountKind.RESERVE_DEPOSIT.value


def register_institution(
    session: Session,
    *,
    caller: Caller,
    name: str,
    credit_code: str,
    jurisdiction_code: str,
    custody_bank: str,
    custody_account: str,
    supervision_model: SupervisionModel | None,
    today: date,
) -> Institution:
    """Register an institution in one of the regulator's jurisdictions and open its accounts."""
    require_role(caller, Role.REGULATOR)
    visible_jurisdiction(session, caller, jurisdiction_code)
    problem = credit_code_problem(credit_code)
    if problem:
        raise InvalidRequest(problem)
    taken = session.scalar(select(Institution.id).where(Institution.credit_code == credit_code))
    if taken is not None:
        raise Conflict(f"an institution with credit code {credit_code} is already registered")
    shared = session.scalar(
        select(Institution.id).where(
            Institution.custody_bank == custody_bank, Institution.custody_account == custody_account
        )
    )
    if shared is not None:
        raise Conflict(f"account {custody_account} at {custody_bank} is already the custody account of {shared}")
    policy, _ = policy_in_force(session, jurisdiction_code=jurisdiction_code, on=today)
    row = Institution(
        id=new_id(),
        name=name,
        credit_code=credit_code,
        jurisdiction_code=jurisdiction_code,
        supervision_model=(supervision_model or policy.default_supervision_model).value,
        custody_bank=custody_bank,
        custody_account=custody_account,
    )
    session.add(row)
    session.flush()
    note(
        session,
        caller,
        "institution.registered",
        institution_id=row.id,
        object_type="institution",
        object_id=row.id,
        after={
            "name": name,
            "credit_code": credit_code,
            "jurisdiction_code": jurisdiction_code,
            "supervision_model": row.supervision_model,
            "custody_bank": custody_bank,
        },
    )
    for kind in (AccountKind.CUSTODY_CASH, AccountKind.RESERVE_CASH):
        open_account(session, institution_id=row.id, code=account_code(kind), kind=kind, normal_side=Side.DEBIT)
    for kind in (AccountKind.RELEASABLE, AccountKind.PAYOUT_PENDING, AccountKind.RESERVE_DEPOSIT):
        open_account(session, institution_id=row.id, code=account_code(kind), kind=kind, normal_side=Side.CREDIT)
    return row


def visible_institution(session: Session, caller: Caller, institution_id: UUID, *, lock: bool = False) -> Institution:
    """The institution if the caller may see it; otherwise NotFound, whether or not it exists."""
    query = select(Institution).where(Institution.id == institution_id, institution_scope(caller))
    if lock:  # a share lock: writes go ahead together, while a hold or closure waits for them
        query = query.with_for_update(read=True)
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(f"institution {institution_id} does not exist or is outside your scope")
    return row


def own_institution(session: Session, caller: Caller, institution_id: UUID, *, lock: bool = False) -> Institution:
    """The institution a write is for: the caller must be that institution."""
    require_role(caller, Role.INSTITUTION)
    return visible_institution(session, caller, institution_id, lock=lock)


def list_institutions(
    session: Session,
    *,
    caller: Caller,
    cursor: str | None,
    limit: int,
    jurisdiction_code: str | None = None,
    status: str | None = None,
    search: str | None = None,
) -> Page[Institution]:
    """The institutions in scope, narrowed by jurisdiction, status, and a search of the name (any part)
    or the credit code (its start)."""
    query = select(Institution).where(institution_scope(caller))
    if jurisdiction_code is not None:
        query = query.where(Institution.jurisdiction_code == jurisdiction_code)
    if status is not None:
        query = query.where(Institution.status == status)
    if search:
        query = query.where(
            Institution.name.icontains(search, autoescape=True)
            | Institution.credit_code.startswith(search.upper(), autoescape=True)
        )
    return keyset(session, query, Institution.id, cursor=cursor, limit=limit)
