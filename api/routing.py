"""The route class of every router: a sync handler's whole request in the one thread it runs in."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from api.auth import Bearer, bearer, get_caller


class HandlerThreadRoute(APIRoute):
    """A sync handler runs in a thread of the pool; in that thread, around it:
    - its caller's token is checked first (api/auth.py hands over a Bearer): not in a hop to the pool of
      its own, which under load queues behind other requests' work;
    - the session it takes commits as soon as it returns, while the rows it locked are held: not after a
      hop back to the event loop and another to the pool (bench/http_collections.py --hot). The session
      dependency then finds nothing left to commit; a failed commit is the handler's exception, so never
      a 2xx."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _in_one_thread(endpoint), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """What a request sends and the route does not use is refused (422), never ignored: a body to a
        route that takes none, a query parameter it does not know."""
        handler = super().get_route_handler()
        takes_body = self.body_field is not None or "requestBody" in (self.openapi_extra or {})  # a statement file
        known = _query_names(self.dependant)
        takes_caller = any(d.call is get_caller for d in self.dependant.dependencies)

        async def refuse_unused(request: Request) -> Response:
            unused = [
                {"type": "extra_forbidden", "loc": ("query", name), "msg": "this route takes no such parameter"}
                for name in request.query_params
                if name not in known
            ]
            if not takes_body and await request.body():
                unused.append({"type": "extra_forbidden", "loc": ("body",), "msg": "this route takes no body"})
            if unused:
                if takes_caller:  # a bad token is told before a bad request (api/problems.py checks it)
                    await get_caller(request, datetime.now(UTC), await bearer(request))
                raise RequestValidationError(unused)
            return await handler(request)

        return refuse_unused


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route reads, its dependencies' included."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _in_one_thread(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    parameters = inspect.signature(endpoint).parameters
    takes_caller, takes_session = "caller" in parameters, "session" in parameters
    if takes_caller and (inspect.iscoroutinefunction(endpoint) or not takes_session):
        raise TypeError(f"{endpoint.__name__} takes the caller: it must be a sync handler that takes the session")
    if inspect.iscoroutinefunction(endpoint) or not takes_session:
        return endpoint

    @functools.wraps(endpoint)
    def handle(*args: Any, **kwargs: Any) -> Any:
        session = kwargs["session"]
        if takes_caller:
            token: Bearer = kwargs["caller"]
            kwargs["caller"] = token.caller(session)
        result = endpoint(*args, **kwargs)
        session.commit()
        return result

    return handle
