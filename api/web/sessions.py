"""The session cookie and CSRF: what a page handler needs to know who is asking.

The cookie holds a random secret (the database keeps its hash, escrow/access/users.py): HttpOnly, so no
script reads it; SameSite=Lax, so no other site posts with it; Secure when the request came over TLS
(directly or through a proxy that says so). Every form carries the session's CSRF token, and htmx sends
it as a header.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from api.auth import Now
from escrow.access.users import SignedIn

SESSION_COOKIE = "escrow_session"
SIGN_IN_COOKIE = "escrow_sign_in"  # the sign-in form's own CSRF token, before there is a session
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class Cookie:
    """The session cookie as the request sent it (None: no cookie), not yet checked."""

    secret: str | None
    now: datetime


async def session_cookie(request: Request, now: Now) -> Cookie:
    return Cookie(request.cookies.get(SESSION_COOKIE), now)


async def posted_csrf(request: Request) -> str:
    """The CSRF token a post carries: in its form, or in htmx's header."""
    form = await request.form()  # parsed once: Form() parameters read the same
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else request.headers.get(CSRF_HEADER, "")


def same_token(sent: str, expected: str) -> bool:
    return bool(sent) and secrets.compare_digest(sent.encode(), expected.encode())


def behind_tls(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="lax", secure=behind_tls(request), path="/"
    )


# A page handler takes `person: PersonDep` and receives the SignedIn it stands for (api/web/routing.py);
# a post takes `csrf: CsrfDep` too, which PageRoute checks against the session's token.
PersonDep = Annotated[SignedIn, Depends(session_cookie)]
CsrfDep = Annotated[str, Depends(posted_csrf)]
