"""Who is calling and what they may see. One filter per kind of object, used by every query.

An object outside the caller's scope is reported as not found, never as forbidden, so that
its existence does not leak. A role that may not act at all gets Forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from sqlalchemy import ColumnElement, false, select

from escrow.db.records import Contract, Guardian, Institution
from escrow.errors import Forbidden


class Role(StrEnum):
    REGULATOR = "regulator"
    INSTITUTION = "institution"
    PARENT = "parent"
    BANK = "bank"


@dataclass(frozen=True, slots=True)
class Caller:
    token_id: UUID
    role: Role
    jurisdictions: frozenset[str] = field(default_factory=frozenset)
    institution_id: UUID | None = None
    guardian_phone: str | None = None  # a parent is a phone number: their families at every institution
    bank_code: str | None = None
    person: str | None = None  # a signed-in person (name and user id); None for a machine's bearer token

    @property
    def acting(self) -> str:
        """Who acted, for the audit trail and alert acknowledgements: the person, else the party."""
        return self.person or self.principal

    @property
    def principal(self) -> str:
        """Whom idempotency keys belong to: the party, not the token, so a rotated token can retry."""
        subject = {
            Role.REGULATOR: str(self.token_id),
            Role.INSTITUTION: str(self.institution_id),
            Role.PARENT: str(self.guardian_phone),
            Role.BANK: str(self.bank_code),
        }[self.role]
        return f"{self.role}:{subject}"


def require_role(caller: Caller, *roles: Role) -> None:
    if caller.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise Forbidden(f"only the {allowed} role may do this; this token is {caller.role.value}")


def institution_scope(caller: Caller) -> ColumnElement[bool]:
    """The institutions the caller may see."""
    match caller.role:
        case Role.REGULATOR:
            return Institution.jurisdiction_code.in_(sorted(caller.jurisdictions))
        case Role.INSTITUTION:
            return Institution.id == caller.institution_id
        case Role.BANK:
            return Institution.custody_bank == caller.bank_code
        case Role.PARENT:
            return Institution.id.in_(select(Contract.institution_id).where(_own_contract(caller)))
    return false()  # pragma: no cover - every role is matched above


def contract_scope(caller: Caller) -> ColumnElement[bool]:
    """The contracts the caller may see: a parent only their own."""
    if caller.role is Role.PARENT:
        return _own_contract(caller)
    return Contract.institution_id.in_(select(Institution.id).where(institution_scope(caller)))


def _own_contract(caller: Caller) -> ColumnElement[bool]:
    """A parent's contracts: those of the guardian records with their phone, at every institution."""
    return Contract.guardian_id.in_(select(Guardian.id).where(Guardian.phone == caller.guardian_phone))


def sees_personal_data(caller: Caller, guardian_phone: str) -> bool:
    """Guardians' phone and ID numbers are shown unmasked only to themselves and regulators."""
    return caller.role is Role.REGULATOR or (caller.role is Role.PARENT and caller.guardian_phone == guardian_phone)
