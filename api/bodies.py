"""The lowest layer of every request, before FastAPI reads a byte of its body.

In this order, each step answering problem+json and reading no further:
- a client over its failed-authentication limit: 429 with Retry-After (api/throttle.py);
- a route that takes a caller, asked without a Bearer token: 401, before any body is read;
- a control character (NUL, C0 or C1) or an undecodable byte in the path or query: 422;
- a Content-Length over the route's limit (JSON small, statement files larger): 413;
- a large body's token is checked before the body is read (small ones, with the handler);
- the body is read, stopping at the limit (413) or when a chunk is slower than BODY_CHUNK_TIMEOUT_S (408);
- a JSON body with a key twice in one object, a control character or a lone surrogate in a string, or
  nested too deep: 422 naming where (its token is checked first: a bad token is told before a bad body);
- what the route does not use, refused rather than ignored: a query parameter it does not read, a body
  to a route that takes none (422, its token checked first).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Bearer, check_token
from api.deps import get_caller
from api.problems import client_of, error_response, problem
from escrow import errors
from escrow.bank.formats import MAX_FILE_BYTES
from escrow.rules.text import character_problem

JSON_BODY_BYTES = 1024 * 1024  # a batch of 1,000 collections, the largest JSON body, is about 200 KB
FILE_BODY_BYTES = {"import_statements": MAX_FILE_BYTES}  # by operation id: routes that take a file
EARLY_CHECK_BYTES = 64 * 1024  # a body larger than this is read only once its token is known good
BODY_CHUNK_TIMEOUT_S = 30.0  # a client that sends nothing for this long mid-body is cut off
MAX_JSON_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Rule:
    limit: int
    needs_bearer: bool
    route: APIRoute | None = None  # named on a refusal, so the request log tells which route refused it
    query_names: frozenset[str] = frozenset()  # the query parameters it reads
    takes_body: bool = True


class BodyGuard:
    """ASGI middleware: refuses what no handler should see, before it costs memory or a thread.
    `routes` are the app's API routes, whose rules are worked out once."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.rules = [
            (route.path_regex, route.methods or set(), rule_of(route))
            for route in routes
            if isinstance(route, APIRoute)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        rule = self.rule_for(scope)
        refusal = await early_refusal(request, rule)
        if refusal is not None:
            scope["route"] = rule.route
            await refusal(scope, receive, send)
            return
        body, refusal = b"", None
        if has_body(request.headers):
            body, refusal = await read_body(receive, rule.limit)
            receive = replay(body, receive)
        if refusal is None and body and is_json(request.headers):
            refusal = await json_refusal(request, body)
        if refusal is None:
            refusal = await unused_refusal(request, rule, body)
        if refusal is not None:
            scope["route"] = rule.route
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def rule_for(self, scope: Scope) -> Rule:
        path, method = scope["path"], scope["method"]
        for path_regex, methods, rule in self.rules:
            if method in methods and path_regex.match(path):
                return rule
        return Rule(JSON_BODY_BYTES, needs_bearer=False)  # FastAPI answers 404 or 405 without the body


def rule_of(route: APIRoute) -> Rule:
    needs_bearer = any(d.call is get_caller for d in route.dependant.dependencies)
    takes_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})  # a statement file
    limit = FILE_BODY_BYTES.get(route.operation_id or "", JSON_BODY_BYTES)
    return Rule(limit, needs_bearer, route, frozenset(query_names(route.dependant)), takes_body)


def query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route reads, its dependencies' included."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= query_names(sub)
    return names


async def early_refusal(request: Request, rule: Rule) -> Response | None:
    """What can be refused from the request line and headers alone."""
    if rule.needs_bearer:
        wait = request.app.state.throttle.retry_after(client_of(request))
        if wait is not None:
            return error_response(errors.TooManyAttempts(wait))
        if bearer_secret(request.headers) is None:
            return error_response(
                errors.Unauthenticated("send 'Authorization: Bearer <token>'; tokens come from `escrow tokens create`")
            )
    where = text_problem({"path": request.scope["path"], "query": unquote_strictly(request.scope["query_string"])})
    if where:
        return invalid(where)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > rule.limit:
        return too_large(rule.limit)
    if rule.needs_bearer and has_body(request.headers) and (not length.isdigit() or int(length) > EARLY_CHECK_BYTES):
        return await token_refusal(request)
    return None


def bearer_secret(headers: Headers) -> str | None:
    scheme, _, secret = headers.get("authorization", "").partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None


async def token_refusal(request: Request) -> Response | None:
    """401 for an unknown, revoked or expired token (checked in a session of its own), else None."""
    secret = bearer_secret(request.headers)
    if secret is None:
        return None
    token = Bearer(secret, datetime.now(UTC), getattr(request.state, "request_log", None))
    try:
        await run_in_threadpool(check_token, request.app.state.sessionmaker, token)
    except errors.Unauthenticated as refused:
        request.app.state.throttle.count_failure(client_of(request))
        return error_response(refused)
    except DBAPIError:
        response = problem(503, "database_unavailable", "Service unavailable", "the token could not be checked; retry")
        response.headers["Retry-After"] = "1"
        return response
    return None


async def unused_refusal(request: Request, rule: Rule, body: bytes) -> Response | None:
    """422 naming each query parameter the route does not read, and a body it does not take."""
    if rule.route is None:  # no route serves it: FastAPI answers 404 or 405
        return None
    if not rule.route.include_in_schema:  # a page (the desk's): it reads its form and query itself
        return None
    unused = [
        {"field": f"query.{name}", "message": "this route takes no such parameter"}
        for name in request.query_params
        if name not in rule.query_names
    ]
    if body and not rule.takes_body:
        unused.append({"field": "body", "message": "this route takes no body"})
    if not unused:
        return None
    if rule.needs_bearer:  # a bad token is told before a bad request
        refused = await token_refusal(request)
        if refused is not None:
            return refused
    detail = "; ".join(f"{p['field']}: {p['message']}" for p in unused)
    return problem(422, "invalid_request", "Invalid request", detail, problems=unused)


def has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def is_json(headers: Headers) -> bool:
    """As FastAPI reads it: JSON when the type says so, or says nothing."""
    kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return not kind or kind == "application/json" or kind.endswith("+json")


async def read_body(receive: Receive, limit: int) -> tuple[bytes, Response | None]:
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            message = await asyncio.wait_for(receive(), BODY_CHUNK_TIMEOUT_S)
        except TimeoutError:
            return b"", problem(408, "request_timeout", "Request timeout", "the body arrived too slowly")
        if message["type"] == "http.disconnect":
            return b"", Response(status_code=400)  # nobody is left to read it
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def replay(body: bytes, receive: Receive) -> Receive:
    """The body read here, handed on as one message; then the client's own (a disconnect)."""
    pending = True

    async def again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for key, value in pairs:
        if key in keys:
            raise DuplicateKey(key)
        keys[key] = value
    return keys


async def json_refusal(request: Request, body: bytes) -> Response | None:
    where: str | None
    try:
        value = json.loads(body, object_pairs_hook=_unique)
    except DuplicateKey as e:
        where = f"body: the key {e.key!r} appears twice in one object; send each key once"
    except RecursionError:
        where = f"body: nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError:
        return None  # not JSON at all: FastAPI's own 422 says where
    else:
        where = depth_problem(value) or text_problem(value, "body")
    if not where:
        return None
    return await token_refusal(request) or invalid(where)


def text_problem(value: Any, at: str = "") -> str | None:
    """Where the first string (or key) with a forbidden character is, and which, or None."""
    if isinstance(value, str):
        problem = character_problem(value)
        return f"{at}: {problem}" if problem else None
    if isinstance(value, dict):
        pairs = [(f"{at}.{k}" if at else k, item) for k, v in value.items() for item in (k, v)]  # keys too
    elif isinstance(value, list):
        pairs = [(f"{at}.{i}", v) for i, v in enumerate(value)]
    else:
        return None
    return next((p for where, v in pairs if (p := text_problem(v, where))), None)


def depth_problem(value: Any, depth: int = 0) -> str | None:
    if depth > MAX_JSON_DEPTH:
        return f"body: nested deeper than {MAX_JSON_DEPTH} levels"
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((p for v in children if (p := depth_problem(v, depth + 1))), None)


def unquote_strictly(query: bytes) -> str:
    """The query as text, with each undecodable byte as a lone surrogate (refused above)."""
    return unquote(query.decode("latin-1"), errors="surrogateescape")


def too_large(limit: int) -> Response:
    return error_response(errors.PayloadTooLarge(f"the body is larger than this route's limit of {limit} bytes"))


def invalid(where: str) -> Response:
    field, _, message = where.partition(": ")
    return problem(422, "invalid_request", "Invalid request", where, problems=[{"field": field, "message": message}])
