"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from api.problems import problem
from escrow.db.database import migration_status

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="get_health")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="get_readiness",
    responses={503: {"description": "database unreachable or migrations not at head"}},
)
def readyz(request: Request) -> Any:
    """The database answers and its schema is at the code's migration head."""
    try:
        current, head = migration_status(request.app.state.engine)
    except SQLAlchemyError as exc:
        return problem(503, "database_unavailable", "Not ready", f"database unreachable: {type(exc).__name__}")
    if current != head:
        return problem(503, "migrations_pending", "Not ready", f"database at {current}, code expects {head}")
    return JSONResponse({"status": "ready", "migration": current})
