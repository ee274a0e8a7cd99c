"""Silence confirms a class, so its family is told when it is recorded and reminded three days before its
confirm-by date; the job sends each message once however often it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.messages import DevOutbox
from escrow.families.reminders import remind_parents
from escrow.flows.classes import confirm_class
from tests.families.family import a_family, give_class

OUTBOX = DevOutbox()


def messages(db: sessionmaker[Session], phone: str) -> list[tuple[str, str]]:
    with db.begin() as s:
        rows = s.execute(
            text("SELECT kind, body FROM outbox_message WHERE recipient = :p ORDER BY created_at, kind"), {"p": phone}
        )
        return [(kind, body) for kind, body in rows]


def test_a_waiting_class_is_told_once_and_reminded_before_silence_confirms_it(db: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with db.begin() as s:
        family = a_family(s)
        waiting, answered = give_class(s, family), give_class(s, family)
        confirm_class(s, caller=family.parent, institution_id=family.institution_id, class_id=answered,
                      idempotency_key=f"c-{answered}", now=now)  # fmt: skip
        confirm_by = s.scalar(text("SELECT confirm_by FROM class_record WHERE id = :c"), {"c": waiting})
    for _ in range(2):
        with db.begin() as s:
            remind_parents(s, now=now, sender=OUTBOX)
    told = messages(db, family.phone)
    assert [kind for kind, _ in told] == ["class_waiting"]
    assert f"{confirm_by.month}月{confirm_by.day}日前" in told[0][1] and "Sunshine Maths" in told[0][1]
    near = datetime.combine(confirm_by - timedelta(days=3), now.timetz())
    for _ in range(2):
        with db.begin() as s:
            remind_parents(s, now=near, sender=OUTBOX)
    assert [kind for kind, _ in messages(db, family.phone)] == ["class_waiting", "class_reminder"]
    after = datetime.combine(confirm_by + timedelta(days=1), now.timetz())
    with db.begin() as s:
        remind_parents(s, now=after, sender=OUTBOX)  # past its date: the class is deemed, not reminded
    assert len(messages(db, family.phone)) == 2
