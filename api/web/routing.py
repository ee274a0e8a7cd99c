"""PageRoute: the one authorization check of every page, in the one thread its sync handler runs in.

Around the handler: the session cookie becomes the signed-in person (none or ended: to the sign-in page);
a post's CSRF token must be the session's (else 403, nothing changed); an object outside the person's
scope, or a page their role may not see, is 404, as in the API; the transaction commits before the page
is sent, and any refusal rolls it back. Each face (the console, the parent's phone) names how its cookie
becomes a person, where its sign-in page is and which page tells a refusal: a route class of its own.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from api.web.sessions import Cookie, same_token
from api.web.templating import render
from escrow import errors
from escrow.access.parents import ParentSignedIn
from escrow.access.users import SignedIn, signed_in

SIGN_IN = "/console/sign-in"


class CsrfRefused(errors.Forbidden):
    code = "csrf_refused"
    title = "Form refused"


@dataclass(frozen=True, slots=True)
class Face:
    """How a face's cookie becomes its signed-in person (Unauthenticated when it does not), where its sign-in
    page is, and the template of its refusals."""

    resolve: Callable[..., Any]
    sign_in: str
    error_template: str


CONSOLE = Face(signed_in, SIGN_IN, "error.html")


class PageRoute(APIRoute):
    face: ClassVar[Face] = CONSOLE

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, _guarded(endpoint, set(kwargs.get("methods") or ()), self.face), **kwargs)


def _guarded(endpoint: Callable[..., Any], methods: set[str], face: Face) -> Callable[..., Any]:
    parameters = inspect.signature(endpoint).parameters
    if inspect.iscoroutinefunction(endpoint) or not {"request", "session"} <= set(parameters):
        raise TypeError(f"{endpoint.__name__}: a page is a sync handler taking the request and the session")
    takes_person = "person" in parameters
    if methods - {"GET", "HEAD"} and takes_person and "csrf" not in parameters:
        raise TypeError(f"{endpoint.__name__} changes state: it must take `csrf: CsrfDep`")

    @functools.wraps(endpoint)
    def handle(*args: Any, **kwargs: Any) -> Response:
        request: Request = kwargs["request"]
        session = kwargs["session"]
        try:
            if takes_person:
                cookie: Cookie = kwargs["person"]
                if cookie.secret is None:
                    raise errors.Unauthenticated("sign in first")
                kwargs["person"] = person = face.resolve(session, secret=cookie.secret, now=cookie.now)
                request.state.person = person
                name_in_log(request, person)
                if "csrf" in kwargs and not same_token(kwargs["csrf"], person.csrf_token):
                    raise CsrfRefused("this form has expired or did not come from this site: reload the page")
            response: Response = endpoint(*args, **kwargs)
            session.commit()
            return response
        except errors.Unauthenticated:
            session.rollback()
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{face.sign_in}?next={quote(back)}", status_code=303)
        except errors.EscrowError as refused:
            session.rollback()
            return error_page(request, refused, face.error_template)

    return handle


def name_in_log(request: Request, person: SignedIn | ParentSignedIn) -> None:
    """The request's log line names the person by principal, role and (for staff) user id
    (api/observability.py); never by their name, phone, cookie or password."""
    line = getattr(request.state, "request_log", None)
    if line is not None:
        line.update(principal=person.caller.principal, role=person.caller.role.value)
        if isinstance(person, SignedIn):
            line.update(user_id=str(person.user.id))


def error_page(request: Request, refused: errors.EscrowError, template: str = CONSOLE.error_template) -> Response:
    """Outside one's scope, or not for one's role, is 'not found': its existence does not leak."""
    status = (
        403
        if isinstance(refused, CsrfRefused)
        else 404
        if isinstance(refused, errors.NotFound | errors.Forbidden)
        else 400
    )
    person = getattr(request.state, "person", None)
    return render(request, template, {"status": status, "refused": refused, "person": person}, status)
