"""Routers: parse, call one use case, return. Error statuses come from api/problems.py."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from api.schemas import Problem

_REASONS = {
    400: "the body could not be read as UTF-8 JSON",
    401: "missing, unknown, revoked or expired token",
    403: "this role may not do this",
    404: "no such object within your scope",
    409: "conflicts with the current state (on hold, duplicate, reused idempotency key, insufficient funds)",
    422: "the request is malformed or refused by policy",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem+json errors a route can answer (400, 401 and 422 always)."""
    return {
        status: {"model": Problem, "description": _REASONS[status], "content": {"application/problem+json": {}}}
        for status in sorted({400, 401, 422, *statuses})
    }


def mark_replayed(response: Response, replayed: bool) -> None:
    """Tell the client its idempotency key matched an earlier request and nothing moved again."""
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
