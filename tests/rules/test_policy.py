"""Policy rules at their boundaries, without a database: exactly at a cap is accepted, one over refused."""

from __future__ import annotations

from datetime import date

from escrow.rules.identity import credit_code_problem, id_number_problem, mask_id_number, mask_phone
from escrow.rules.policy import (
    NATIONAL_DEFAULTS,
    CourseCategory,
    Policy,
    ReleaseCadence,
    add_months,
    cap_problems,
    policy_problems,
    price_problem,
)

JAN_1 = date(2026, 1, 1)


def caps(policy: Policy = NATIONAL_DEFAULTS, **kw: object) -> list[str]:
    args: dict[str, object] = {
        "category": CourseCategory.SUBJECT,
        "hours_bought": 40,
        "bonus_hours": 0,
        "term_start": JAN_1,
        "term_end": date(2026, 3, 31),
        "amount_fen": 100_000,
    }
    args.update(kw)
    return cap_problems(policy, **args)  # type: ignore[arg-type]


def test_sixty_hours_bonus_included_is_the_cap() -> None:
    assert caps(hours_bought=50, bonus_hours=10) == []
    (problem,) = caps(hours_bought=50, bonus_hours=11)
    assert "61 class hours (50 bought + 11 bonus) exceed the cap of 60" in problem


def test_three_months_is_the_cap() -> None:
    assert caps(term_end=date(2026, 3, 31)) == []
    (problem,) = caps(term_end=date(2026, 4, 1))
    assert "exceeds 3 months; it may end on 2026-03-31 at the latest" in problem
    # month ends clamp: from Nov 30, three months end on Feb 28 (or 29)
    assert add_months(date(2025, 11, 30), 3) == date(2026, 2, 28)
    assert caps(term_start=date(2025, 11, 30), term_end=date(2026, 2, 27)) == []


def test_five_thousand_yuan_caps_non_subject_training_only() -> None:
    assert caps(category=CourseCategory.NON_SUBJECT, amount_fen=500_000) == []
    (problem,) = caps(category=CourseCategory.NON_SUBJECT, amount_fen=500_001)
    assert "500001 fen exceeds the non-subject cap of 500000 fen" in problem
    assert caps(category=CourseCategory.SUBJECT, amount_fen=500_001) == []


def test_every_broken_cap_is_reported_together() -> None:
    problems = caps(category=CourseCategory.NON_SUBJECT, hours_bought=61, term_end=date(2026, 6, 1), amount_fen=600_000)
    assert len(problems) == 3


def test_caps_follow_the_jurisdictions_numbers() -> None:
    strict = Policy(max_hours=40, max_months=2, max_non_subject_fen=300_000)
    assert caps(strict, hours_bought=40, term_end=date(2026, 2, 28)) == []
    assert caps(strict, hours_bought=41, term_end=date(2026, 2, 28)) != []
    assert caps(strict, term_end=date(2026, 2, 28)) == []
    assert caps(strict, term_end=date(2026, 3, 1)) != []


def test_guide_price_plus_ten_percent_is_the_ceiling() -> None:
    assert price_problem(NATIONAL_DEFAULTS, unit_price_fen=11_000, guide_price_fen=10_000) is None
    problem = price_problem(NATIONAL_DEFAULTS, unit_price_fen=11_001, guide_price_fen=10_000)
    assert problem is not None and "plus 10% (at most 11000 fen)" in problem
    # a ceiling that is not a whole fen: 10% over 9,999 is 10,998.9, so 10,998 passes and 10,999 does not
    assert price_problem(NATIONAL_DEFAULTS, unit_price_fen=10_998, guide_price_fen=9_999) is None
    assert price_problem(NATIONAL_DEFAULTS, unit_price_fen=10_999, guide_price_fen=9_999) is not None
    assert price_problem(Policy(guide_price_margin_bp=0), unit_price_fen=10_001, guide_price_fen=10_000) is not None


def test_policy_validation_reports_every_problem() -> None:
    assert policy_problems(Policy(release_cadence=ReleaseCadence.TRANCHES, release_tranches_pct=(30, 30, 40))) == []
    assert policy_problems(Policy(release_cadence=ReleaseCadence.TRANCHES, release_tranches_pct=(30, 30))) == [
        "tranche percentages must be given and sum to 100, e.g. [30, 30, 40]"
    ]
    assert len(policy_problems(Policy(release_tranches_pct=(100,), alert_thresholds={"nonsense": 1}))) == 2


def test_credit_code_check_digit() -> None:
    assert credit_code_problem("91350100M000100Y43") is None  # the example in GB 32100-2015
    assert "should be '3', not '4'" in str(credit_code_problem("91350100M000100Y44"))
    assert "18 characters" in str(credit_code_problem("91350100M000100Y4"))
    assert "except I, O, S, V, Z" in str(credit_code_problem("91350100M000100YO3"))


def test_id_number_check_digit_and_masking() -> None:
    assert id_number_problem("11010519491231002X") is None
    assert id_number_problem("110105194912310021") is not None
    assert mask_id_number("11010519491231002X") == "110***********002X"
    assert mask_phone("13812345678") == "138****5678"
