"""Request dependencies. One database transaction per request, committed before the response is sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    with factory.begin() as session:
        yield session


# scope="function": the commit runs before the response goes out, so a failed commit is never a 201
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
