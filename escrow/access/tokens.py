"""Bearer tokens: issued by the command line, shown once, stored only as SHA-256 hashes.

The tokens are 256 random bits, so a fast hash is the right one (slow password hashes are for
guessable secrets); lookups compare hashes, never the tokens themselves.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from escrow.access.audit import OPERATOR, note
from escrow.access.callers import Caller, Role
from escrow.db.records import ApiToken, Guardian, Institution, Jurisdiction
from escrow.errors import InvalidRequest, NotFound, Unauthenticated
from escrow.ids import new_id
from escrow.rules.identity import mask_phone

PREFIX = "esc_"
_TOKEN = cast(Table, ApiToken.__table__)
# Built once: every request runs it
_BY_HASH = select(
    _TOKEN.c.id,
    _TOKEN.c.role,
    _TOKEN.c.jurisdiction_codes,
    _TOKEN.c.institution_id,
    _TOKEN.c.guardian_phone,
    _TOKEN.c.bank_code,
    _TOKEN.c.expires_at,
    _TOKEN.c.revoked_at,
).where(_TOKEN.c.token_hash == bindparam("p_hash"))


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    session: Session,
    *,
    role: Role,
    jurisdictions: list[str] | None = None,
    institution_id: UUID | None = None,
    guardian_phone: str | None = None,
    bank_code: str | None = None,
    label: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Make a token for one role and scope; returns the record and the secret (shown only now)."""
    row = ApiToken(id=new_id(), role=role.value, label=label, expires_at=expires_at, jurisdiction_codes=[])
    if role is Role.REGULATOR:
        codes = sorted(set(jurisdictions or []))
        missing = [c for c in codes if session.get(Jurisdiction, c) is None]
        if not codes or missing:
            raise InvalidRequest(f"a regulator token needs existing jurisdictions; unknown: {missing or 'none given'}")
        row.jurisdiction_codes = codes
    elif role is Role.INSTITUTION:
        if institution_id is None or session.get(Institution, institution_id) is None:
            raise InvalidRequest(f"an institution token needs an existing institution id, got {institution_id}")
        row.institution_id = institution_id
    elif role is Role.PARENT:
        known = session.scalar(select(Guardian.id).where(Guardian.phone == guardian_phone).limit(1))
        if known is None:
            raise InvalidRequest("a parent token needs the phone of a guardian who has signed a contract")
        row.guardian_phone = guardian_phone
    else:
        if not bank_code:
            raise InvalidRequest("a bank token needs the bank code its institutions use (custody_bank)")
        row.bank_code = bank_code
    secret = PREFIX + secrets.token_urlsafe(32)
    row.token_hash = hash_token(secret)
    session.add(row)
    session.flush()
    note(
        session,
        OPERATOR,
        "token.issued",
        institution_id=None,
        object_type="api_token",
        object_id=row.id,
        after={
            "role": row.role,
            "jurisdictions": row.jurisdiction_codes,
            "institution_id": row.institution_id,
            "guardian_phone": mask_phone(row.guardian_phone) if row.guardian_phone else None,
            "bank_code": row.bank_code,
            "label": label,
        },
    )
    return row, secret


def revoke_token(session: Session, *, token_id: UUID, now: datetime) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} does not exist")
    session.execute(
        update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None)).values(revoked_at=now)
    )
    session.refresh(row)
    note(session, OPERATOR, "token.revoked", institution_id=None, object_type="api_token", object_id=token_id, at=now)
    return row


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)).all())


def authenticate(session: Session, *, secret: str, now: datetime) -> Caller:
    """The caller a bearer token stands for; Unauthenticated for unknown, revoked or expired tokens."""
    row = session.execute(_BY_HASH, {"p_hash": hash_token(secret)}).one_or_none()
    if row is None:
        raise Unauthenticated("the bearer token is not recognised; ask for a token with `escrow tokens create`")
    if row.revoked_at is not None:
        raise Unauthenticated(f"this token was revoked at {row.revoked_at.isoformat()}")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated(f"this token expired at {row.expires_at.isoformat()}")
    return Caller(
        token_id=row.id,
        role=Role(row.role),
        jurisdictions=frozenset(row.jurisdiction_codes),
        institution_id=row.institution_id,
        guardian_phone=row.guardian_phone,
        bank_code=row.bank_code,
    )
