"""Resolving an alert says its cause was dealt with: if the condition still holds on the next run, the
alert opens again, naming the resolution it contradicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.supervision.alerts import Finding, Severity, raise_alerts, work_alert
from tests.factories import regulator

RUN = datetime(2026, 12, 1, 1, tzinfo=UTC)
RULE = "money_idle_long"


def _run(s: Session, inst: UUID, *, on: bool, day: int) -> list[UUID]:
    found = [Finding(RULE, Severity.RED, inst, "", "idle", {"days": 30 + day})] if on else []
    return raise_alerts(s, found, rules=[RULE], now=RUN + timedelta(days=day), run_id=None)


def _alerts(s: Session, inst: UUID) -> list[tuple[str, bool, UUID | None]]:
    rows = s.execute(
        text("SELECT id, state, cleared_at IS NULL, reopens FROM alert WHERE institution_id = :i ORDER BY raised_at"),
        {"i": inst},
    ).all()
    return [(state, live, reopens) for _, state, live, reopens in rows]


def test_an_alert_resolved_while_its_condition_holds_opens_again_linked_to_the_resolution(
    db: sessionmaker[Session], institution: UUID
) -> None:
    with db.begin() as s:
        (first,) = _run(s, institution, on=True, day=0)
        work_alert(s, caller=regulator(), alert_id=first, event="resolve", note_text="called them", now=RUN)
        (again,) = _run(s, institution, on=True, day=1)  # still idle the next day
        assert _alerts(s, institution) == [("resolved", False, None), ("open", True, first)]
        assert _run(s, institution, on=True, day=2) == []  # once, not on every run
        assert _run(s, institution, on=False, day=3) == []  # classes resumed: the alert clears
        assert _alerts(s, institution)[-1] == ("open", False, first)
        work_alert(s, caller=regulator(), alert_id=again, event="resolve", note_text="classes resumed", now=RUN)
        (later,) = _run(s, institution, on=True, day=40)  # idle again much later: a new alert, nothing contradicted
        assert _alerts(s, institution)[-1] == ("open", True, None)
        assert later not in (first, again)
