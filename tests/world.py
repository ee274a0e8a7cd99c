"""A small district for HTTP tests: two jurisdictions, peer institutions, peer parents, one bank.

    J1 310104: A (bank_a)            C (bank_c): parent1's and parent2's contracts
    J2 310105: B (bank_b)
Each institution has a subject course, a contract and a collection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy.orm import Session

from escrow.access.audit import OPERATOR
from escrow.access.callers import Caller, Role
from escrow.access.tokens import issue_token
from escrow.access.users import create_user
from escrow.bank.statements import import_statements
from escrow.db.records import Institution
from escrow.demo.bank_files import ledger_statements, statements_csv
from escrow.families.complaints import submit_complaint
from escrow.flows.classes import confirm_class, dispute_class, record_class
from escrow.flows.collections import collect
from escrow.flows.holds import lift_hold, place_hold
from escrow.flows.payouts import request_payout
from escrow.flows.refunds import request_refund
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.calendar import BUSINESS_TZ, local_date
from escrow.rules.families import ComplaintCategory
from escrow.rules.policy import CourseCategory
from escrow.supervision.alerts import Finding, Severity, raise_alerts
from tests.factories import account_number, credit_code, id_number, parent, phone, regulator, school, stand_in_calendar

J1, J2 = "310104", "310105"


@dataclass
class Place:
    """The objects of one institution (or of one parent's contract) that routes name."""

    jurisdiction: str
    institution_id: UUID
    course_id: UUID
    contract_id: UUID
    collection_id: UUID
    transaction_id: UUID
    guardian_phone: str
    class_id: UUID  # pending
    disputed_class_id: UUID
    refund_request_id: UUID  # open
    payout_id: UUID  # instructed
    hold_id: UUID  # lifted
    alert_id: UUID = field(default_factory=new_id)  # open
    custody_account: str = "6222999999999999"  # no institution's
    statement_id: UUID = field(default_factory=new_id)  # today's, imported by its bank
    confirmed_class_id: UUID = field(default_factory=new_id)  # confirmed by the family, not evaluated
    complaint_id: UUID = field(default_factory=new_id)  # submitted by the family
    assignee_id: UUID = field(default_factory=new_id)  # a regulator (user) of the place's jurisdiction


@dataclass
class World:
    places: dict[str, Place] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


def build_world(session: Session, *, now: datetime | None = None) -> World:
    now = now or datetime.now(UTC)
    world = World()
    stand_in_calendar(session, now)
    add_jurisdiction(session, code=J1, name="Xuhui District")
    add_jurisdiction(session, code=J2, name="Changning District")
    for name, jurisdiction in (("A", J1), ("B", J2), ("C", J1)):
        reg = regulator(jurisdiction)
        inst = register_institution(
            session,
            caller=reg,
            name=f"School {name}",
            credit_code=credit_code(),
            jurisdiction_code=jurisdiction,
            custody_bank=f"bank_{name.lower()}",
            custody_account=account_number(),
            supervision_model=None,
            today=local_date(now),
        )
        owner = school(inst.id)
        course = create_course(
            session,
            caller=owner,
            institution_id=inst.id,
            name="Maths grade 5",
            category=CourseCategory.SUBJECT,
            unit_price_fen=10_000,
            guide_price_fen=10_000,
            today=local_date(now),
        )
        # a hold placed and lifted before any payout is instructed (a hold recalls instructions in flight)
        hold = place_hold(session, caller=regulator(jurisdiction), institution_id=inst.id, reason="routine", now=now)
        lift_hold(
            session, caller=regulator(jurisdiction), institution_id=inst.id, hold_id=hold.id, reason="checked", now=now
        )
        holders = ["parent1", "parent2"] if name == "C" else [f"guardian_{name}"]
        for holder in holders:
            place = _contract(session, owner, jurisdiction, inst.id, course.id, now)
            place.hold_id = hold.id
            world.places[holder if name == "C" else name] = place
    _deliver_statements(session, world, now)
    _complaints(session, world, now)
    for name in ("A", "B"):
        place = world.places[name]
        (place.alert_id,) = raise_alerts(
            session,
            [Finding("test_rule", Severity.YELLOW, place.institution_id, "", "planted for the matrix")],
            rules=[],
            now=now,
            run_id=None,
        )
    for role_name, caller_kwargs in _token_specs(world).items():
        _, secret = issue_token(session, label=role_name, **caller_kwargs)  # type: ignore[arg-type]
        world.tokens[role_name] = secret
    return world


def _complaints(session: Session, world: World, now: datetime) -> None:
    """Each family complains about its institution; a regulator user of each jurisdiction may take it up."""
    users = {
        code: create_user(
            session,
            name=f"Regulator {code} {new_id().hex[-8:]}",
            role=Role.REGULATOR,
            password="matrix-password",
            jurisdictions=[code],
            by=OPERATOR,
            now=now,
        ).id
        for code in (J1, J2)
    }
    for place in world.places.values():
        family = Caller(token_id=new_id(), role=Role.PARENT, guardian_phone=place.guardian_phone)
        complaint = submit_complaint(session, caller=family, institution_id=place.institution_id,
                                     category=ComplaintCategory.REFUND, body="no answer", contract_id=None,
                                     now=now)  # fmt: skip
        place.complaint_id, place.assignee_id = complaint.id, users[place.jurisdiction]


def _deliver_statements(session: Session, world: World, now: datetime) -> None:
    """Each institution's bank delivers today's statement, as the ledger has it."""
    day = now.astimezone(BUSINESS_TZ).date()
    for place in world.places.values():
        bank = session.get_one(Institution, place.institution_id).custody_bank
        (statement,) = ledger_statements(session, day=day, institution_ids=[place.institution_id])
        bank_caller = Caller(token_id=new_id(), role=Role.BANK, bank_code=bank)
        imported = import_statements(session, caller=bank_caller, data=statements_csv([statement]), fmt=None, now=now)
        place.statement_id = imported[0].statement.id
        place.custody_account = statement.account


def _contract(
    session: Session, owner: Caller, jurisdiction: str, institution_id: UUID, course_id: UUID, now: datetime
) -> Place:
    guardian_phone = phone()
    view = sign_contract(
        session,
        caller=owner,
        institution_id=institution_id,
        course_id=course_id,
        guardian=GuardianDetails(name="Li Hua", phone=guardian_phone, id_number=id_number()),
        student_name="Li Ming",
        hours_bought=40,
        bonus_hours=4,
        term_start=local_date(now),
        term_end=local_date(now) + timedelta(days=80),
        now=now,
    )
    done = collect(
        session,
        caller=owner,
        institution_id=institution_id,
        contract_id=view.contract.id,
        amount_fen=100_000,
        bank_reference=f"REF-{view.contract.id.hex[:12]}",
        collected_at=None,
        idempotency_key=f"world-{view.contract.id}",
        now=now,
    )
    contract_id = view.contract.id
    family = parent(session, view.contract.guardian_id)

    def give() -> UUID:
        return record_class(
            session,
            caller=owner,
            institution_id=institution_id,
            contract_id=contract_id,
            hours=1,
            given_on=None,
            now=now,
            idempotency_key=uuid4().hex,
        ).value.id

    pending, disputed, confirmed = give(), give(), give()
    confirm_class(
        session,
        caller=family,
        institution_id=institution_id,
        class_id=confirmed,
        idempotency_key=f"w-{confirmed}",
        now=now,
    )
    payout, _ = request_payout(
        session, caller=owner, institution_id=institution_id, idempotency_key=f"w-{contract_id}", now=now
    )
    assert payout is not None
    dispute_class(
        session,
        caller=family,
        institution_id=institution_id,
        class_id=disputed,
        reason="absent",
        idempotency_key=f"w-{disputed}",
        now=now,
    )
    request = request_refund(
        session, caller=family, institution_id=institution_id, contract_id=contract_id, reason="moving", now=now
    )
    return Place(
        jurisdiction,
        institution_id,
        course_id,
        contract_id,
        done.value.id,
        done.value.transaction_id,
        guardian_phone,
        class_id=pending,
        disputed_class_id=disputed,
        refund_request_id=request.id,
        payout_id=payout.id,
        hold_id=new_id(),
        confirmed_class_id=confirmed,
    )


def _token_specs(world: World) -> dict[str, dict[str, object]]:
    return {
        "regulator": {"role": Role.REGULATOR, "jurisdictions": [J1]},
        "school_a": {"role": Role.INSTITUTION, "institution_id": world.places["A"].institution_id},
        "school_b": {"role": Role.INSTITUTION, "institution_id": world.places["B"].institution_id},
        "parent1": {"role": Role.PARENT, "guardian_phone": world.places["parent1"].guardian_phone},
        "parent2": {"role": Role.PARENT, "guardian_phone": world.places["parent2"].guardian_phone},
        "bank_a": {"role": Role.BANK, "bank_code": "bank_a"},
    }


def today() -> date:
    return local_date(datetime.now(UTC))  # Beijing's day, as the service keeps it
