"""The parent's face: its own session cookie, route class and sign-in page, on the console's foundation
(api/web/sessions.py for cookies and CSRF, api/web/routing.py for the one check around every page)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.auth import Now
from api.web.routing import Face, PageRoute
from api.web.sessions import Cookie
from api.web.templating import render
from escrow.access.parents import ParentSignedIn, signed_in_parent
from escrow.families.overview import waiting_classes

PREFIX = "/m"
PARENT_COOKIE = "escrow_parent"  # not the console's: a regulator and a parent may share a browser
SIGN_IN_COOKIE = "escrow_parent_sign_in"  # the sign-in form's CSRF token, before there is a session
SIGN_IN = f"{PREFIX}/sign-in"
HOME = f"{PREFIX}/home"
PHONE = Face(signed_in_parent, SIGN_IN, "m/error.html")


class PhoneRoute(PageRoute):
    face = PHONE


async def parent_cookie(request: Request, now: Now) -> Cookie:
    return Cookie(request.cookies.get(PARENT_COOKIE), now)


def safe_next(target: str) -> str:
    """Only a page of the parent's face: never another site (an open redirect)."""
    return target if target.startswith(f"{PREFIX}/") and not target.startswith("//") else HOME


# A phone page takes `person: ParentDep` and receives the ParentSignedIn its cookie stands for
ParentDep = Annotated[ParentSignedIn, Depends(parent_cookie)]


def phone_page(
    request: Request,
    session: Session,
    person: ParentSignedIn,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> Response:
    """A signed-in parent's page, its tab bar counting the classes that wait for their word."""
    waiting = len(waiting_classes(session, caller=person.caller))
    return render(request, template, {"person": person, "waiting_count": waiting, **context}, status)
