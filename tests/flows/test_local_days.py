"""Business dates are Beijing's: at 00:30 and 23:30 Beijing time a class given today is today's, and a
refund's deadline counts from Beijing's day (UTC is still on yesterday at 00:30)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.orm import Session, sessionmaker

from escrow.flows.classes import record_class
from escrow.flows.refunds import request_refund
from escrow.registry.calendar import jurisdiction_today
from tests.flows.test_consumption import J, contract_with_money

HALF_PAST_MIDNIGHT = datetime(2026, 9, 7, 16, 30, tzinfo=UTC)  # 00:30 on Tuesday 8 September, Beijing time
HALF_PAST_ELEVEN = datetime(2026, 9, 8, 15, 30, tzinfo=UTC)  # 23:30 on Tuesday 8 September, Beijing time
TUESDAY = date(2026, 9, 8)


def test_a_class_given_today_is_todays_at_half_past_midnight_and_half_past_eleven(db: sessionmaker[Session]) -> None:
    inst, contract, owner, _ = contract_with_money(db)
    with db.begin() as s:
        assert jurisdiction_today(s, jurisdiction_code=J, now=HALF_PAST_MIDNIGHT) == TUESDAY
        for now in (HALF_PAST_MIDNIGHT, HALF_PAST_ELEVEN):
            undated, _ = record_class(
                s,
                caller=owner,
                institution_id=inst,
                contract_id=contract,
                hours=1,
                given_on=None,
                idempotency_key=f"u{now.hour}",
                now=now,
            )
            dated, _ = record_class(
                s,
                caller=owner,
                institution_id=inst,
                contract_id=contract,
                hours=1,
                given_on=TUESDAY,
                idempotency_key=f"d{now.hour}",
                now=now,
            )
            assert (undated.given_on, dated.given_on) == (TUESDAY, TUESDAY)


def test_a_refunds_deadline_counts_from_beijings_day(db: sessionmaker[Session]) -> None:
    inst, contract, _, family = contract_with_money(db)
    with db.begin() as s:
        row = request_refund(
            s, caller=family, institution_id=inst, contract_id=contract, reason="moving", now=HALF_PAST_MIDNIGHT
        )
    # five working days after Tuesday 8 September: 9, 10, 11, 14, 15 September
    assert row.respond_by == date(2026, 9, 15)
