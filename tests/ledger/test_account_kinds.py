"""An account says what it is: its kind, and for a family's account, its contract (migration 0013)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from escrow.db.records import Contract
from escrow.errors import InvalidRequest
from escrow.flows.consumption import refund_payable_account
from escrow.ledger import engine
from escrow.ledger.model import AccountKind, Side
from escrow.ledger.records import Account
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.policy import CourseCategory
from tests.factories import account_number, credit_code, phone, regulator, school

J = "320105"
AT = datetime(2026, 9, 1, 2, tzinfo=UTC)


def a_contract(session: Session) -> tuple[UUID, UUID]:
    add_jurisdiction(session, code=J, name="Gulou District")
    inst = register_institution(
        session,
        caller=regulator(J),
        name="Kinds school",
        credit_code=credit_code(),
        jurisdiction_code=J,
        custody_bank="bank_k",
        custody_account=account_number(),
        supervision_model=None,
        today=AT.date(),
    )
    course = create_course(
        session,
        caller=school(inst.id),
        institution_id=inst.id,
        name="Piano",
        category=CourseCategory.NON_SUBJECT,
        unit_price_fen=10_000,
        guide_price_fen=None,
        today=AT.date(),
    )
    view = sign_contract(
        session,
        caller=school(inst.id),
        institution_id=inst.id,
        course_id=course.id,
        guardian=GuardianDetails("Lu Fang", phone()),
        student_name="Lu Yi",
        hours_bought=10,
        bonus_hours=0,
        term_start=AT.date(),
        term_end=AT.date() + timedelta(days=60),
        now=AT,
    )
    return inst.id, view.contract.id


def test_the_books_an_institution_and_a_contract_open_say_their_kinds(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        inst, contract_id = a_contract(s)
        refund_payable_account(s, s.get_one(Contract, (inst, contract_id)))
        accounts = s.execute(
            select(Account.code, Account.kind, Account.contract_id).where(Account.institution_id == inst)
        ).all()
    assert sorted(accounts) == sorted(
        [
            ("custody_cash", AccountKind.CUSTODY_CASH, None),
            ("reserve_cash", AccountKind.RESERVE_CASH, None),
            ("releasable", AccountKind.RELEASABLE, None),
            ("payout_pending", AccountKind.PAYOUT_PENDING, None),
            ("reserve_deposit", AccountKind.RESERVE_DEPOSIT, None),
            (f"prepaid:{contract_id}", AccountKind.PREPAID, contract_id),
            (f"refund_payable:{contract_id}", AccountKind.REFUND_PAYABLE, contract_id),
        ]
    )


def test_a_family_account_names_its_contract_and_no_other_account_does(
    db: sessionmaker[Session], institution: UUID
) -> None:
    with db.begin() as s, pytest.raises(InvalidRequest, match="a prepaid account needs contract"):
        engine.open_account(s, institution_id=institution, code="p", kind=AccountKind.PREPAID, normal_side=Side.CREDIT)
    with db.begin() as s, pytest.raises(InvalidRequest, match="a releasable account takes no contract"):
        engine.open_account(
            s,
            institution_id=institution,
            code="r",
            kind=AccountKind.RELEASABLE,
            contract_id=uuid4(),
            normal_side=Side.CREDIT,
        )


@pytest.mark.parametrize(
    ("kind", "contract", "match"),
    [
        ("prepaid", False, "account_contract_by_kind"),
        ("releasable", True, "account_contract_by_kind"),
        ("held", False, "account_kind_check"),
        ("refund_payable", True, "account_contract_fkey"),  # a contract that does not exist, seen at commit
    ],
)
def test_the_database_refuses_an_account_that_misstates_what_it_is(
    db: sessionmaker[Session], institution: UUID, kind: str, contract: bool, match: str
) -> None:
    with pytest.raises(DBAPIError, match=match), db.begin() as s:
        s.execute(
            text(
                "INSERT INTO account (institution_id, id, code, kind, contract_id, normal_side, currency)"
                " VALUES (:i, :a, :code, :kind, :c, 'credit', 'CNY')"
            ),
            {"i": institution, "a": uuid4(), "code": f"x-{uuid4()}", "kind": kind, "c": uuid4() if contract else None},
        )


def test_an_account_keeps_its_kind_and_contract(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        inst, contract_id = a_contract(s)
    for change in ("kind = 'other', contract_id = NULL", "contract_id = :other"):
        with pytest.raises(DBAPIError, match="may not change its identity, kind"), db.begin() as s:
            s.execute(
                text(f"UPDATE account SET {change} WHERE institution_id = :i AND contract_id = :c"),
                {"i": inst, "c": contract_id, "other": uuid4()},
            )
