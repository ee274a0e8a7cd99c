"""Risk rules: each a small named function with a code and a severity, reading its thresholds from
the policy in force in the institution's jurisdiction. Each returns the institutions it finds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.orm import Session

from escrow.alerts import Finding, Severity
from escrow.jurisdictions import policy_in_force
from escrow.policy import Policy

Rule = Callable[[Session, datetime, Callable[[UUID], Policy]], list[Finding]]


def money_idle(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """Money held for families while no class has been recorded for `idle_days_yellow`/`_red` days."""
    findings = []
    for inst, held, last in session.execute(
        text(
            "SELECT a.institution_id, sum(a.balance),"
            " (SELECT max(given_on) FROM class_record c WHERE c.institution_id = a.institution_id)"
            " FROM account a JOIN institution i ON i.id = a.institution_id AND i.status <> 'closed'"
            " WHERE a.code LIKE 'prepaid:%' GROUP BY a.institution_id HAVING sum(a.balance) > 0"
        )
    ):
        thresholds = policy(inst).alert_thresholds
        since = (now.date() - last).days if last else None
        if since is None or since >= thresholds["idle_days_red"]:
            findings.append(
                Finding(
                    "money_idle_long",
                    Severity.RED,
                    inst,
                    "",
                    f"{held} fen held, no class recorded for {since} days",
                    {"days": since},
                )
            )
        elif since >= thresholds["idle_days_yellow"]:
            findings.append(
                Finding(
                    "money_idle",
                    Severity.YELLOW,
                    inst,
                    "",
                    f"{held} fen held, no class recorded for {since} days",
                    {"days": since},
                )
            )
    return findings


def _weekly_surge(
    session: Session,
    now: datetime,
    policy: Callable[[UUID], Policy],
    *,
    sql: str,
    rule: str,
    what: str,
    multiple_key: str,
    minimum: int,
    severity: Severity,
) -> list[Finding]:
    """This week's count at least `multiple` times the average week of the 4 before, and at least `minimum`."""
    findings = []
    week, month = now - timedelta(days=7), now - timedelta(days=35)
    for inst, recent, before in session.execute(text(sql), {"week": week, "month": month, "now": now}):
        multiple = policy(inst).alert_thresholds[multiple_key]
        baseline = max(before / 4, 1)
        if recent >= minimum and recent >= multiple * baseline:
            findings.append(
                Finding(
                    rule,
                    severity,
                    inst,
                    "",
                    f"{recent} {what} in 7 days against {baseline:g} a week before",
                    {"last_7_days": recent, "weekly_baseline": baseline},
                )
            )
    return findings


def refund_surge(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    return _weekly_surge(
        session,
        now,
        policy,
        rule="refund_surge",
        what="refund requests",
        multiple_key="refund_surge_multiple",
        minimum=3,
        severity=Severity.RED,
        sql="SELECT institution_id, count(*) FILTER (WHERE requested_at > :week AND requested_at <= :now),"
        " count(*) FILTER (WHERE requested_at > :month AND requested_at <= :week)"
        " FROM refund_request GROUP BY institution_id",
    )


def collection_surge(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    return _weekly_surge(
        session,
        now,
        policy,
        rule="collection_surge",
        what="collections",
        multiple_key="collection_surge_multiple",
        minimum=5,
        severity=Severity.YELLOW,
        sql="SELECT institution_id, count(*) FILTER (WHERE collected_at > :week AND collected_at <= :now),"
        " count(*) FILTER (WHERE collected_at > :month AND collected_at <= :week)"
        " FROM collection GROUP BY institution_id",
    )


def deemed_confirmations(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """Too many of the classes given in the last 60 days were only deemed confirmed: parents silent, or
    never asked. Classes still inside their confirmation window do not count either way."""
    findings = []
    for inst, deemed, total in session.execute(
        text(
            "SELECT institution_id, count(*) FILTER (WHERE confirmed_how = 'deemed'), count(*) FROM class_record"
            " WHERE status = 'confirmed' AND given_on > :since GROUP BY institution_id"
        ),
        {"since": (now - timedelta(days=60)).date()},
    ):
        pct = policy(inst).alert_thresholds["deemed_confirmed_pct"]
        if total >= 10 and deemed * 100 >= pct * total:
            findings.append(
                Finding(
                    "deemed_confirmations",
                    Severity.YELLOW,
                    inst,
                    "",
                    f"{deemed} of {total} classes given in 60 days were only deemed confirmed",
                    {"deemed": deemed, "confirmed": total},
                )
            )
    return findings


def refund_deadline_missed(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """Refund requests the institution let run past their deadline (deemed approved) in 30 days."""
    return [
        Finding(
            "refund_deadline_missed",
            Severity.YELLOW,
            inst,
            "",
            f"{missed} refund request(s) left unanswered past the deadline",
            {"missed": missed},
        )
        for inst, missed in session.execute(
            text(
                "SELECT institution_id, count(*) FROM refund_request WHERE status = 'deemed_approved'"
                " AND decided_at > :since AND decided_at <= :now GROUP BY institution_id"
            ),
            {"since": now - timedelta(days=30), "now": now},
        )
    ]


def reserve_below(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """Under the reserve model, the reserve must cover everything collected in the last `reserve_months`."""
    findings = []
    for inst, reserve, collected in session.execute(
        text(
            "SELECT i.id, coalesce((SELECT balance FROM account a WHERE a.institution_id = i.id"
            "  AND a.code = 'reserve_deposit'), 0),"
            " coalesce((SELECT sum(amount_fen) FROM collection c WHERE c.institution_id = i.id"
            "  AND c.collected_at > :since AND c.collected_at <= :now), 0)"
            " FROM institution i WHERE i.supervision_model = 'reserve' AND i.status <> 'closed'"
        ),
        {"since": now - timedelta(days=91), "now": now},
    ):
        if reserve < collected:
            findings.append(
                Finding(
                    "reserve_below_collections",
                    Severity.RED,
                    inst,
                    "",
                    f"reserve {reserve} fen is below the {collected} fen collected in 3 months",
                    {"reserve_fen": reserve, "collected_fen": collected},
                )
            )
    return findings


RULES: dict[str, tuple[Rule, tuple[str, ...]]] = {
    "money_idle": (money_idle, ("money_idle", "money_idle_long")),
    "refund_surge": (refund_surge, ("refund_surge",)),
    "collection_surge": (collection_surge, ("collection_surge",)),
    "deemed_confirmations": (deemed_confirmations, ("deemed_confirmations",)),
    "refund_deadline_missed": (refund_deadline_missed, ("refund_deadline_missed",)),
    "reserve_below_collections": (reserve_below, ("reserve_below_collections",)),
}


def risk_findings(session: Session, *, now: datetime) -> tuple[list[Finding], list[str]]:
    """Every rule's findings, and the alert codes the rules own (to clear those now off)."""
    cache: dict[UUID, Policy] = {}
    jurisdictions: dict[UUID, str] = {
        i: j for i, j in session.execute(text("SELECT id, jurisdiction_code FROM institution"))
    }

    def policy(institution_id: UUID) -> Policy:
        if institution_id not in cache:
            cache[institution_id] = policy_in_force(
                session, jurisdiction_code=jurisdictions[institution_id], on=now.date()
            )[0]
        return cache[institution_id]

    findings = [f for rule, _ in RULES.values() for f in rule(session, now, policy)]
    return findings, [code for _, codes in RULES.values() for code in codes]
