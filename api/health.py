"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.auth import Now
from api.problems import problem
from escrow.db.database import migration_status
from escrow.registry.calendar import missing_calendar_year

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="get_health")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.head("/healthz", include_in_schema=False)
def healthz_head() -> None:
    """The process is up (for probes that ask with HEAD)."""


@router.get(
    "/readyz",
    operation_id="get_readiness",
    responses={503: {"description": "database unreachable or migrations not at head"}},
)
def readyz(request: Request, now: Now) -> Any:
    """The database answers and its schema is at the code's migration head; `calendar` says whether the
    official calendar covers this year and, from 1 December, the next (a missing year is a warning)."""
    try:
        current, head = migration_status(request.app.state.engine)
    except SQLAlchemyError as exc:
        return problem(503, "database_unavailable", "Not ready", f"database unreachable: {type(exc).__name__}")
    if current != head:
        return problem(503, "migrations_pending", "Not ready", f"database at {current}, code expects {head}")
    with Session(request.app.state.engine) as session:
        missing = missing_calendar_year(session, now=now)
    calendar = "ok" if missing is None else f"no official calendar for {missing}: load it before deadlines reach it"
    return JSONResponse({"status": "ready", "migration": current, "calendar": calendar})
