"""A parent signs in with their phone number and a one-time code; signs out; switches the language. In
development, the outbox of messages (the codes among them) is a page of its own."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import Now
from api.deps import SessionDep
from api.problems import client_of
from api.web.phone.face import HOME, PARENT_COOKIE, PREFIX, SIGN_IN, SIGN_IN_COOKIE, ParentDep, PhoneRoute, safe_next
from api.web.sessions import CsrfDep, same_token, set_cookie
from api.web.templating import LANGUAGE_COOKIE, LANGUAGES, render
from api.web.throttle import allow_code_request
from escrow.access.messages import outbox_for
from escrow.access.parents import CODE_LIFETIME, SESSION_LIFETIME, request_code, sign_in_with_code, sign_out_parent
from escrow.errors import CodeRequestsExhausted, InvalidRequest, NotFound
from escrow.rules.identity import mask_phone

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PhoneRoute)
Text = Annotated[str, Form()]


@router.get("")
def phone_home(request: Request, session: SessionDep, person: ParentDep) -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/sign-in")
def sign_in_form(request: Request, session: SessionDep, next: str = HOME) -> Response:
    return _phone_page(request, next=next, phone="", errors={})


def _form(request: Request, template: str, context: dict[str, object], status: int) -> Response:
    """A sign-in form with a fresh CSRF token of its own (there is no session yet)."""
    token = secrets.token_urlsafe(32)
    response = render(request, template, {"person": None, "csrf_token": token, **context}, status)
    set_cookie(response, request, SIGN_IN_COOKIE, token, max_age=3600)
    return response


def _phone_page(request: Request, *, next: str, phone: str, errors: dict[str, str], status: int = 200) -> Response:
    return _form(request, "m/sign_in.html", {"next": safe_next(next), "phone": phone, "errors": errors}, status)


def _code_page(
    request: Request, *, next: str, phone: str, errors: dict[str, str], status: int = 200, **extra: object
) -> Response:
    context = {
        "next": safe_next(next),
        "phone": phone,
        "masked": mask_phone(phone),
        "errors": errors,
        "minutes": int(CODE_LIFETIME.total_seconds() // 60),
        "dev_outbox": request.app.state.dev_outbox,
        **extra,
    }
    return _form(request, "m/code.html", context, status)


def _form_expired(request: Request, csrf_token: str) -> bool:
    return not same_token(csrf_token, request.cookies.get(SIGN_IN_COOKIE, ""))


@router.post("/sign-in/code")
def code_submit(
    request: Request, session: SessionDep, now: Now, phone: Text = "", csrf_token: Text = "", next: Text = ""
) -> Response:
    phone = phone.strip().replace(" ", "")
    if _form_expired(request, csrf_token):
        return _phone_page(request, next=next, phone=phone, errors={"form": "expired"}, status=403)
    if not allow_code_request(client_of(request)):
        return _phone_page(request, next=next, phone=phone, errors={"form": "throttled"}, status=429)
    try:
        request_code(session, phone=phone, sender=request.app.state.messages, now=now)
    except InvalidRequest:
        return _phone_page(request, next=next, phone=phone, errors={"phone": "phone_format"}, status=422)
    except CodeRequestsExhausted as wait:  # a code was sent a moment ago: the family may well have it
        return _code_page(request, next=next, phone=phone, errors={"form": "code_wait"}, status=429,
                          wait_s=wait.retry_after_s)  # fmt: skip
    return _code_page(request, next=next, phone=phone, errors={})


@router.post("/sign-in")
def sign_in_submit(
    request: Request,
    session: SessionDep,
    now: Now,
    phone: Text = "",
    code: Text = "",
    csrf_token: Text = "",
    next: Text = "",
) -> Response:
    if _form_expired(request, csrf_token):
        return _phone_page(request, next=next, phone=phone, errors={"form": "expired"}, status=403)
    client = client_of(request)
    if request.app.state.throttle.retry_after(client) is not None:
        return _code_page(request, next=next, phone=phone, errors={"form": "throttled"}, status=429)
    checked = sign_in_with_code(session, phone=phone.strip(), code=code, now=now)
    if checked.secret is None:
        request.app.state.throttle.count_failure(client)
        status = 401 if checked.refused == "wrong" else 410
        return _code_page(request, next=next, phone=phone, errors={"code": checked.refused or "wrong"},
                          status=status, tries_left=checked.tries_left)  # fmt: skip
    response = RedirectResponse(safe_next(next) if next else HOME, status_code=303)
    set_cookie(response, request, PARENT_COOKIE, checked.secret, max_age=int(SESSION_LIFETIME.total_seconds()))
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return response


@router.post("/sign-out")
def sign_out_submit(request: Request, session: SessionDep, person: ParentDep, csrf: CsrfDep, now: Now) -> Response:
    sign_out_parent(session, secret=request.cookies[PARENT_COOKIE], now=now)
    response = RedirectResponse(SIGN_IN, status_code=303)
    response.delete_cookie(PARENT_COOKIE, path="/")
    return response


@router.get("/language/{language}")
def switch_language(request: Request, session: SessionDep, language: str, next: str = HOME) -> Response:
    response = RedirectResponse(safe_next(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax", path="/")
    return response


@router.get("/dev/outbox")
def dev_outbox(request: Request, session: SessionDep, phone: str = "") -> Response:
    """Development only: the messages the service sent, the sign-in codes among them (as an SMS would)."""
    if not request.app.state.dev_outbox:
        raise NotFound("there is no outbox page outside development")
    messages = outbox_for(session, recipient=phone.strip() or None)
    return render(request, "m/outbox.html", {"person": None, "messages": messages, "phone": phone})
