"""Request dependencies. One database transaction per request, committed before the response is sent."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool


async def get_session(request: Request) -> AsyncIterator[Session]:
    """Opened on the event loop: a session takes no connection until its first statement, which runs in
    the thread of whatever issues it. Committed (or rolled back) and closed in the thread pool, since
    that talks to the database: one hop to the pool per request fewer than a sync generator costs; and
    none when the handler committed it."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    try:
        yield session
    except BaseException:
        await run_in_threadpool(_end, session, commit=False)
        raise
    if session.in_transaction():  # a handler that did not commit it (see CommitInHandlerThread)
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


class CommitInHandlerThread(APIRoute):
    """A sync handler that takes the session commits it in its own thread as soon as it returns, while the
    rows it locked are held: not after a hop to the event loop and another to the thread pool, which under
    load queue behind other requests (bench/http_collections.py --hot). The dependency then finds nothing
    left to commit; a failed commit is the handler's exception, so never a 2xx."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint) and "session" in inspect.signature(endpoint).parameters:
            endpoint = _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def handle(*args: Any, **kwargs: Any) -> Any:
        result = endpoint(*args, **kwargs)
        kwargs["session"].commit()
        return result

    return handle
