"""Risk and reconciliation alerts, worked through by regulators."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented
from api.routers.institutions import Cursor, Limit
from api.schemas import AlertOut, NoteIn, PageOf
from escrow.db.paging import DEFAULT_LIMIT
from escrow.supervision import alerts
from escrow.supervision.alerts import Severity

router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=ApiRoute)


@router.get("", operation_id="list_alerts", responses=documented(403))
def list_alerts(
    session: SessionDep,
    caller: CallerDep,
    institution_id: Annotated[UUID | None, Query()] = None,
    rule: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
    severity: Annotated[Severity | None, Query()] = None,
    state: Annotated[str | None, Query(pattern=r"^(open|acknowledged|resolved)$")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> PageOf[AlertOut]:
    """Alerts of your jurisdictions, filtered by institution, rule, severity and state."""
    page = alerts.list_alerts(
        session,
        caller=caller,
        institution_id=institution_id,
        rule=rule,
        severity=severity,
        state=state,
        cursor=cursor,
        limit=limit,
    )
    return PageOf(items=[AlertOut.model_validate(a) for a in page.items], next_cursor=page.next_cursor)


@router.get("/{alert_id}", operation_id="get_alert", responses=documented(403, 404))
def get_alert(alert_id: UUID, session: SessionDep, caller: CallerDep) -> AlertOut:
    """One alert, with its evidence and who worked it."""
    return AlertOut.model_validate(alerts.get_alert(session, caller=caller, alert_id=alert_id))


@router.post("/{alert_id}/acknowledgement", operation_id="acknowledge_alert", responses=documented(403, 404, 409))
def acknowledge_alert(alert_id: UUID, body: NoteIn, session: SessionDep, caller: CallerDep, now: Now) -> AlertOut:
    """Take an open alert in hand, with a note."""
    return AlertOut.model_validate(
        alerts.work_alert(session, caller=caller, alert_id=alert_id, event="acknowledge", note_text=body.note, now=now)
    )


@router.post("/{alert_id}/resolution", operation_id="resolve_alert", responses=documented(403, 404, 409))
def resolve_alert(alert_id: UUID, body: NoteIn, session: SessionDep, caller: CallerDep, now: Now) -> AlertOut:
    """Close an alert with what was found and done."""
    return AlertOut.model_validate(
        alerts.work_alert(session, caller=caller, alert_id=alert_id, event="resolve", note_text=body.note, now=now)
    )
