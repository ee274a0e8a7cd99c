"""The alert workbench: filter, acknowledge, resolve with a note (htmx swaps the alert's row in place)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.auth import Now
from api.deps import SessionDep
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from api.web.templating import render
from escrow.access.users import SignedIn
from escrow.errors import NotFound
from escrow.supervision.alerts import Severity, get_alert, list_alerts, work_alert
from escrow.supervision.dashboard import institution_names

router = APIRouter(prefix="/console/alerts", include_in_schema=False, route_class=PageRoute)
STATES = ("open", "acknowledged", "resolved")


@router.get("")
def alerts_page(
    request: Request, session: SessionDep, person: PersonDep, severity: str = "", state: str = "open", rule: str = ""
) -> Response:
    filters = {"severity": severity, "state": state, "rule": rule}
    return render(request, "alerts.html", _alerts_context(session, person, filters, {}))


def _alerts_context(
    session: SessionDep, person: SignedIn, filters: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    severity, state, rule = filters["severity"], filters["state"], filters["rule"]
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
    return {"person": person, "alerts": rows, "names": names, "filters": filters, "states": STATES, "errors": errors}


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
        raise NotFound(f"an alert is acknowledged or resolved, not {event!r}")
    if not note.strip():
        return _refused(request, session, person, alert_id)
    alert = work_alert(session, caller=person.caller, alert_id=alert_id, event=event, note_text=note.strip(), now=now)
    if not request.headers.get("HX-Request"):
        return RedirectResponse(request.headers.get("referer") or "/console/alerts", status_code=303)
    names = institution_names(session, caller=person.caller, ids={alert["institution_id"]} - {None})
    return render(request, "alert_row.html", {"person": person, "alert": alert, "names": names, "errors": {}})


def _refused(request: Request, session: SessionDep, person: SignedIn, alert_id: UUID) -> Response:
    """The alert again (its row for htmx, else the whole list), saying beside its note that one is needed."""
    errors = {f"note-{alert_id}": "required"}
    if not request.headers.get("HX-Request"):
        context = _alerts_context(session, person, {"severity": "", "state": "", "rule": ""}, errors)
        return render(request, "alerts.html", context, 422)
    alert = get_alert(session, caller=person.caller, alert_id=alert_id)
    names = institution_names(session, caller=person.caller, ids={alert["institution_id"]} - {None})
    return render(request, "alert_row.html", {"person": person, "alert": alert, "names": names, "errors": errors}, 422)
