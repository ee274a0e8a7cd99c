"""The alert workbench: filter, acknowledge, resolve with a note (htmx swaps the alert's row in place)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import Now
from api.deps import SessionDep
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from api.web.templating import render
from escrow.access.users import SignedIn
from escrow.supervision.alerts import Severity, list_alerts, work_alert
from escrow.supervision.dashboard import institution_names

router = APIRouter(prefix="/console/alerts", include_in_schema=False, route_class=PageRoute)
STATES = ("open", "acknowledged", "resolved")


@router.get("")
def alerts_page(
    request: Request, session: SessionDep, person: PersonDep, severity: str = "", state: str = "open", rule: str = ""
) -> Response:
    rows = list_alerts(
        session,
        caller=person.caller,
        institution_id=None,
        rule=rule or None,
        severity=Severity(severity) if severity in Severity.__members__.values() else None,
        state=state if state in STATES else None,
        cursor=None,
        limit=200,
    ).items
    names = institution_names(session, caller=person.caller, ids={r["institution_id"] for r in rows} - {None})
    filters = {"severity": severity, "state": state, "rule": rule}
    context = {"person": person, "alerts": rows, "names": names, "filters": filters, "states": STATES}
    return render(request, "alerts.html", context)


@router.post("/{alert_id}/{event}")
def work_alert_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    alert_id: UUID,
    event: str,
    note: Annotated[str, Form()] = "",
) -> Response:
    if event not in ("acknowledge", "resolve"):
        return _row_error(request, person, alert_id, "event")
    if not note.strip():
        return _row_error(request, person, alert_id, "note")
    alert = work_alert(session, caller=person.caller, alert_id=alert_id, event=event, note_text=note.strip(), now=now)
    if not request.headers.get("HX-Request"):
        return RedirectResponse(request.headers.get("referer") or "/console/alerts", status_code=303)
    names = institution_names(session, caller=person.caller, ids={alert["institution_id"]} - {None})
    return render(request, "alert_row.html", {"person": person, "alert": alert, "names": names})


def _row_error(request: Request, person: SignedIn, alert_id: UUID, field: str) -> Response:
    return render(request, "alert_note_error.html", {"person": person, "alert_id": alert_id, "field": field}, 422)
