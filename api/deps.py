"""Request dependencies. One database transaction per request, committed before the response is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
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
    if session.in_transaction():  # a handler that did not commit it (see api/routing.py)
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
