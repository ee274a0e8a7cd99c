"""Bearer-token authentication: every route but health and docs needs a caller.

A Bearer is the token as the request sent it; `Bearer.caller` checks it and names the caller in the
request's log line. The dependency that hands a handler its Caller is in api/deps.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.callers import Caller
from escrow.access.tokens import authenticate
from escrow.rules.identity import mask_phone

bearer = HTTPBearer(auto_error=False, description="a token from `escrow tokens create`")


async def utc_now() -> datetime:
    """On the event loop: a sync dependency would cost a hop to the thread pool for a clock read."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(utc_now)]


@dataclass(frozen=True, slots=True)
class Bearer:
    """A bearer token as the request sent it, not yet checked."""

    secret: str = field(repr=False)  # never in a log or a traceback
    now: datetime
    request_log: dict[str, Any] | None = field(default=None, compare=False, repr=False)  # api/observability.py

    def caller(self, session: Session) -> Caller:
        """Who the token stands for; Unauthenticated for unknown, revoked or expired tokens."""
        caller = authenticate(session, secret=self.secret, now=self.now)
        if self.request_log is not None:  # the request's log line names whom, never the secret
            # a parent's principal is their phone number: the log names them by a masked one
            whom = f"parent:{mask_phone(caller.guardian_phone)}" if caller.guardian_phone else caller.principal
            self.request_log.update(principal=whom, role=caller.role.value, token_id=str(caller.token_id))
        return caller


def check_token(sessions: sessionmaker[Session], token: Bearer) -> Caller:
    """The token checked in a session of its own, outside the request's (api/bodies.py, api/problems.py)."""
    with sessions() as session:
        return token.caller(session)
