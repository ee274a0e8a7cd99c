"""Alerts: raised when a rule's condition turns on (not again while it stays on), cleared when it
turns off, and worked through by a regulator: open -> acknowledged -> resolved, with who and why.

Resolving says the cause was dealt with, so it ends the alert's life (cleared_at) like the condition
turning off: if the condition still holds on the next run, a new alert opens naming the resolved one
(`reopens`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, require_role
from escrow.db.paging import Page, check_limit, decode_cursor, page_of
from escrow.errors import NotFound
from escrow.ids import new_id
from escrow.rules.states import ALERT, AlertState, move


class Severity(StrEnum):
    YELLOW = "yellow"
    RED = "red"


@dataclass(frozen=True, slots=True)
class Finding:
    """One condition found on: which rule, about whom and what, and the evidence."""

    rule: str
    severity: Severity
    institution_id: UUID | None
    subject: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)


def raise_alerts(
    session: Session, findings: Iterable[Finding], *, rules: Iterable[str], now: datetime, run_id: UUID | None
) -> list[UUID]:
    """Raise an alert for each finding whose condition was off; clear those of `rules` now off."""
    raised: list[UUID] = []
    found = list(findings)
    for f in found:
        alert_id = session.scalar(
            text(
                "INSERT INTO alert (id, rule, severity, institution_id, subject, detail, evidence, raised_at,"
                " raised_by_run, reopens) VALUES (:id, :rule, :severity, :inst, :subject,"
                " coalesce((SELECT name || ': ' FROM institution WHERE id = :inst), '') || :detail,"
                " CAST(:evidence AS jsonb), :now, :run, (SELECT CASE WHEN p.cleared_at = p.resolved_at THEN p.id END"
                " FROM alert p WHERE p.rule = :rule AND p.subject = :subject"
                " AND p.institution_id IS NOT DISTINCT FROM CAST(:inst AS uuid) ORDER BY p.raised_at DESC LIMIT 1))"
                " ON CONFLICT"
                " (rule, coalesce(institution_id, '00000000-0000-0000-0000-000000000000'::uuid), subject)"
                " WHERE cleared_at IS NULL DO NOTHING RETURNING id"
            ),
            {
                "id": new_id(),
                "rule": f.rule,
                "severity": f.severity.value,
                "inst": f.institution_id,
                "subject": f.subject,
                "detail": f.detail,
                "evidence": json.dumps(f.evidence, default=str),
                "now": now,
                "run": run_id,
            },
        )
        if alert_id is not None:
            raised.append(alert_id)
    on = {(f.rule, f.institution_id, f.subject) for f in found}
    live = session.execute(
        text("SELECT id, rule, institution_id, subject FROM alert WHERE cleared_at IS NULL AND rule = ANY(:rules)"),
        {"rules": list(rules)},
    ).all()
    off = [row.id for row in live if (row.rule, row.institution_id, row.subject) not in on]
    if off:
        session.execute(text("UPDATE alert SET cleared_at = :now WHERE id = ANY(:ids)"), {"now": now, "ids": off})
    return raised


def _scope(caller: Caller) -> tuple[str, dict[str, Any]]:
    """Regulators see alerts of their jurisdictions' institutions and district-wide ones."""
    require_role(caller, Role.REGULATOR)
    return (
        "(a.institution_id IS NULL OR a.institution_id IN"
        " (SELECT id FROM institution WHERE jurisdiction_code = ANY(:jurisdictions)))",
        {"jurisdictions": sorted(caller.jurisdictions)},
    )


def list_alerts(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID | None,
    rule: str | None,
    severity: Severity | None,
    state: str | None,
    cursor: str | None,
    limit: int,
) -> Page[dict[str, Any]]:
    where, params = _scope(caller)
    check_limit(limit)
    for column, value in (("institution_id", institution_id), ("rule", rule), ("severity", severity), ("state", state)):
        if value is not None:
            where += f" AND a.{column} = :{column}"
            params[column] = str(value)
    after = decode_cursor(cursor)
    if after is not None:
        where += " AND a.id > :after"
        params["after"] = after
    rows = [
        dict(r)
        for r in session.execute(
            text(f"SELECT a.* FROM alert a WHERE {where} ORDER BY a.id LIMIT :limit"),  # noqa: S608
            {**params, "limit": limit + 1},
        ).mappings()
    ]
    return page_of(rows, limit, rows[limit - 1]["id"] if len(rows) > limit else None)


def get_alert(session: Session, *, caller: Caller, alert_id: UUID) -> dict[str, Any]:
    """One alert of your jurisdictions (or a district-wide one)."""
    where, params = _scope(caller)
    row = (
        session.execute(text(f"SELECT a.* FROM alert a WHERE a.id = :id AND {where}"), {**params, "id": alert_id})  # noqa: S608
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFound(f"alert {alert_id} does not exist or is outside your scope")
    return dict(row)


def work_alert(
    session: Session, *, caller: Caller, alert_id: UUID, event: str, note_text: str, now: datetime
) -> dict[str, Any]:
    """Acknowledge or resolve an alert, with who and why."""
    where, params = _scope(caller)
    row = (
        session.execute(
            text(f"SELECT a.* FROM alert a WHERE a.id = :id AND {where} FOR NO KEY UPDATE"),  # noqa: S608
            {**params, "id": alert_id},
        )
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFound(f"alert {alert_id} does not exist or is outside your scope")
    after = move("alert", ALERT, AlertState(row["state"]), event)
    columns = "acknowledged_at = :now, acknowledged_by = :by, acknowledge_note = :note"
    if event == "resolve":
        columns = (
            "resolved_at = :now, resolved_by = :by, resolution_note = :note, cleared_at = coalesce(cleared_at, :now)"
        )
    session.execute(
        text(f"UPDATE alert SET state = :state, {columns} WHERE id = :id"),  # noqa: S608
        {"state": after, "now": now, "by": caller.acting, "note": note_text, "id": alert_id},
    )
    note(
        session,
        caller,
        f"alert.{after}",
        institution_id=row["institution_id"],
        object_type="alert",
        object_id=alert_id,
        at=now,
        before={"state": row["state"]},
        after={"state": after, "note": note_text},
    )
    return dict(session.execute(text("SELECT * FROM alert WHERE id = :id"), {"id": alert_id}).mappings().one())
