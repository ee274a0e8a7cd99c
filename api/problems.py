"""The one place where errors become HTTP: RFC 9457 problem+json with a stable code and a reason."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.auth import check_token
from api.deps import unchecked_token
from escrow import errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Most specific first: the first class an error is an instance of decides its status.
STATUS_BY_ERROR: tuple[tuple[type[errors.EscrowError], int], ...] = (
    (errors.Unauthenticated, 401),
    (errors.TooManyAttempts, 429),
    (errors.PayloadTooLarge, 413),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.InvalidRequest, 422),
    (errors.Conflict, 409),
    (errors.EscrowError, 400),
)


def status_for(error: errors.EscrowError) -> int:
    return next(status for cls, status in STATUS_BY_ERROR if isinstance(error, cls))


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"urn:escrow:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def allowed_methods(request: Request) -> list[str]:
    """Every method any route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    routes = list(request.app.router.routes)
    while routes:
        route = routes.pop()
        included = getattr(route, "original_router", None)  # an included router is matched route by route
        if included is not None:
            routes.extend(included.routes)
            continue
        match, _ = route.matches(request.scope)  # PARTIAL: the path matches, the method does not
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def error_response(exc: errors.EscrowError) -> JSONResponse:
    """The problem+json answer to a domain error, with the headers its status calls for."""
    problems = exc.context.get("problems")
    extra = {"problems": problems} if problems else {}
    response = problem(status_for(exc), exc.code, exc.title, exc.detail, **extra)
    if isinstance(exc, errors.Unauthenticated):
        response.headers["WWW-Authenticate"] = 'Bearer realm="escrow"'
    if isinstance(exc, errors.TooManyAttempts):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def client_of(request: Request) -> str:
    """Whom failed attempts are counted against: the peer's address (uvicorn's, behind a trusted proxy)."""
    return request.client.host if request.client else "unknown"


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.EscrowError)
    async def escrow_error(request: Request, exc: errors.EscrowError) -> JSONResponse:
        if isinstance(exc, errors.Unauthenticated) and "authorization" in request.headers:
            request.app.state.throttle.count_failure(client_of(request))  # a wrong token, not a missing one
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        token = unchecked_token(request)  # a bad token is told before a bad request
        if token is not None:
            try:
                await run_in_threadpool(check_token, request.app.state.sessionmaker, token)
            except errors.Unauthenticated as refused:
                return await escrow_error(request, refused)
            except DBAPIError as failed:
                return await database_error(request, failed)
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "the request is malformed"
        return problem(422, "invalid_request", "Invalid request", detail, problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase
        code = title.lower().replace(" ", "_").replace("-", "_")
        response = problem(exc.status_code, code, title, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # psycopg2 reports a server that went away mid-query as OperationalError or, as often, a plain
        # DatabaseError; SQLAlchemy marks both as a lost connection
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            return await database_unavailable(request, exc)
        if isinstance(exc, DataError):  # SQLSTATE class 22: a value the column cannot hold; rolled back
            log.warning(
                "data refused by the database on %s %s: SQLSTATE %s",
                request.method,
                request.url.path,
                getattr(exc.orig, "pgcode", None),
            )
            return problem(422, "invalid_request", "Invalid request", "a value in the request cannot be stored")
        return await unexpected(request, exc)

    async def database_unavailable(request: Request, exc: DBAPIError) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        response = problem(
            503,
            "database_unavailable",
            "Service unavailable",
            "the database could not complete the request (unreachable, restarting, or a conflict with a"
            " concurrent request); retry shortly with the same Idempotency-Key: it is never applied twice",
        )
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "")
        log.exception("unexpected error on %s %s (request %s)", request.method, request.url.path, request_id)
        response = problem(
            500,
            "internal_error",
            "Internal error",
            f"an unexpected error occurred; it was logged as request {request_id}",
        )
        response.headers["X-Request-ID"] = request_id  # answered outside the request log's middleware
        return response
