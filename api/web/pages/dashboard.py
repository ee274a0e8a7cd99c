"""The regulator's dashboard: money held now and over 90 days, flows by week, aging, alerts, holds."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.auth import Now
from api.deps import SessionDep
from api.web.routing import PageRoute
from api.web.sessions import PersonDep
from api.web.templating import render
from escrow.supervision import dashboard, reports

router = APIRouter(prefix="/console", include_in_schema=False, route_class=PageRoute)


@router.get("/dashboard")
def dashboard_page(request: Request, session: SessionDep, person: PersonDep, now: Now) -> Response:
    caller = person.caller
    held = reports.held_funds(session, caller=caller, as_of=None, now=now)
    aging = dashboard.kept_aging(session, caller=caller)  # aging from the postings takes seconds: kept by a job
    days = dashboard.held_by_day(session, caller=caller)
    weeks = dashboard.by_week(days)
    chart_data = {
        "days": [d.day.isoformat() for d in days],
        "held": [d.held_fen for d in days],
        "weeks": [w.day.isoformat() for w in weeks],
        "collected": [w.collected_fen for w in weeks],
        "released": [w.released_fen for w in weeks],
        "refunded": [w.refunded_fen for w in weeks],
    }
    context = {
        "person": person,
        "now": now,
        "held": held,
        "total": held.total(),
        "by_jurisdiction": held.by_jurisdiction(),
        "aging": aging.fen,
        "aging_at": aging.computed_at,
        "weeks": weeks,
        "alert_counts": dashboard.open_alert_counts(session, caller=caller),
        "not_active": dashboard.institutions_not_active(session, caller=caller),
        "chart_data": json.dumps(chart_data),
    }
    return render(request, "dashboard.html", context)
