"""A complaint from the family to the regulator and back: submitted, assigned, answered by the institution
and the regulator (each answer sent to the family's phone), followed up, closed with a note; scoped so that
nobody sees another's, with every step on the institution's audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.audit import OPERATOR
from escrow.access.callers import Caller, Role
from escrow.access.messages import DevOutbox, outbox_for
from escrow.access.users import caller_of, create_user
from escrow.errors import Conflict, Forbidden, InvalidRequest, NotFound
from escrow.families.complaints import (
    assign_complaint,
    close_complaint,
    get_complaint,
    list_complaints,
    reply_to_complaint,
    submit_complaint,
)
from escrow.ids import new_id
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.families import ComplaintCategory
from escrow.rules.identity import mask_phone
from tests.factories import JURISDICTION, regulator, school
from tests.families.family import Family, a_family

OUTBOX = DevOutbox()


def complain(s: Session, family: Family, body: str = "the teacher changed three times", **kw: object) -> object:
    return submit_complaint(s, caller=family.parent, institution_id=family.institution_id,
                            category=ComplaintCategory.TEACHING, body=body, contract_id=kw.get("contract_id"),
                            now=kw.get("now", datetime.now(UTC)))  # type: ignore[arg-type]  # fmt: skip


def person(s: Session, jurisdiction: str = JURISDICTION) -> Caller:
    add_jurisdiction(s, code=jurisdiction, name="Somewhere")
    user = create_user(s, name=f"监管员{new_id().hex[-6:]}", role=Role.REGULATOR, password="a-long-password",
                       jurisdictions=[jurisdiction], by=OPERATOR, now=datetime.now(UTC))  # fmt: skip
    return caller_of(user)


def test_a_complaint_goes_to_the_regulator_and_back(db: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with db.begin() as s:
        family = a_family(s)
        complaint = submit_complaint(s, caller=family.parent, institution_id=family.institution_id,
                                     category=ComplaintCategory.REFUND, body="  no answer to our refund  ",
                                     contract_id=family.contract_id, now=now)  # fmt: skip
        handler = person(s)
    ids = (family.institution_id, complaint.id)
    assert (complaint.status, complaint.body) == ("submitted", "no answer to our refund")
    with db.begin() as s:
        assigned = assign_complaint(s, caller=handler, institution_id=ids[0], complaint_id=ids[1],
                                    assignee_id=handler.token_id, now=now)  # fmt: skip
        assert assigned.status == "assigned"
        reply_to_complaint(s, caller=family.owner, institution_id=ids[0], complaint_id=ids[1],
                           body="We will answer by Friday.", sender=OUTBOX, now=now)  # fmt: skip
        reply_to_complaint(s, caller=family.parent, institution_id=ids[0], complaint_id=ids[1],
                           body="It is Saturday now.", sender=OUTBOX, now=now + timedelta(days=3))  # fmt: skip
        close_complaint(s, caller=handler, institution_id=ids[0], complaint_id=ids[1],
                        note_text="The refund was approved today.", sender=OUTBOX,
                        now=now + timedelta(days=4))  # fmt: skip
    with db.begin() as s:
        view = get_complaint(s, caller=family.parent, institution_id=ids[0], complaint_id=ids[1])
        assert view.complaint.status == "closed" and view.complaint.closed_at is not None
        assert [(m.author_role, m.body) for m in view.messages] == [
            ("institution", "We will answer by Friday."),
            ("parent", "It is Saturday now."),
            ("regulator", "The refund was approved today."),
        ]
        assert view.assignee_name is not None and view.guardian_phone == family.phone
        assert view.messages[1].author == f"parent:{mask_phone(family.phone)}"  # the staff never see the number
        texts = [m.body for m in outbox_for(s, recipient=family.phone)]
        assert len(texts) == 2 and all("Sunshine Maths" in t for t in texts)  # the answer and the closing
        assert "已办结" in texts[0] and "新的回复" in texts[1]
        with pytest.raises(Conflict):
            reply_to_complaint(s, caller=family.parent, institution_id=ids[0], complaint_id=ids[1], body="more",
                               sender=OUTBOX, now=now)  # fmt: skip
        trail = text("SELECT action FROM audit_record WHERE chain = :c AND object_id = :o ORDER BY position")
        actions = s.scalars(trail, {"c": ids[0], "o": str(ids[1])}).all()
    assert actions == ["complaint.submitted", "complaint.assigned", "complaint.answered", "complaint.followed_up",
                       "complaint.closed"]  # fmt: skip


def test_nobody_sees_anothers_complaint(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        neighbour = a_family(s, at=family.institution_id)
        elsewhere = a_family(s, name="Elsewhere School")
        complaint = complain(s, family)
    ids = {"institution_id": family.institution_id, "complaint_id": complaint.id}  # type: ignore[attr-defined]
    with db.begin() as s:
        for outsider in (neighbour.parent, elsewhere.owner, regulator("370000")):
            with pytest.raises(NotFound):
                get_complaint(s, caller=outsider, **ids)
            assert list_complaints(s, caller=outsider, institution_id=family.institution_id).items == []
        with pytest.raises(Forbidden):
            get_complaint(s, caller=Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_f"), **ids)
        assert get_complaint(s, caller=family.owner, **ids).guardian_phone.count("*") == 4  # masked for staff
        assert get_complaint(s, caller=regulator(JURISDICTION), **ids).guardian_phone == family.phone
        with pytest.raises(NotFound):  # a complaint is about an institution the family has a contract with
            complain(s, neighbour, contract_id=family.contract_id)
        with pytest.raises(NotFound):
            submit_complaint(s, caller=family.parent, institution_id=elsewhere.institution_id,
                             category=ComplaintCategory.OTHER, body="x", contract_id=None,
                             now=datetime.now(UTC))  # fmt: skip
        with pytest.raises(Forbidden):
            reply_to_complaint(s, caller=Caller(token_id=new_id(), role=Role.BANK, bank_code="b"), body="x",
                               sender=OUTBOX, now=datetime.now(UTC), **ids)  # fmt: skip
        with pytest.raises(NotFound):
            reply_to_complaint(s, caller=school(elsewhere.institution_id), body="x", sender=OUTBOX,
                               now=datetime.now(UTC), **ids)  # fmt: skip


def test_refused_complaints_and_assignments_change_nothing(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        complaint = complain(s, family)
        outsider = person(s, "310105")
    ids = {"institution_id": family.institution_id, "complaint_id": complaint.id}  # type: ignore[attr-defined]
    with db.begin() as s:
        for body, reason in (("   ", "empty"), ("x" * 2_001, "too_long")):
            with pytest.raises(InvalidRequest) as refused:
                complain(s, family, body=body)
            assert refused.value.context == {"field": "body", "reason": reason}
        with pytest.raises(InvalidRequest) as wrong_person:  # a regulator of another jurisdiction
            assign_complaint(s, caller=regulator(JURISDICTION), assignee_id=outsider.token_id,
                             now=datetime.now(UTC), **ids)  # fmt: skip
        assert wrong_person.value.context["field"] == "assignee_id"
        with pytest.raises(Forbidden):
            assign_complaint(s, caller=family.owner, assignee_id=outsider.token_id, now=datetime.now(UTC), **ids)
        with pytest.raises(Forbidden):
            close_complaint(s, caller=family.parent, note_text="done", sender=OUTBOX, now=datetime.now(UTC), **ids)
    with db.begin() as s:
        assert get_complaint(s, caller=family.parent, **ids).complaint.status == "submitted"
        assert len(list_complaints(s, caller=family.parent).items) == 1


def test_listing_filters_narrow_the_callers_scope(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        complain(s, family)
        submit_complaint(s, caller=family.parent, institution_id=family.institution_id,
                         category=ComplaintCategory.SAFETY, body="the stairs", contract_id=None,
                         now=datetime.now(UTC))  # fmt: skip
    with db.begin() as s:
        mine = list_complaints(s, caller=family.parent)
        assert [c.category for c in mine.items] == ["teaching", "safety"]
        safety = list_complaints(s, caller=family.owner, category=ComplaintCategory.SAFETY)
        assert [c.body for c in safety.items] == ["the stairs"]
        assert len(list_complaints(s, caller=regulator(JURISDICTION), institution_id=family.institution_id).items) == 2
