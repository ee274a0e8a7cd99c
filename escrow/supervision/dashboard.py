"""The regulator's dashboard: figures over time kept as data, so the page reads rows, not the postings.

`record_daily_figures` (a job) writes, per institution and Beijing business date of the last 90, what was
held for families at the end of the day (today: so far) and what was collected, released and refunded that
day, summing the postings once per run. The dashboard then reads about ninety rows per institution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from escrow.access.callers import Caller, Role, institution_scope, require_role
from escrow.db.records import DailyFigure, Institution
from escrow.rules.calendar import BUSINESS_TZ
from escrow.rules.states import InstitutionStatus
from escrow.supervision.reports import aging_of_every_institution

TREND_DAYS = 90

# Per institution and day: prepaid movements on their normal side, by transaction kind, over the window;
# what came before the window is the first day's opening, so held is a running sum (one pass over postings).
_RECORD = text(
    """
WITH moves AS (
    SELECT p.institution_id,
           greatest((t.effective_at AT TIME ZONE 'Asia/Shanghai')::date, CAST(:first AS date) - 1) AS day,
           t.kind,
           p.amount * CASE WHEN a.normal_side = 'debit' THEN 1 ELSE -1 END AS fen
    FROM posting p
    JOIN journal_transaction t ON t.institution_id = p.institution_id AND t.id = p.transaction_id
    JOIN account a ON a.institution_id = p.institution_id AND a.id = p.account_id
    WHERE split_part(a.code, ':', 1) = 'prepaid' AND t.effective_at <= :now
), per_day AS (
    SELECT institution_id, day, sum(fen) AS net,
           sum(fen) FILTER (WHERE kind = 'collection' AND fen > 0) AS collected,
           -sum(fen) FILTER (WHERE kind = 'class_released' AND fen < 0) AS released,
           -sum(fen) FILTER (WHERE kind IN ('refund_approved', 'refund') AND fen < 0) AS refunded
    FROM moves GROUP BY institution_id, day
), days AS (
    SELECT i.id AS institution_id, g::date AS day
    FROM institution i CROSS JOIN generate_series(CAST(:first AS date) - 1, CAST(:last AS date), interval '1 day') g
), running AS (
    SELECT d.institution_id, d.day,
           sum(coalesce(p.net, 0)) OVER (PARTITION BY d.institution_id ORDER BY d.day) AS held,
           coalesce(p.collected, 0) AS collected, coalesce(p.released, 0) AS released,
           coalesce(p.refunded, 0) AS refunded
    FROM days d LEFT JOIN per_day p ON p.institution_id = d.institution_id AND p.day = d.day
)
INSERT INTO daily_figure AS f
    (institution_id, business_date, held_fen, collected_fen, released_fen, refunded_fen, computed_at)
SELECT institution_id, day, held, collected, released, refunded, :now FROM running WHERE day >= :first
ON CONFLICT (institution_id, business_date) DO UPDATE SET
    held_fen = excluded.held_fen, collected_fen = excluded.collected_fen, released_fen = excluded.released_fen,
    refunded_fen = excluded.refunded_fen, computed_at = excluded.computed_at
"""
)


def record_daily_figures(session: Session, *, now: datetime) -> dict[str, Any]:
    """Write the last 90 business dates' figures of every institution (today's as of now); safe to rerun."""
    last = now.astimezone(BUSINESS_TZ).date()
    first = last - timedelta(days=TREND_DAYS - 1)
    written = session.execute(_RECORD, {"first": first, "last": last, "now": now}).rowcount  # type: ignore[attr-defined]
    session.execute(text("DELETE FROM daily_figure WHERE business_date < :first"), {"first": first})
    aged = [
        {"i": institution_id, "d": last, **buckets}
        for institution_id, buckets in aging_of_every_institution(session, now=now).items()
    ]
    if aged:
        session.execute(
            text(
                "UPDATE daily_figure SET aged_0_30_fen = :days_0_30, aged_31_90_fen = :days_31_90,"
                " aged_over_90_fen = :days_over_90 WHERE institution_id = :i AND business_date = :d"
            ),
            aged,
        )
    return {"rows": int(written), "from": first.isoformat(), "to": last.isoformat()}


@dataclass(frozen=True, slots=True)
class DayFigures:
    day: date
    held_fen: int
    collected_fen: int
    released_fen: int
    refunded_fen: int


def held_by_day(
    session: Session, *, caller: Caller, jurisdiction_code: str | None = None, institution_id: UUID | None = None
) -> list[DayFigures]:
    """Across the caller's institutions (or one), per business date of the last 90: held at its end, and flows."""
    require_role(caller, Role.REGULATOR)
    scope = institution_scope(caller)
    if jurisdiction_code is not None:
        scope = scope & (Institution.jurisdiction_code == jurisdiction_code)
    if institution_id is not None:
        scope = scope & (Institution.id == institution_id)
    rows = session.execute(
        select(
            DailyFigure.business_date,
            func.sum(DailyFigure.held_fen),
            func.sum(DailyFigure.collected_fen),
            func.sum(DailyFigure.released_fen),
            func.sum(DailyFigure.refunded_fen),
        )
        .where(DailyFigure.institution_id.in_(select(Institution.id).where(scope)))
        .group_by(DailyFigure.business_date)
        .order_by(DailyFigure.business_date)
    ).all()
    return [DayFigures(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def by_week(days: list[DayFigures]) -> list[DayFigures]:
    """The days' flows summed per week (each named by its Monday); held is the week's last day's."""
    weeks: dict[date, DayFigures] = {}
    for d in days:
        monday = d.day - timedelta(days=d.day.weekday())
        was = weeks.get(monday)
        weeks[monday] = DayFigures(
            monday,
            d.held_fen,
            d.collected_fen + (was.collected_fen if was else 0),
            d.released_fen + (was.released_fen if was else 0),
            d.refunded_fen + (was.refunded_fen if was else 0),
        )
    return list(weeks.values())


@dataclass(frozen=True, slots=True)
class KeptAging:
    """Held funds by age as the last run of the job found them."""

    computed_at: datetime | None
    fen: dict[str, int]


def kept_aging(session: Session, *, caller: Caller) -> KeptAging:
    """The caller's institutions' held funds by age (0-30, 31-90, over 90 days), as of the job's last run."""
    require_role(caller, Role.REGULATOR)
    latest = select(func.max(DailyFigure.business_date)).scalar_subquery()
    row = session.execute(
        select(
            func.max(DailyFigure.computed_at),
            func.coalesce(func.sum(DailyFigure.aged_0_30_fen), 0),
            func.coalesce(func.sum(DailyFigure.aged_31_90_fen), 0),
            func.coalesce(func.sum(DailyFigure.aged_over_90_fen), 0),
        ).where(
            DailyFigure.business_date == latest,
            DailyFigure.institution_id.in_(select(Institution.id).where(institution_scope(caller))),
        )
    ).one()
    return KeptAging(row[0], {"days_0_30": int(row[1]), "days_31_90": int(row[2]), "days_over_90": int(row[3])})


@dataclass(frozen=True, slots=True)
class AlertCount:
    severity: str
    rule: str
    count: int


def open_alert_counts(session: Session, *, caller: Caller) -> list[AlertCount]:
    """Alerts not yet resolved nor cleared, by severity and rule, in the caller's jurisdictions."""
    require_role(caller, Role.REGULATOR)
    rows = session.execute(
        text(
            "SELECT a.severity, a.rule, count(*) FROM alert a WHERE a.state <> 'resolved' AND a.cleared_at IS NULL"
            " AND (a.institution_id IS NULL OR a.institution_id IN"
            " (SELECT id FROM institution WHERE jurisdiction_code = ANY(:codes)))"
            " GROUP BY a.severity, a.rule ORDER BY a.severity DESC, count(*) DESC, a.rule"
        ),
        {"codes": sorted(caller.jurisdictions)},
    ).all()
    return [AlertCount(r[0], r[1], int(r[2])) for r in rows]


def institutions_not_active(session: Session, *, caller: Caller) -> list[Institution]:
    """Institutions on hold, closing or closed, in the caller's jurisdictions, in that order."""
    require_role(caller, Role.REGULATOR)
    order = case(*((Institution.status == s, n) for n, s in enumerate(InstitutionStatus)), else_=len(InstitutionStatus))
    query = select(Institution).where(institution_scope(caller), Institution.status != InstitutionStatus.ACTIVE)
    return list(session.scalars(query.order_by(order, Institution.name, Institution.id)).all())


@dataclass(frozen=True, slots=True)
class InstitutionRow:
    institution: Institution
    open_alerts: int


def find_institutions(
    session: Session,
    *,
    caller: Caller,
    text_query: str = "",
    status: str | None = None,
    supervision_model: str | None = None,
    with_open_alerts: bool = False,
    limit: int = 100,
) -> list[InstitutionRow]:
    """The caller's institutions whose name or credit code contains the text, filtered, with open alerts."""
    require_role(caller, Role.REGULATOR)
    alerts = (
        select(func.count())
        .select_from(text("alert a"))
        .where(text("a.institution_id = institution.id AND a.state <> 'resolved' AND a.cleared_at IS NULL"))
        .scalar_subquery()
    )
    query = select(Institution, alerts.label("open_alerts")).where(institution_scope(caller))
    if text_query.strip():
        pattern = "%" + text_query.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(Institution.name.ilike(pattern) | Institution.credit_code.ilike(pattern))
    if status:
        query = query.where(Institution.status == status)
    if supervision_model:
        query = query.where(Institution.supervision_model == supervision_model)
    if with_open_alerts:
        query = query.where(alerts > 0)
    rows = session.execute(query.order_by(Institution.name, Institution.id).limit(limit)).all()
    return [InstitutionRow(r[0], int(r[1])) for r in rows]


def institution_names(session: Session, *, caller: Caller, ids: set[UUID]) -> dict[UUID, str]:
    """The names of those of `ids` the caller may see."""
    query = select(Institution.id, Institution.name).where(Institution.id.in_(ids), institution_scope(caller))
    return {row[0]: row[1] for row in session.execute(query)}
