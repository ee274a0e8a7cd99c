"""Telling families in time: silence confirms a class, so its family is told when it is recorded and reminded
shortly before its confirm-by date. A scheduled job of `now`; each message is written once (its dedupe key),
so running it again sends nothing twice."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.access.messages import Message, MessageSender
from escrow.db.records import ClassRecord, Contract, Guardian, Institution
from escrow.rules.calendar import local_date
from escrow.rules.families import MessageKind
from escrow.rules.states import ClassStatus

REMIND_DAYS_BEFORE = 3  # the reminder goes three days before the confirm-by date


def _day(day: date) -> str:
    return f"{day.month}月{day.day}日"


def remind_parents(session: Session, *, now: datetime, sender: MessageSender) -> dict[str, int]:
    """A message for every class waiting for its family that was not told yet, and a reminder for each whose
    confirm-by date is near: how many of each were sent."""
    today = local_date(now)
    rows = session.execute(
        select(ClassRecord, Guardian.phone, Institution.name, Contract.student_name)
        .join(
            Contract,
            (Contract.institution_id == ClassRecord.institution_id) & (Contract.id == ClassRecord.contract_id),
        )
        .join(Guardian, Guardian.id == Contract.guardian_id)
        .join(Institution, Institution.id == ClassRecord.institution_id)
        .where(ClassRecord.status == ClassStatus.PENDING, ClassRecord.confirm_by >= today)
        .order_by(ClassRecord.institution_id, ClassRecord.id)
    ).all()
    sent = {"waiting": 0, "reminders": 0}
    for record, phone, institution, student in rows:
        what = f"{institution}记录了{student}{_day(record.given_on)}的{record.hours}课时"
        key = f"{record.institution_id}:{record.id}"
        waiting = Message(
            phone,
            MessageKind.CLASS_WAITING,
            f"【预付费监管】{what}，请于{_day(record.confirm_by)}前在家长端确认或提出异议，逾期将视为确认。",
            record.institution_id,
            dedupe_key=f"class_waiting:{key}",
        )
        sent["waiting"] += sender.send(session, waiting, now=now)
        if record.confirm_by - today <= timedelta(days=REMIND_DAYS_BEFORE):
            reminder = Message(
                phone,
                MessageKind.CLASS_REMINDER,
                f"【预付费监管】提醒：{what}，尚待您确认；{_day(record.confirm_by)}后将视为确认。",
                record.institution_id,
                dedupe_key=f"class_reminder:{key}",
            )
            sent["reminders"] += sender.send(session, reminder, now=now)
    return sent
