"""What a handler is handed: the request's session and its caller, as stock FastAPI dependencies.

One database transaction per request, committed before the response is sent. A handler runs in the
thread pool; the caller's token is checked in a hop of its own (a sync dependency, in the request's
transaction) and the session commits in another. This module is the one place that decides it: every
API router is `APIRouter(route_class=ApiRoute)` and takes `SessionDep` and `CallerDep` from here, and
api/problems.py asks `unchecked_token`, so a form that checks the token and commits in the handler's own
thread (a route class wrapping the handler, as api/routing.py did at 151db39) would replace this module
alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.auth import Bearer, Now, bearer
from escrow.access.callers import Caller
from escrow.errors import Unauthenticated

ApiRoute = APIRoute  # the route class of every API router: stock (see above)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """Opened on the event loop: a session takes no connection until its first statement, which runs in
    the thread of whatever issues it. Committed (or rolled back) and closed in the thread pool, since
    that talks to the database; a handler that committed it itself (a console page: api/web/routing.py)
    leaves nothing to commit, and no hop is made."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    try:
        yield session
    except BaseException:
        await run_in_threadpool(_end, session, commit=False)
        raise
    if session.in_transaction():
        await run_in_threadpool(_end, session, commit=True)
    else:
        session.close()  # it holds no connection: nothing left that talks to the database


def _end(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


# scope="function": the commit runs before the response goes out, so a failed commit is never a 201
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_caller(
    request: Request,
    session: SessionDep,
    now: Now,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """Who the request's token stands for; Unauthenticated for a missing, unknown, revoked or expired one.
    FastAPI solves dependencies before it validates the parameters and body, so a bad token is told first."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("send 'Authorization: Bearer <token>'; tokens come from `escrow tokens create`")
    token = Bearer(credentials.credentials, now, getattr(request.state, "request_log", None))
    return token.caller(session)


CallerDep = Annotated[Caller, Depends(get_caller)]


def unchecked_token(request: Request) -> Bearer | None:
    """A token this request sent and no one has checked yet, for api/problems.py to check before it
    answers a bad request (a bad token is told first). None here: the caller dependency checks the token
    before FastAPI validates the parameters and body, and a body that is not JSON at all is refused before
    any dependency runs, as it always was."""
    return None
