"""Messages to people (an SMS to a phone): written to the outbox in the transaction of what they tell, and
sent by the backend the settings choose.

    dev_outbox   the outbox is the delivery: a developer reads the messages at /m/dev/outbox (never in production)
    sms_gateway  each message is posted to the gateway once its transaction commits; the outbox keeps a copy
                 with any secret in it (a sign-in code) masked

A message with a dedupe_key is written once, however often it is sent (a job's reminders).
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from sqlalchemy import event, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from escrow.db.family_records import OutboxMessage
from escrow.ids import new_id
from escrow.logs import get_logger
from escrow.rules.families import MessageKind, SenderKind
from escrow.settings import Settings

log = get_logger(__name__)
GATEWAY_TIMEOUT_S = 5.0
_AFTER_COMMIT = "messages_after_commit"


@dataclass(frozen=True, slots=True)
class Message:
    recipient: str  # a phone number
    kind: MessageKind
    body: str
    institution_id: UUID | None = None
    dedupe_key: str | None = None
    secret: str | None = None  # a part of the body kept out of the outbox once a gateway carries it


class MessageSender(Protocol):
    kind: SenderKind

    def send(self, session: Session, message: Message, *, now: datetime) -> bool:
        """Write the message (and have it delivered); False when its dedupe_key was written before."""
        ...


def _write(session: Session, message: Message, *, body: str, sent_by: SenderKind, now: datetime) -> bool:
    values = {
        "id": new_id(),
        "recipient": message.recipient,
        "kind": message.kind.value,
        "body": body,
        "institution_id": message.institution_id,
        "dedupe_key": message.dedupe_key,
        "sent_by": sent_by.value,
        "created_at": now,
    }
    written = session.scalar(
        insert(OutboxMessage)
        .values(values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(OutboxMessage.id)
    )
    return written is not None


class DevOutbox:
    """Development: the outbox row is the message, read by a developer."""

    kind = SenderKind.DEV_OUTBOX

    def send(self, session: Session, message: Message, *, now: datetime) -> bool:
        return _write(session, message, body=message.body, sent_by=self.kind, now=now)


class SmsGateway:
    """Production: posted as JSON {phone, text} to the gateway after the transaction commits (a rolled back
    change tells no one); a failed post is logged, by kind, never with the number or the text."""

    kind = SenderKind.SMS_GATEWAY

    def __init__(self, url: str, *, timeout_s: float = GATEWAY_TIMEOUT_S) -> None:
        self.url, self.timeout_s = url, timeout_s

    def send(self, session: Session, message: Message, *, now: datetime) -> bool:
        kept = message.body.replace(message.secret, "*" * len(message.secret)) if message.secret else message.body
        if not _write(session, message, body=kept, sent_by=self.kind, now=now):
            return False
        session.info.setdefault(_AFTER_COMMIT, []).append((self, message))
        return True

    def post(self, message: Message) -> None:
        request = urllib.request.Request(  # noqa: S310 - the operator's configured http(s) URL
            self.url,
            data=json.dumps({"phone": message.recipient, "text": message.body}, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
            answer.read()


@event.listens_for(Session, "after_commit")
def _post_committed(session: Session) -> None:
    for gateway, message in session.info.pop(_AFTER_COMMIT, []):
        try:
            gateway.post(message)
        except OSError as failed:
            log.warning("sms gateway did not take a message", kind=message.kind.value, error=type(failed).__name__)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def sender_for(settings: Settings) -> MessageSender:
    if settings.message_sender is SenderKind.SMS_GATEWAY and settings.sms_gateway_url:
        return SmsGateway(settings.sms_gateway_url)
    return DevOutbox()


def outbox_for(session: Session, *, recipient: str | None, limit: int = 50) -> list[OutboxMessage]:
    """The newest messages of the outbox (to one phone, when given): the development outbox's page."""
    query = select(OutboxMessage).order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()).limit(limit)
    if recipient:
        query = query.where(OutboxMessage.recipient == recipient)
    return list(session.scalars(query))
