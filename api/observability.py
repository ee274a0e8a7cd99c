"""One log line and the metrics per request, with a request id the client may send and always gets back.

The line names the route template and the path without its query string (a token or phone sent there
is never written), the status, the latency and the caller's principal once its token was checked (or, on
the console, once its session was: with the person's user id); never a header, a query or a body. It
replaces uvicorn's access line (escrow/logs.py turns that off).
"""

from __future__ import annotations

import re
import time
from typing import Any
from uuid import uuid4

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics
from sqlalchemy import Engine
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from escrow.logs import get_logger
from escrow.supervision.metrics import BooksCollector

log = get_logger("escrow.request")

REQUEST_ID_HEADER = "X-Request-ID"
# what a client's own id may look like (a UUID, a trace id); anything else is replaced, never echoed
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

disable_created_metrics()  # type: ignore[no-untyped-call]  # a *_created series per label set doubles the scrape and no dashboard reads it

REQUESTS = Counter(
    "escrow_http_requests",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
    registry=None,
)
LATENCY = Histogram(
    "escrow_http_request_duration_seconds",
    "Time to answer, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)
UNMATCHED = "unmatched"  # a path no route serves: not a label per path a scanner tries


def metrics_registry(engine: Engine) -> CollectorRegistry:
    """What /metrics shows for an app on `engine`."""
    registry = CollectorRegistry()
    registry.register(REQUESTS)
    registry.register(LATENCY)
    registry.register(BooksCollector(engine))
    ProcessCollector(registry=registry)
    return registry


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            sent: str = value.decode("latin-1")
            if VALID_REQUEST_ID.fullmatch(sent):
                return sent
    return uuid4().hex


class RequestLog:
    """Pure ASGI middleware: it sees the response's status without buffering the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        seen: dict[str, Any] = {"status": 500}  # unless a response starts; the caller once known (api/auth.py)
        state = scope.setdefault("state", {})
        state["request_id"], state["request_log"] = request_id, seen

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        started = time.perf_counter()
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            self._note(scope, seen, request_id, time.perf_counter() - started)

    @staticmethod
    def _note(scope: Scope, seen: dict[str, Any], request_id: str, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        method, status = scope["method"], seen["status"]
        REQUESTS.labels(method, route, str(status)).inc()
        LATENCY.labels(method, route).observe(seconds)
        log.info(
            "request",
            request_id=request_id,
            method=method,
            route=route,
            path=scope["path"],
            status=status,
            latency_ms=round(seconds * 1000, 2),
            principal=seen.get("principal"),
            role=seen.get("role"),
            token_id=seen.get("token_id"),
            **({"user_id": seen["user_id"]} if "user_id" in seen else {}),  # a person signed in to the console
        )
