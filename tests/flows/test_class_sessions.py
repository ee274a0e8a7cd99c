"""A class session for a group, on real PostgreSQL: one class per student present, all or none, every
refusal named, and idempotent against a double submit."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.errors import IdempotencyConflict, InvalidRequest, NotFound, PolicyViolation
from escrow.flows.class_sessions import ClassSessionRefused, class_roster, record_class_session
from escrow.flows.refunds import decide_refund, request_refund
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.calendar import local_date
from escrow.rules.policy import CourseCategory
from tests.factories import account_number, credit_code, parent, phone, regulator, school, stand_in_calendar

J = "310116"


@dataclass(frozen=True)
class Group:
    institution: UUID
    course: UUID
    other_course: UUID
    contracts: list[UUID]  # 王一 (10 h), 王二 (10 h), 王三 (2 h)
    other: UUID  # a student of the other course


@pytest.fixture
def group(db: sessionmaker[Session]) -> Group:
    return make_group(db)


def make_group(db: sessionmaker[Session]) -> Group:
    """A school of its own: two non-subject courses, three students of the first and one of the second."""
    now = datetime.now(UTC)
    today = local_date(now)
    with db.begin() as s:
        stand_in_calendar(s, now)
        add_jurisdiction(s, code=J, name="Songjiang District")
        inst = register_institution(s, caller=regulator(J), name="Group school", credit_code=credit_code(),
                                    jurisdiction_code=J, custody_bank="bank_g", custody_account=account_number(),
                                    supervision_model=None, today=today)  # fmt: skip
        owner = school(inst.id)
        courses = [
            create_course(
                s,
                caller=owner,
                institution_id=inst.id,
                name=name,
                category=CourseCategory.NON_SUBJECT,
                unit_price_fen=10_000,
                guide_price_fen=None,
                today=today,
            ).id
            for name in ("Piano", "Go")
        ]

        def sign(course: UUID, student: str, hours: int) -> UUID:
            view = sign_contract(s, caller=owner, institution_id=inst.id, course_id=course,
                                 guardian=GuardianDetails(name=f"{student}家长", phone=phone()), student_name=student,
                                 hours_bought=hours, bonus_hours=0, term_start=today,
                                 term_end=today + timedelta(days=60), now=now)  # fmt: skip
            return view.contract.id

        contracts = [sign(courses[0], "王一", 10), sign(courses[0], "王二", 10), sign(courses[0], "王三", 2)]
        other = sign(courses[1], "李四", 10)
    return Group(inst.id, courses[0], courses[1], contracts, other)


def _session(s: Session, g: Group, contracts: list[UUID], key: str, hours: int = 2, given_on: object = None) -> object:
    return record_class_session(
        s,
        caller=school(g.institution),
        institution_id=g.institution,
        course_id=g.course,
        given_on=given_on,  # type: ignore[arg-type]
        hours=hours,
        contract_ids=contracts,
        idempotency_key=key,
        now=datetime.now(UTC),
    )


def _classes(s: Session, g: Group) -> int:
    return s.scalar(text("SELECT count(*) FROM class_record WHERE institution_id = :i"), {"i": g.institution}) or 0


def _notes(s: Session, g: Group) -> int:
    query = text("SELECT count(*) FROM audit_record WHERE chain = :i AND action = 'class.recorded'")
    return s.scalar(query, {"i": g.institution}) or 0


def test_a_session_records_a_class_for_each_student_and_notes_each(db: sessionmaker[Session], group: Group) -> None:
    with db.begin() as s:
        done, replayed = _session(s, group, group.contracts, "lesson-1")  # type: ignore[misc]
    assert not replayed and len(done.classes) == 3 and {c.hours for c in done.classes} == {2}
    assert {c.contract_id for c in done.classes} == set(group.contracts)
    with db.begin() as s:
        assert _classes(s, group) == 3 and _notes(s, group) == 3


def test_a_double_submit_records_nothing_twice(db: sessionmaker[Session], group: Group) -> None:
    with db.begin() as s:
        first, _ = _session(s, group, group.contracts[:2], "lesson-2")  # type: ignore[misc]
    with db.begin() as s:
        again, replayed = _session(s, group, list(reversed(group.contracts[:2])), "lesson-2")  # type: ignore[misc]
    assert replayed and [c.id for c in again.classes] == [c.id for c in first.classes]
    with db.begin() as s:
        assert _classes(s, group) == 2
        with pytest.raises(IdempotencyConflict):
            _session(s, group, group.contracts[:1], "lesson-2")


def test_one_refusal_keeps_nothing_and_every_refusal_is_named(db: sessionmaker[Session], group: Group) -> None:
    now = datetime.now(UTC)
    with db.begin() as s:  # 王二's family asked for a refund and it was approved: the contract ended
        family = parent(s, s.scalar(text("SELECT guardian_id FROM contract WHERE id = :c"), {"c": group.contracts[1]}))
        asked = request_refund(s, caller=family, institution_id=group.institution, contract_id=group.contracts[1],
                               reason="搬家", now=now)  # fmt: skip
        decide_refund(s, caller=school(group.institution), institution_id=group.institution, request_id=asked.id,
                      approve=True, reason=None, idempotency_key="r-1", now=now)  # fmt: skip
    stranger = new_id()
    with db.begin() as s:
        with pytest.raises(ClassSessionRefused) as refused:
            _session(s, group, [*group.contracts, group.other, stranger], "lesson-3", hours=3)
        by_contract = {r.contract_id: r for r in refused.value.refusals}
        assert {c: r.code for c, r in by_contract.items()} == {
            group.contracts[1]: "not_active",
            group.contracts[2]: "hours_left",  # 王三 has 2 hours left, the session is 3
            group.other: "other_course",
            stranger: "not_found",
        }
        assert by_contract[group.contracts[2]].student_name == "王三"
        assert "2 class hours left" in by_contract[group.contracts[2]].detail
        assert _classes(s, group) == 0 and s.info.get("audit", []) == []  # 王一's class went with the rest
    with db.begin() as s:
        assert _classes(s, group) == 0 and _notes(s, group) == 0
        done, replayed = _session(s, group, [group.contracts[0]], "lesson-3", hours=3)  # type: ignore[misc]
    assert not replayed and len(done.classes) == 1  # the refused session's key was not kept either


def test_the_day_is_checked_once_for_the_whole_session(db: sessionmaker[Session], group: Group) -> None:
    today = local_date(datetime.now(UTC))
    with db.begin() as s:
        with pytest.raises(InvalidRequest, match="in the future"):
            _session(s, group, group.contracts, "lesson-4", given_on=today + timedelta(days=1))
        with pytest.raises(PolicyViolation, match="more than 7 days ago"):
            _session(s, group, group.contracts, "lesson-5", given_on=today - timedelta(days=8))
        with pytest.raises(InvalidRequest, match="more than once"):
            _session(s, group, [group.contracts[0], group.contracts[0]], "lesson-6")


def test_another_institution_and_its_course_are_not_found(db: sessionmaker[Session], group: Group) -> None:
    with db.begin() as s:
        with pytest.raises(NotFound):
            record_class_session(s, caller=school(new_id()), institution_id=group.institution, course_id=group.course,
                                 given_on=None, hours=1, contract_ids=group.contracts, idempotency_key="x",
                                 now=datetime.now(UTC))  # fmt: skip
        with pytest.raises(NotFound):
            record_class_session(s, caller=school(group.institution), institution_id=group.institution,
                                 course_id=new_id(), given_on=None, hours=1, contract_ids=group.contracts,
                                 idempotency_key="y", now=datetime.now(UTC))  # fmt: skip


def test_the_roster_says_who_can_take_the_class(db: sessionmaker[Session], group: Group) -> None:
    with db.begin() as s:
        _session(s, group, [group.contracts[2]], "lesson-7", hours=1)
        roster = class_roster(s, caller=school(group.institution), institution_id=group.institution,
                              course_id=group.course, on=None, hours=2, now=datetime.now(UTC))  # fmt: skip
    lines = {line.student_name: line for line in roster.lines}
    assert set(lines) == {"王一", "王二", "王三"}  # the other course's student is not on it
    assert lines["王三"].hours_left == 1 and lines["王三"].refusal == "hours_left"
    assert lines["王三"].last_given_on == roster.day and lines["王一"].last_given_on is None
    assert lines["王一"].refusal is None and lines["王一"].hours_left == 10


def test_two_sessions_racing_for_a_students_last_hours_record_one(db: sessionmaker[Session], group: Group) -> None:
    """王三 has 2 hours left; two teachers record a 2-hour session with them at once: one is kept, whole."""
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def teacher(key: str, others: list[UUID]) -> None:
        start.wait()
        try:
            with db.begin() as s:
                _session(s, group, [group.contracts[2], *others], key)
            outcomes[key] = "recorded"
        except ClassSessionRefused as refused:
            outcomes[key] = ",".join(r.code for r in refused.refusals)

    threads = [
        threading.Thread(target=teacher, args=("race-1", [group.contracts[0]])),
        threading.Thread(target=teacher, args=("race-2", [group.contracts[1]])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["hours_left", "recorded"]
    with db.begin() as s:
        assert _classes(s, group) == 2  # the winner's two students; the loser's other student went with it
