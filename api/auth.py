"""Bearer-token authentication: every route but health and docs needs a caller.

`CallerDep` is the Caller the request's token stands for, checked as a dependency: FastAPI solves
dependencies before it validates the parameters and body, so a bad token is answered 401 first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import SessionDep
from escrow.access.callers import Caller
from escrow.access.tokens import authenticate
from escrow.errors import Unauthenticated

bearer = HTTPBearer(auto_error=False, description="a token from `escrow tokens create`")


async def utc_now() -> datetime:
    """On the event loop: a sync dependency would cost a hop to the thread pool for a clock read."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(utc_now)]


def get_caller(
    session: SessionDep, now: Now, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    """Who the request's token stands for; Unauthenticated for a missing, unknown, revoked or expired one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("send 'Authorization: Bearer <token>'; tokens come from `escrow tokens create`")
    return authenticate(session, secret=credentials.credentials, now=now)


CallerDep = Annotated[Caller, Depends(get_caller)]
