"""Reports: held funds and their aging as of a date and time (Beijing), on the page and as CSV or XLSX."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.auth import Now
from api.deps import SessionDep
from api.web import exports
from api.web.routing import PageRoute
from api.web.sessions import PersonDep
from api.web.templating import gettext, render
from escrow.access.users import SignedIn
from escrow.errors import InvalidRequest
from escrow.rules.calendar import BUSINESS_TZ
from escrow.supervision import reports
from escrow.supervision.exports import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE

router = APIRouter(prefix="/console/reports", include_in_schema=False, route_class=PageRoute)
KINDS = {"held-funds": "Held funds", "aging": "Held funds by age"}


def _instant(as_of: str, now: datetime) -> datetime | None:
    """A datetime-local field's value, read as Beijing time; empty: now (None)."""
    if not as_of:
        return None
    try:
        instant = datetime.fromisoformat(as_of)
    except ValueError:
        raise InvalidRequest("as_of is a date and time, e.g. 2026-12-01T09:00", field="as_of") from None
    instant = instant.replace(tzinfo=BUSINESS_TZ) if instant.tzinfo is None else instant
    return min(instant, now)


def _report(session: SessionDep, person: SignedIn, kind: str, as_of: datetime | None, now: datetime) -> reports.Report:
    if kind == "aging":
        return reports.held_funds_aging(session, caller=person.caller, as_of=as_of, now=now)
    return reports.held_funds(session, caller=person.caller, as_of=as_of, now=now)


@router.get("")
def reports_page(request: Request, session: SessionDep, person: PersonDep, now: Now, as_of: str = "") -> Response:
    try:
        instant = _instant(as_of, now)
    except InvalidRequest:
        reports.held_funds(session, caller=person.caller, as_of=None, now=now)  # the role check, as below
        return render(request, "reports.html", {"person": person, "as_of": as_of, "errors": {"as_of": "format"}}, 422)
    context = {
        "person": person,
        "as_of": as_of,
        "errors": {},
        "held": _report(session, person, "held-funds", instant, now),
        "aging": _report(session, person, "aging", instant, now),
    }
    return render(request, "reports.html", context)


@router.get("/{kind}.{extension}")
def report_file(
    request: Request, session: SessionDep, person: PersonDep, now: Now, kind: str, extension: str, as_of: str = ""
) -> Response:
    if kind not in KINDS or extension not in ("csv", "xlsx"):
        raise InvalidRequest(f"no report {kind}.{extension}")
    report = _report(session, person, kind, _instant(as_of, now), now)
    title = gettext(request, KINDS[kind])
    translate = lambda message: gettext(request, message)  # noqa: E731
    if extension == "csv":
        body, media = exports.report_csv(report, title, translate), CSV_MEDIA_TYPE
    else:
        body, media = exports.report_xlsx(report, title, translate), XLSX_MEDIA_TYPE
    filename = f"{kind}-{exports.stamp(report.as_of)}.{extension}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
