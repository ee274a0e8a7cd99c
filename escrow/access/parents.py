"""Parents sign in with their phone number and a one-time code; their sessions are server-side.

A code is six random digits sent to the phone, kept only as an argon2 hash (OWASP's minimum: 19 MiB, two
passes, so a copy of the table does not give up a live code in the minutes it lives), alive for
CODE_LIFETIME and MAX_TRIES wrong tries; asking again ends the one before. A code goes to any mainland
mobile number, whether or not a guardian has it anywhere, so nothing tells who has contracts (a phone with
none signs in to an empty list). Asking is limited per phone here, in the database (a number cannot be
flooded with messages whichever worker answers); per client by the page. A session is a random secret in
the browser's cookie, of which the database keeps only the SHA-256, as for people (users.py).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from escrow.access.audit import SYSTEM, Actor, note
from escrow.access.callers import Caller, Role
from escrow.access.messages import Message, MessageSender
from escrow.db.family_records import ParentSession, SignInCode
from escrow.errors import CodeRequestsExhausted, InvalidRequest, Unauthenticated
from escrow.ids import new_id
from escrow.rules.families import CodeOutcome, MessageKind, phone_problem
from escrow.rules.identity import mask_phone

CODE_LIFETIME = timedelta(minutes=5)
MAX_TRIES = 5
RESEND_AFTER = timedelta(seconds=60)
CODES_PER_HOUR = 5
SESSION_LIFETIME = timedelta(days=7)  # a phone stays signed in for a week, as families' apps do
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
_CODE = re.compile(r"^[0-9]{6}$")


@dataclass(frozen=True, slots=True)
class ParentSignedIn:
    """A phone's browser session: whose phone, the scope it acts in, and the token its forms must carry."""

    phone: str
    caller: Caller
    csrf_token: str
    expires_at: datetime

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


@dataclass(frozen=True, slots=True)
class CodeSent:
    expires_at: datetime
    resend_at: datetime


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """A code tried: signed in (the cookie's secret and the session), or refused, and why: `wrong` (tries
    left), `exhausted` (no tries left) or `expired` (no live code: ask for another). Returned, not raised,
    so that the caller commits the try it counted."""

    secret: str | None = None
    person: ParentSignedIn | None = None
    refused: str | None = None
    tries_left: int = 0


def parent_caller(phone: str, session_id: UUID) -> Caller:
    """A signed-in phone acts as the parent of every contract registered under it, at every institution."""
    return Caller(token_id=session_id, role=Role.PARENT, guardian_phone=phone)


def _actor(phone: str) -> Actor:
    return Actor(f"parent:{mask_phone(phone)}", Role.PARENT.value)


def request_code(session: Session, *, phone: str, sender: MessageSender, now: datetime) -> CodeSent:
    """Send a new sign-in code to the phone, ending any code sent before."""
    problem = phone_problem(phone)
    if problem:
        raise InvalidRequest(problem, field="phone", reason="phone_format")
    # one request per phone at a time, so two at once cannot both pass the limits below
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"escrow.sign_in.{phone}"})
    _check_rate(session, phone, now)
    session.execute(
        update(SignInCode)
        .where(SignInCode.phone == phone, SignInCode.ended_at.is_(None))
        .values(ended_at=now, outcome=CodeOutcome.SUPERSEDED)
    )
    code = f"{secrets.randbelow(10**6):06d}"
    row = SignInCode(
        id=new_id(), phone=phone, code_hash=_hasher.hash(code), created_at=now, expires_at=now + CODE_LIFETIME
    )
    session.add(row)
    session.flush()
    minutes = int(CODE_LIFETIME.total_seconds() // 60)
    body = f"【预付费监管】您的登录验证码为 {code}，{minutes} 分钟内有效。如非本人操作，请忽略本短信。"
    sender.send(session, Message(phone, MessageKind.SIGN_IN_CODE, body, secret=code), now=now)
    note(session, _actor(phone), "parent.code_sent", institution_id=None, object_type="sign_in_code",
         object_id=row.id, at=now, after={"expires_at": row.expires_at})  # fmt: skip
    return CodeSent(row.expires_at, now + RESEND_AFTER)


def _check_rate(session: Session, phone: str, now: datetime) -> None:
    hour_ago = now - timedelta(hours=1)
    sent = list(
        session.scalars(
            select(SignInCode.created_at)
            .where(SignInCode.phone == phone, SignInCode.created_at > hour_ago)
            .order_by(SignInCode.created_at.desc())
        )
    )
    if sent and sent[0] + RESEND_AFTER > now:
        raise CodeRequestsExhausted(_seconds(sent[0] + RESEND_AFTER - now))
    if len(sent) >= CODES_PER_HOUR:
        raise CodeRequestsExhausted(_seconds(sent[CODES_PER_HOUR - 1] + timedelta(hours=1) - now))


def _seconds(wait: timedelta) -> int:
    return max(1, math.ceil(wait.total_seconds()))


def sign_in_with_code(session: Session, *, phone: str, code: str, now: datetime) -> CodeCheck:
    """Check the code last sent to the phone: a new session when right; a try counted when wrong."""
    if phone_problem(phone):
        return CodeCheck(refused="expired")
    live = session.scalars(
        select(SignInCode)
        .where(SignInCode.phone == phone, SignInCode.ended_at.is_(None))
        .order_by(SignInCode.created_at.desc())
        .limit(1)
        .with_for_update()  # tries at the same moment are counted one after the other
    ).one_or_none()
    if live is None or live.expires_at <= now:
        return CodeCheck(refused="expired")
    if not (_CODE.match(code.strip()) and _verified(live.code_hash, code.strip())):
        return _wrong_try(session, live, now)
    live.ended_at, live.outcome = now, CodeOutcome.USED
    secret = secrets.token_urlsafe(32)
    row = ParentSession(
        id=new_id(),
        secret_hash=_hash(secret),
        phone=phone,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    session.add(row)
    session.flush()
    note(session, _actor(phone), "parent.signed_in", institution_id=None, object_type="parent_session",
         object_id=row.id, at=now)  # fmt: skip
    return CodeCheck(secret=secret, person=_signed_in(row))


def _wrong_try(session: Session, live: SignInCode, now: datetime) -> CodeCheck:
    live.attempts += 1
    if live.attempts >= MAX_TRIES:
        live.ended_at, live.outcome = now, CodeOutcome.EXHAUSTED
        note(session, _actor(live.phone), "parent.code_exhausted", institution_id=None,
             object_type="sign_in_code", object_id=live.id, at=now, after={"attempts": live.attempts})  # fmt: skip
    session.flush()
    left = MAX_TRIES - live.attempts
    return CodeCheck(refused="wrong" if left else "exhausted", tries_left=left)


def signed_in_parent(session: Session, *, secret: str, now: datetime) -> ParentSignedIn:
    """The live session a cookie's secret stands for; Unauthenticated when unknown, ended or expired."""
    row = session.scalars(
        select(ParentSession).where(
            ParentSession.secret_hash == _hash(secret),
            ParentSession.ended_at.is_(None),
            ParentSession.expires_at > now,
        )
    ).one_or_none()
    if row is None:
        raise Unauthenticated("sign in again: this session ended or expired")
    return _signed_in(row)


def sign_out_parent(session: Session, *, secret: str, now: datetime) -> None:
    """End the session (signing out twice is the same as once)."""
    session.execute(
        update(ParentSession)
        .where(ParentSession.secret_hash == _hash(secret), ParentSession.ended_at.is_(None))
        .values(ended_at=now)
    )


def sweep_parent_sessions(session: Session, *, now: datetime) -> int:
    """Delete the phones' sessions past their expiry (signed out or not). How many."""
    swept = session.execute(delete(ParentSession).where(ParentSession.expires_at <= now))
    deleted = int(swept.rowcount)  # type: ignore[attr-defined]
    if deleted:
        note(session, SYSTEM, "parent_sessions.swept", institution_id=None, object_type="parent_session",
             object_id="expired", at=now, after={"deleted": deleted, "expired_by": now.isoformat()})  # fmt: skip
    return deleted


def _signed_in(row: ParentSession) -> ParentSignedIn:
    return ParentSignedIn(row.phone, parent_caller(row.phone, row.id), row.csrf_token, row.expires_at)


def _verified(code_hash: str, code: str) -> bool:
    try:
        return _hasher.verify(code_hash, code)
    except (VerificationError, InvalidHashError):
        return False


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
