"""Risk rules: each a small named function with a code and a severity, reading its thresholds from
the policy in force in the institution's jurisdiction. Each returns the institutions it finds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.orm import Session

from escrow.registry.calendar import missing_calendar_year
from escrow.registry.jurisdictions import policy_in_force
from escrow.rules.calendar import BUSINESS_TZ, local_date, local_day_start
from escrow.rules.money import format_yuan
from escrow.rules.policy import Policy
from escrow.supervision.alerts import Finding, Severity

Rule = Callable[[Session, datetime, Callable[[UUID], Policy]], list[Finding]]


def money_idle(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """Money held for families while no class has been recorded for `idle_days_yellow`/`_red` days."""
    findings = []
    for inst, held, last in session.execute(
        text(
            "SELECT a.institution_id, sum(a.balance),"
            " (SELECT max(given_on) FROM class_record c WHERE c.institution_id = a.institution_id)"
            " FROM account a JOIN institution i ON i.id = a.institution_id AND i.status <> 'closed'"
            " WHERE a.kind = 'prepaid' GROUP BY a.institution_id HAVING sum(a.balance) > 0"
        )
    ):
        thresholds = policy(inst).alert_thresholds
        since = (local_date(now) - last).days if last else None
        detail = f"{format_yuan(int(held))} yuan held for families, " + (
            f"no class recorded for {since} days" if since is not None else "no class ever recorded"
        )
        if since is None or since >= thresholds["idle_days_red"]:
            findings.append(
                Finding("money_idle_long", Severity.RED, inst, "", detail, {"days": since, "held_fen": int(held)})
            )
        elif since >= thresholds["idle_days_yellow"]:
            findings.append(
                Finding("money_idle", Severity.YELLOW, inst, "", detail, {"days": since, "held_fen": int(held)})
            )
    return findings


def refund_surge(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """In the last `refund_surge_days`, at least 3 refund requests, and either `refund_surge_multiple` times
    the average of the 4 windows before, or refunds of `refund_surge_held_pct`% of the held funds."""
    findings = []
    ids, days = _thresholds(session, policy, "refund_surge_days")
    for inst, window, recent, before, refunded, held in session.execute(
        text(  # what each institution holds for families, summed once for all of them
            "WITH w AS (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:days AS int[])) AS w(institution_id, days)),"
            " held AS (SELECT institution_id, sum(balance) AS fen FROM account WHERE kind = 'prepaid'"
            "  GROUP BY institution_id)"
            " SELECT r.institution_id, w.days,"
            " count(*) FILTER (WHERE requested_at > :now - make_interval(days => w.days) AND requested_at <= :now),"
            " count(*) FILTER (WHERE requested_at > :now - make_interval(days => 5 * w.days)"
            "  AND requested_at <= :now - make_interval(days => w.days)),"
            " coalesce(sum(amount_fen) FILTER (WHERE status IN ('approved', 'deemed_approved')"
            "  AND decided_at > :now - make_interval(days => w.days) AND decided_at <= :now), 0)::bigint,"
            " coalesce(h.fen, 0)::bigint"
            " FROM refund_request r JOIN w USING (institution_id) LEFT JOIN held h USING (institution_id)"
            " GROUP BY r.institution_id, w.days, h.fen"
        ),
        {"ids": ids, "days": days, "now": now},
    ):
        thresholds = policy(inst).alert_thresholds
        baseline = max(before / 4, 1)
        by_count = recent >= thresholds["refund_surge_multiple"] * baseline
        by_money = refunded > 0 and refunded * 100 >= thresholds["refund_surge_held_pct"] * (held + refunded)
        if recent >= REFUND_SURGE_MINIMUM and (by_count or by_money):
            share = f"{refunded * 100 / (held + refunded):.1f}%" if held + refunded else "none"
            findings.append(
                Finding(
                    "refund_surge",
                    Severity.RED,
                    inst,
                    "",
                    f"{recent} refund requests in {window} days against {baseline:g} before; refunds took {share}"
                    " of the held funds",
                    {
                        "requests": recent,
                        "baseline": baseline,
                        "refunded_fen": refunded,
                        "held_fen": held,
                        "days": window,
                    },
                )
            )
    return findings


REFUND_SURGE_MINIMUM = 3  # fewer requests than this are never a surge, whatever the baseline


def collection_surge(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """At least 5 collections in 7 days, and `collection_surge_multiple` times the average week of the 4 before."""
    findings = []
    week, month = now - timedelta(days=7), now - timedelta(days=35)
    for inst, recent, before in session.execute(
        text(
            "SELECT institution_id, count(*) FILTER (WHERE collected_at > :week AND collected_at <= :now),"
            " count(*) FILTER (WHERE collected_at > :month AND collected_at <= :week)"
            " FROM collection GROUP BY institution_id"
        ),
        {"week": week, "month": month, "now": now},
    ):
        baseline = max(before / 4, 1)
        if (
            recent >= COLLECTION_SURGE_MINIMUM
            and recent >= policy(inst).alert_thresholds["collection_surge_multiple"] * baseline
        ):
            findings.append(
                Finding(
                    "collection_surge",
                    Severity.YELLOW,
                    inst,
                    "",
                    f"{recent} collections in 7 days against {baseline:g} a week before",
                    {"last_7_days": recent, "weekly_baseline": baseline},
                )
            )
    return findings


COLLECTION_SURGE_MINIMUM = 5


def complaint_surge(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """In the last `complaint_surge_days`, complaints from at least `complaint_surge_families` families, and
    `complaint_surge_multiple` times the average of the 3 windows before (one family writing often is not a surge)."""
    findings = []
    ids, days = _thresholds(session, policy, "complaint_surge_days")
    for inst, window, recent, families, before in session.execute(
        text(
            "WITH w AS (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:days AS int[])) AS w(institution_id, days))"
            " SELECT c.institution_id, w.days,"
            " count(*) FILTER (WHERE submitted_at > :now - make_interval(days => w.days) AND submitted_at <= :now),"
            " count(DISTINCT guardian_phone) FILTER (WHERE submitted_at > :now - make_interval(days => w.days)"
            "  AND submitted_at <= :now),"
            " count(*) FILTER (WHERE submitted_at > :now - make_interval(days => 4 * w.days)"
            "  AND submitted_at <= :now - make_interval(days => w.days))"
            " FROM complaint c JOIN w USING (institution_id) GROUP BY c.institution_id, w.days"
        ),
        {"ids": ids, "days": days, "now": now},
    ):
        thresholds = policy(inst).alert_thresholds
        baseline = max(before / 3, 1)
        if (
            families >= thresholds["complaint_surge_families"]
            and recent >= thresholds["complaint_surge_multiple"] * baseline
        ):
            findings.append(
                Finding(
                    "complaint_surge",
                    Severity.YELLOW,
                    inst,
                    "",
                    f"{recent} complaints from {families} families in {window} days against {baseline:g} in each"
                    " window before",
                    {"complaints": recent, "families": families, "days": window, "baseline": baseline},
                )
            )
    return findings


def deemed_confirmations(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """Too many of the classes given in the last 60 days were only deemed confirmed: parents silent, or
    never asked. Classes still inside their confirmation window do not count either way."""
    findings = []
    for inst, deemed, total in session.execute(
        text(
            "SELECT institution_id, count(*) FILTER (WHERE confirmed_how = 'deemed'), count(*) FROM class_record"
            " WHERE status = 'confirmed' AND given_on > :since GROUP BY institution_id"
        ),
        {"since": local_date(now) - timedelta(days=60)},
    ):
        pct = policy(inst).alert_thresholds["deemed_confirmed_pct"]
        if total >= 10 and deemed * 100 >= pct * total:
            findings.append(
                Finding(
                    "deemed_confirmations",
                    Severity.YELLOW,
                    inst,
                    "",
                    f"{deemed} of the {total} classes confirmed in the last 60 days were only deemed confirmed"
                    f" (the parent stayed silent); {total - deemed} were confirmed by parents",
                    {"classes_confirmed": total, "deemed": deemed, "by_parents": total - deemed},
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
    ids, months = _thresholds(session, policy, "reserve_months")
    for inst, window, reserve, collected in session.execute(
        text(
            "WITH w AS (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:months AS int[])) AS w(id, months))"
            " SELECT i.id, w.months, coalesce((SELECT balance FROM account a WHERE a.institution_id = i.id"
            "  AND a.kind = 'reserve_deposit'), 0),"
            " coalesce((SELECT sum(amount_fen) FROM collection c WHERE c.institution_id = i.id"
            "  AND c.collected_at > :now - make_interval(months => w.months) AND c.collected_at <= :now), 0)::bigint"
            " FROM institution i JOIN w USING (id) WHERE i.supervision_model = 'reserve' AND i.status <> 'closed'"
        ),
        {"ids": ids, "months": months, "now": now},
    ):
        if reserve < collected:
            findings.append(
                Finding(
                    "reserve_below_collections",
                    Severity.RED,
                    inst,
                    "",
                    f"reserve {format_yuan(reserve)} yuan is below the {format_yuan(collected)} yuan collected in"
                    f" {window} months",
                    {"reserve_fen": reserve, "collected_fen": collected, "months": window},
                )
            )
    return findings


def _thresholds(session: Session, policy: Callable[[UUID], Policy], key: str) -> tuple[list[UUID], list[int]]:
    """Every open institution with its own value of one alert threshold, to join in SQL."""
    ids = list(session.scalars(text("SELECT id FROM institution WHERE status <> 'closed'")))
    return ids, [policy(i).alert_thresholds[key] for i in ids]


def statement_missing(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """Day T's statement is due by T+1 09:00 Beijing time, for every open institution that existed on T."""
    local = now.astimezone(BUSINESS_TZ)
    deadline_hour = 9
    due_day = local.date() - timedelta(days=1 if local.hour >= deadline_hour else 2)
    return [
        Finding(
            "statement_missing",
            Severity.YELLOW,
            inst,
            due_day.isoformat(),
            f"the custody bank's statement for {due_day} was not imported by {due_day + timedelta(days=1)} 09:00",
            {"statement_date": due_day.isoformat()},
        )
        for (inst,) in session.execute(
            text(
                "SELECT i.id FROM institution i WHERE i.status <> 'closed'"
                " AND (i.created_at < :end OR EXISTS (SELECT 1 FROM journal_transaction t"
                "  WHERE t.institution_id = i.id AND t.effective_at < :end))"
                " AND NOT EXISTS (SELECT 1 FROM bank_statement s WHERE s.institution_id = i.id"
                "  AND s.statement_date = :day)"
            ),
            {"day": due_day, "end": local_day_start(due_day + timedelta(days=1))},
        )
    ]


def custody_below_owed(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """The bank's latest closing balance is below what the ledger owed families (held plus refunds due)
    at the end of that day."""
    return [
        Finding(
            "custody_below_owed",
            Severity.RED,
            inst,
            "",
            f"the custody account held {format_yuan(closing)} yuan on {day}, below the {format_yuan(owed)} yuan"
            " owed to families",
            {"statement_date": day.isoformat(), "bank_fen": closing, "family_owed_fen": owed},
        )
        for inst, day, closing, owed in session.execute(
            text(
                "SELECT * FROM (SELECT DISTINCT ON (institution_id) institution_id, statement_date, closing_fen,"
                " family_owed_fen FROM bank_statement WHERE reconciled_at IS NOT NULL"
                " ORDER BY institution_id, statement_date DESC) latest WHERE closing_fen < family_owed_fen"
            )
        )
    ]


def cap_broken(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """Money came into the custody account outside the ledger in one payment larger than any single
    collection may be under the policy: a prepayment collected around the caps."""
    findings = []
    for inst, line_id, day, amount, reference, courses in session.execute(
        text(
            "SELECT l.institution_id, l.id, s.statement_date, l.amount_fen, l.reference,"
            " (SELECT array_agg(ARRAY[c.unit_price_fen, (c.category = 'subject')::int]) FROM course c"
            "  WHERE c.institution_id = l.institution_id)"
            " FROM statement_line l JOIN bank_statement s ON s.institution_id = l.institution_id"
            " AND s.id = l.statement_id WHERE s.reconciled_at IS NOT NULL AND l.amount_fen > 0"
            " AND NOT EXISTS (SELECT 1 FROM statement_match m WHERE m.institution_id = l.institution_id"
            "  AND m.line_id = l.id)"
        )
    ):
        if not courses:
            continue
        rules = policy(inst)
        cap = max(
            unit * rules.max_hours if subject else min(unit * rules.max_hours, rules.max_non_subject_fen)
            for unit, subject in courses
        )
        if amount > cap:
            findings.append(
                Finding(
                    "cap_broken",
                    Severity.RED,
                    inst,
                    str(line_id),
                    f"{format_yuan(amount)} yuan came in on {day} (ref {reference}) outside the ledger, above the"
                    f" {format_yuan(cap)} yuan a single collection may be here",
                    {"statement_date": day.isoformat(), "amount_fen": amount, "cap_fen": cap, "reference": reference},
                )
            )
    return findings


def calendar_year_missing(session: Session, now: datetime, policy: Callable[[UUID], Policy]) -> list[Finding]:
    """From 1 December next year's official calendar must be loaded: deadlines counted into it are refused."""
    year = missing_calendar_year(session, now=now)
    if year is None:
        return []
    return [
        Finding(
            "calendar_year_missing",
            Severity.YELLOW,
            None,
            str(year),
            f"there is no official holiday calendar for {year} yet: classes and refund requests whose deadlines "
            f"fall in {year} cannot be recorded; load the State Council's {year} holidays and make-up workdays",
            {"year": year},
        )
    ]


RULES: dict[str, tuple[Rule, tuple[str, ...]]] = {
    "money_idle": (money_idle, ("money_idle", "money_idle_long")),
    "refund_surge": (refund_surge, ("refund_surge",)),
    "collection_surge": (collection_surge, ("collection_surge",)),
    "complaint_surge": (complaint_surge, ("complaint_surge",)),
    "deemed_confirmations": (deemed_confirmations, ("deemed_confirmations",)),
    "refund_deadline_missed": (refund_deadline_missed, ("refund_deadline_missed",)),
    "reserve_below_collections": (reserve_below, ("reserve_below_collections",)),
    "statement_missing": (statement_missing, ("statement_missing",)),
    "custody_below_owed": (custody_below_owed, ("custody_below_owed",)),
    "cap_broken": (cap_broken, ("cap_broken",)),
    "calendar_year_missing": (calendar_year_missing, ("calendar_year_missing",)),
}


def risk_findings(session: Session, *, now: datetime) -> tuple[list[Finding], list[str]]:
    """Every rule's findings, and the alert codes the rules own (to clear those now off)."""
    cache: dict[str, Policy] = {}
    jurisdictions: dict[UUID, str] = {
        i: j for i, j in session.execute(text("SELECT id, jurisdiction_code FROM institution"))
    }

    def policy(institution_id: UUID) -> Policy:
        code = jurisdictions[institution_id]
        if code not in cache:
            cache[code] = policy_in_force(session, jurisdiction_code=code, on=local_date(now))[0]
        return cache[code]

    findings = [f for rule, _ in RULES.values() for f in rule(session, now, policy)]
    return findings, [code for _, codes in RULES.values() for code in codes]
