"""Policy: every threshold as data, per jurisdiction, versioned by the date it takes effect (pure).

National defaults apply wherever a jurisdiction has set nothing.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

NATIONAL = "000000"  # the code under which the national defaults are reported


class ReleaseCadence(StrEnum):
    PER_CLASS = "per_class"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    TRANCHES = "tranches"


class SupervisionModel(StrEnum):
    CUSTODY = "custody"
    RESERVE = "reserve"


class CourseCategory(StrEnum):
    SUBJECT = "subject"
    NON_SUBJECT = "non_subject"


DEFAULT_ALERT_THRESHOLDS: Mapping[str, int] = {
    "refund_surge_multiple": 3,
    "refund_surge_held_pct": 20,
    "refund_surge_days": 7,
    "idle_days_yellow": 14,
    "idle_days_red": 30,
    "reserve_months": 3,
    "deemed_confirmed_pct": 50,
    "collection_surge_multiple": 3,
    # complaints are rarer than refunds: a month's window, from several families, against the months before
    "complaint_surge_days": 30,
    "complaint_surge_multiple": 3,
    "complaint_surge_families": 3,
}


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules a contract is judged by. Amounts in fen; margin in basis points (1000 = 10%)."""

    max_months: int = 3
    max_hours: int = 60
    max_non_subject_fen: int = 500_000
    guide_price_margin_bp: int = 1_000
    confirm_after_working_days: int = 15
    refund_response_working_days: int = 5
    # A class is recorded the week it is given: 7 days cover a weekend and a weekly recording round, and a
    # parent still remembers the class; a class dated further back could only be a late or a made-up one
    max_class_backdate_days: int = 7
    # A family may join a running term in its first month (30 days); a term long under way, or over, is not
    # a prepayment for classes to come
    max_term_start_past_days: int = 30
    release_cadence: ReleaseCadence = ReleaseCadence.PER_CLASS
    release_tranches_pct: tuple[int, ...] = ()
    default_supervision_model: SupervisionModel = SupervisionModel.CUSTODY
    alert_thresholds: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_ALERT_THRESHOLDS))


NATIONAL_DEFAULTS = Policy()


def policy_problems(policy: Policy) -> list[str]:
    """Every reason a policy cannot be put in force."""
    problems = []
    if policy.release_cadence is ReleaseCadence.TRANCHES:
        if not policy.release_tranches_pct or sum(policy.release_tranches_pct) != 100:
            problems.append("tranche percentages must be given and sum to 100, e.g. [30, 30, 40]")
        if any(p <= 0 for p in policy.release_tranches_pct):
            problems.append("each tranche must be a positive percentage")
    elif policy.release_tranches_pct:
        problems.append("tranche percentages only go with release_cadence 'tranches'")
    unknown = sorted(set(policy.alert_thresholds) - set(DEFAULT_ALERT_THRESHOLDS))
    if unknown:
        problems.append(f"unknown alert thresholds: {', '.join(unknown)}")
    if any(v < 0 for v in policy.alert_thresholds.values()):
        problems.append("alert thresholds may not be negative")
    return problems


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (Nov 30 + 3 months = Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One rule a contract or collection breaks: the field it concerns, a stable code, the figures a page
    needs to say it in the reader's language, and the sentence the API gives."""

    field: str  # hours | term_start | term_end | amount
    code: str
    values: Mapping[str, int | str]
    detail: str


def cap_checks(
    policy: Policy,
    *,
    category: CourseCategory,
    hours_bought: int,
    bonus_hours: int,
    term_start: date,
    term_end: date,
    amount_fen: int,
) -> list[PolicyProblem]:
    """Every cap a single collection of `amount_fen` for this contract would break."""
    problems = []
    hours = hours_bought + bonus_hours
    if hours > policy.max_hours:
        problems.append(
            PolicyProblem(
                "hours",
                "hours_over_cap",
                {"hours": hours, "bought": hours_bought, "bonus": bonus_hours, "max_hours": policy.max_hours},
                f"{hours} class hours ({hours_bought} bought + {bonus_hours} bonus) exceed the cap of "
                f"{policy.max_hours} hours per collection",
            )
        )
    try:
        latest_end = add_months(term_start, policy.max_months) - timedelta(days=1)
    except ValueError:  # past the year 9999: no cap to break, and term_problems refuses so far ahead
        latest_end = date.max
    if term_end > latest_end:
        problems.append(
            PolicyProblem(
                "term_end",
                "term_over_cap",
                {"max_months": policy.max_months, "latest_end": latest_end.isoformat()},
                f"the term {term_start.isoformat()} to {term_end.isoformat()} exceeds {policy.max_months} months; "
                f"it may end on {latest_end.isoformat()} at the latest",
            )
        )
    if category is CourseCategory.NON_SUBJECT and amount_fen > policy.max_non_subject_fen:
        problems.append(
            PolicyProblem(
                "amount",
                "amount_over_cap",
                {"amount_fen": amount_fen, "max_fen": policy.max_non_subject_fen},
                f"{amount_fen} fen exceeds the non-subject cap of {policy.max_non_subject_fen} fen per collection",
            )
        )
    return problems


def cap_problems(
    policy: Policy,
    *,
    category: CourseCategory,
    hours_bought: int,
    bonus_hours: int,
    term_start: date,
    term_end: date,
    amount_fen: int,
) -> list[str]:
    """Every cap a single collection of `amount_fen` for this contract would break, as sentences."""
    checks = cap_checks(
        policy,
        category=category,
        hours_bought=hours_bought,
        bonus_hours=bonus_hours,
        term_start=term_start,
        term_end=term_end,
        amount_fen=amount_fen,
    )
    return [problem.detail for problem in checks]


MAX_TERM_START_AHEAD_DAYS = 366  # contracts are signed for the coming term, never years ahead


def term_checks(policy: Policy, *, term_start: date, term_end: date, today: date) -> list[PolicyProblem]:
    """Why a term cannot be signed today: over already, long under way, or years ahead."""
    problems = []
    if term_end < today:
        problems.append(
            PolicyProblem(
                "term_end",
                "term_over",
                {"term_end": term_end.isoformat()},
                f"the term ended on {term_end.isoformat()}; a term already over cannot be signed",
            )
        )
    earliest = today - timedelta(days=policy.max_term_start_past_days)
    if term_start < earliest:
        problems.append(
            PolicyProblem(
                "term_start",
                "term_started_long_ago",
                {"max_days": policy.max_term_start_past_days, "earliest": earliest.isoformat()},
                f"the term started on {term_start.isoformat()}, more than {policy.max_term_start_past_days} days"
                f" ago; it may start on {earliest.isoformat()} at the earliest",
            )
        )
    if term_start > today + timedelta(days=MAX_TERM_START_AHEAD_DAYS):
        problems.append(
            PolicyProblem(
                "term_start",
                "term_too_far_ahead",
                {"max_days": MAX_TERM_START_AHEAD_DAYS},
                f"the term starts more than {MAX_TERM_START_AHEAD_DAYS} days from today",
            )
        )
    return problems


def term_problems(policy: Policy, *, term_start: date, term_end: date, today: date) -> list[str]:
    """Why a term cannot be signed today, as sentences."""
    return [problem.detail for problem in term_checks(policy, term_start=term_start, term_end=term_end, today=today)]


def backdate_problem(policy: Policy, *, given_on: date, today: date) -> str | None:
    """Why a class cannot be recorded today as given on `given_on` (too far back), or None."""
    earliest = today - timedelta(days=policy.max_class_backdate_days)
    if given_on < earliest:
        return (
            f"given_on {given_on.isoformat()} is more than {policy.max_class_backdate_days} days ago;"
            f" a class is recorded within {policy.max_class_backdate_days} days of being given"
        )
    return None


def price_problem(policy: Policy, *, unit_price_fen: int, guide_price_fen: int) -> str | None:
    """Why a subject course's unit price is above its guide price plus the margin, or None."""
    ceiling_num = guide_price_fen * (10_000 + policy.guide_price_margin_bp)
    if unit_price_fen * 10_000 > ceiling_num:
        return (
            f"unit price {unit_price_fen} fen is above the guide price {guide_price_fen} fen plus "
            f"{policy.guide_price_margin_bp / 100:g}% (at most {ceiling_num // 10_000} fen)"
        )
    return None
