"""Signing in and out, the language switch, and one's own password."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import Now
from api.deps import SessionDep
from api.web.routing import SIGN_IN, PageRoute, name_in_log
from api.web.sessions import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    CsrfDep,
    PersonDep,
    same_token,
    set_cookie,
)
from api.web.templating import LANGUAGE_COOKIE, LANGUAGES, render
from api.web.throttle import allow_sign_in
from escrow.access.callers import Role
from escrow.access.users import SESSION_LIFETIME, SignedIn, change_password, sign_in, sign_out
from escrow.errors import InvalidRequest, Unauthenticated

router = APIRouter(prefix="/console", include_in_schema=False, route_class=PageRoute)
Text = Annotated[str, Form()]


HOMES = {Role.REGULATOR: "/console/dashboard", Role.INSTITUTION: "/desk"}  # an institution's staff: its desk


def home_of(person: SignedIn) -> str:
    return HOMES.get(person.caller.role, "/console/account")


def safe_next(target: str) -> str:
    """Only a page of the console or the desk: never another site (an open redirect)."""
    ours = target.startswith(("/console/", "/desk/")) or target == "/desk"
    return target if ours and not target.startswith("//") else "/console"


@router.get("")
def console_home(request: Request, session: SessionDep, person: PersonDep) -> Response:
    return RedirectResponse(home_of(person), status_code=303)


@router.get("/sign-in")
def sign_in_form(request: Request, session: SessionDep, next: str = "/console") -> Response:
    return _sign_in_page(request, next=next, errors={}, name="")


def _sign_in_page(request: Request, *, next: str, errors: dict[str, str], name: str, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    context = {"person": None, "csrf_token": token, "next": safe_next(next), "errors": errors, "name": name}
    response = render(request, "sign_in.html", context, status)
    set_cookie(response, request, SIGN_IN_COOKIE, token, max_age=3600)
    return response


@router.post("/sign-in")
def sign_in_submit(
    request: Request,
    session: SessionDep,
    now: Now,
    name: Text = "",
    password: Text = "",
    csrf_token: Text = "",
    next: Text = "",
) -> Response:
    if not same_token(csrf_token, request.cookies.get(SIGN_IN_COOKIE, "")):
        return _sign_in_page(request, next=next, errors={"form": "expired"}, name=name, status=403)
    client = request.client.host if request.client else "unknown"
    if not allow_sign_in(client, name):
        return _sign_in_page(request, next=next, errors={"form": "throttled"}, name=name, status=429)
    try:
        secret, person = sign_in(session, name=name, password=password, now=now)
    except Unauthenticated:
        return _sign_in_page(request, next=next, errors={"password": "wrong"}, name=name, status=401)
    name_in_log(request, person)
    target = safe_next(next) if next else home_of(person)
    response = RedirectResponse(target if target != "/console" else home_of(person), status_code=303)
    set_cookie(response, request, SESSION_COOKIE, secret, max_age=int(SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return response


@router.post("/sign-out")
def sign_out_submit(request: Request, session: SessionDep, person: PersonDep, csrf: CsrfDep, now: Now) -> Response:
    sign_out(session, secret=request.cookies[SESSION_COOKIE], now=now)
    response = RedirectResponse(SIGN_IN, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/language/{language}")
def switch_language(request: Request, session: SessionDep, language: str, next: str = "/console") -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax", path="/")
    return response


@router.get("/account")
def account_page(request: Request, session: SessionDep, person: PersonDep) -> Response:
    return render(request, "account.html", {"person": person, "errors": {}, "done": False})


@router.post("/account/password")
def password_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    current: Text = "",
    new: Text = "",
) -> Response:
    signed = person
    try:
        change_password(
            session,
            person=signed,
            current=current,
            new=new,
            keep_secret=request.cookies[SESSION_COOKIE],
            now=now,
        )
    except InvalidRequest as refused:
        errors = {str(refused.context.get("field", "form")): str(refused.context.get("reason", "invalid"))}
        return render(request, "account.html", {"person": signed, "errors": errors, "done": False}, 422)
    return render(request, "account.html", {"person": signed, "errors": {}, "done": True})
