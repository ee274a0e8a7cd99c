"""Alerts: raised when a rule's condition turns on (not again while it stays on), cleared when it
turns off, and worked through by a regulator: open -> acknowledged -> resolved, with who and why."""

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

from escrow.ids import new_id


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
                " raised_by_run) VALUES (:id, :rule, :severity, :inst, :subject, :detail, CAST(:evidence AS jsonb),"
                " :now, :run) ON CONFLICT"
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
