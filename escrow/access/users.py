"""People who sign in: regulators and institution staff, by name and password, with server-side sessions.

Passwords are guessable, so they are kept as argon2 hashes (slow on purpose, unlike tokens' SHA-256).
A session is a random secret in the browser's cookie; the database keeps only its SHA-256 and the
session's CSRF token, so a copy of the table signs no one in. Machines keep bearer tokens (tokens.py).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from escrow.access.audit import SYSTEM, Actor, note
from escrow.access.callers import Caller, Role, institution_scope, require_role
from escrow.db.records import AppUser, Institution, Jurisdiction, WebSession
from escrow.errors import InvalidRequest, NotFound, Unauthenticated
from escrow.ids import new_id

SESSION_LIFETIME = timedelta(hours=8)  # a working day; signing in again after it is cheap
MIN_PASSWORD_LENGTH = 10
PERSON_ROLES = (Role.REGULATOR, Role.INSTITUTION)
_hasher = PasswordHasher()
# verified when the name is unknown, so a wrong name costs as long as a wrong password
_DECOY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A browser's session: who it is, what they may see, and the token its forms must carry."""

    user: AppUser
    caller: Caller
    csrf_token: str
    expires_at: datetime


def caller_of(user: AppUser) -> Caller:
    """The scope a person acts in, named after them in the audit trail."""
    return Caller(
        token_id=user.id,
        role=Role(user.role),
        jurisdictions=frozenset(user.jurisdiction_codes),
        institution_id=user.institution_id,
        person=f"{user.name} (user {user.id})",
    )


def create_user(
    session: Session,
    *,
    name: str,
    role: Role,
    password: str,
    jurisdictions: list[str] | None = None,
    institution_id: UUID | None = None,
    by: Caller | Actor,
    now: datetime,
) -> AppUser:
    """A regulator of existing jurisdictions, or a staff member of an existing institution."""
    name = name.strip()
    _check_new_user(session, name=name, role=role, password=password)
    user = AppUser(id=new_id(), name=name, role=role.value, password_hash=_hasher.hash(password), created_at=now)
    user.created_by = by.acting if isinstance(by, Caller) else by.name
    if role is Role.REGULATOR:
        codes = sorted(set(jurisdictions or []))
        missing = [c for c in codes if session.get(Jurisdiction, c) is None]
        if not codes or missing:
            raise InvalidRequest(f"a regulator needs existing jurisdictions; unknown: {missing or 'none given'}")
        user.jurisdiction_codes = codes
    else:
        if institution_id is None or session.get(Institution, institution_id) is None:
            raise InvalidRequest(f"institution staff need an existing institution, got {institution_id}")
        user.jurisdiction_codes, user.institution_id = [], institution_id
    session.add(user)
    session.flush()
    note(
        session,
        by,
        "user.created",
        institution_id=institution_id,
        object_type="app_user",
        object_id=user.id,
        at=now,
        after={"name": name, "role": role.value, "jurisdictions": user.jurisdiction_codes},
    )
    return user


def _check_new_user(session: Session, *, name: str, role: Role, password: str) -> None:
    if role not in PERSON_ROLES:
        raise InvalidRequest(
            f"people sign in as regulator or institution staff, not {role.value}", field="role", reason="role"
        )
    if not 1 <= len(name) <= 60:
        raise InvalidRequest("a name has 1 to 60 characters", field="name", reason="name_length")
    if session.scalar(select(AppUser.id).where(func.lower(AppUser.name) == name.lower())) is not None:
        raise InvalidRequest(f"a person named {name} already signs in here", field="name", reason="name_taken")
    check_password(password)


def check_password(password: str, *, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(f"a password has at least {MIN_PASSWORD_LENGTH} characters", field=field, reason="short")


def add_staff(
    session: Session, *, caller: Caller, institution_id: UUID, name: str, password: str, now: datetime
) -> AppUser:
    """A regulator adds a staff member to an institution of their jurisdictions."""
    require_role(caller, Role.REGULATOR)
    if (
        session.scalar(select(Institution.id).where(Institution.id == institution_id, institution_scope(caller)))
        is None
    ):
        raise NotFound(f"institution {institution_id} does not exist or is outside your scope")
    return create_user(
        session, name=name, role=Role.INSTITUTION, password=password, institution_id=institution_id, by=caller, now=now
    )


def list_staff(session: Session, *, caller: Caller, institution_id: UUID) -> list[AppUser]:
    require_role(caller, Role.REGULATOR)
    query = select(AppUser).join(Institution, Institution.id == AppUser.institution_id)
    query = query.where(AppUser.institution_id == institution_id, institution_scope(caller))
    return list(session.scalars(query.order_by(AppUser.name)).all())


def sign_in(session: Session, *, name: str, password: str, now: datetime) -> tuple[str, SignedIn]:
    """A new session for the person with this name and password: the cookie's secret and the session."""
    user = session.scalars(select(AppUser).where(func.lower(AppUser.name) == name.strip().lower())).one_or_none()
    if not _verified(user.password_hash if user else _DECOY_HASH, password) or user is None:
        raise Unauthenticated("the name or the password is wrong")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    secret = secrets.token_urlsafe(32)
    row = WebSession(
        secret_hash=_hash(secret),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    session.add(row)
    session.flush()
    note(session, caller_of(user), "user.signed_in", institution_id=user.institution_id, object_type="app_user",
         object_id=user.id, at=now)  # fmt: skip
    return secret, SignedIn(user, caller_of(user), row.csrf_token, row.expires_at)


def signed_in(session: Session, *, secret: str, now: datetime) -> SignedIn:
    """The live session a cookie's secret stands for; Unauthenticated when unknown, ended or expired."""
    found = session.execute(
        select(WebSession, AppUser)
        .join(AppUser, AppUser.id == WebSession.user_id)
        .where(WebSession.secret_hash == _hash(secret), WebSession.ended_at.is_(None), WebSession.expires_at > now)
    ).one_or_none()
    if found is None:
        raise Unauthenticated("sign in again: this session ended or expired")
    row, user = found
    return SignedIn(user, caller_of(user), row.csrf_token, row.expires_at)


def sign_out(session: Session, *, secret: str, now: datetime) -> None:
    """End the session (signing out twice is the same as once)."""
    session.execute(
        update(WebSession)
        .where(WebSession.secret_hash == _hash(secret), WebSession.ended_at.is_(None))
        .values(ended_at=now)
    )


def sweep_sessions(session: Session, *, now: datetime) -> int:
    """Delete the sessions past their expiry (signed out or not): none can sign anyone in again. How many."""
    swept = session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    deleted = int(swept.rowcount)  # type: ignore[attr-defined]
    if deleted:
        note(session, SYSTEM, "web_sessions.swept", institution_id=None, object_type="web_session",
             object_id="expired", at=now, after={"deleted": deleted, "expired_by": now.isoformat()})  # fmt: skip
    return deleted


def change_password(
    session: Session, *, person: SignedIn, current: str, new: str, keep_secret: str, now: datetime
) -> None:
    """Check the current password, set the new one, and end every other session of the person."""
    user = session.get_one(AppUser, person.user.id, with_for_update=True)
    if not _verified(user.password_hash, current):
        raise InvalidRequest("the current password is wrong", field="current", reason="wrong")
    check_password(new, field="new")
    if new == current:
        raise InvalidRequest("the new password must differ from the current one", field="new", reason="same")
    user.password_hash, user.password_changed_at = _hasher.hash(new), now
    session.execute(
        update(WebSession)
        .where(
            WebSession.user_id == user.id, WebSession.ended_at.is_(None), WebSession.secret_hash != _hash(keep_secret)
        )
        .values(ended_at=now)
    )
    note(session, person.caller, "user.password_changed", institution_id=user.institution_id,
         object_type="app_user", object_id=user.id, at=now)  # fmt: skip


def _verified(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
