"""What families say and are told (pure): complaint categories and who writes in a complaint's thread,
the bounds of their words, the stars of an evaluation, and the kinds of message sent to a phone."""

from __future__ import annotations

import re
from enum import StrEnum

PHONE = re.compile(r"^1[3-9][0-9]{9}$")  # a mainland mobile number, as contracts record guardians'
MAX_COMPLAINT_CHARS = 2_000
MAX_COMMENT_CHARS = 500
STARS = range(1, 6)


class ComplaintCategory(StrEnum):
    REFUND = "refund"  # a refund refused, slow, or short
    TEACHING = "teaching"  # classes not given as agreed, teachers changed, quality
    FEES = "fees"  # fees beyond the caps, or taken outside the custody account
    ADVERTISING = "advertising"  # promises the institution did not keep
    SAFETY = "safety"  # premises, food, safety of the children
    CLOSURE = "closure"  # the institution closed, or looks about to vanish
    OTHER = "other"


class Author(StrEnum):
    """Who wrote a message in a complaint's thread."""

    PARENT = "parent"
    INSTITUTION = "institution"
    REGULATOR = "regulator"


class MessageKind(StrEnum):
    SIGN_IN_CODE = "sign_in_code"
    CLASS_WAITING = "class_waiting"  # a class was recorded: confirm or dispute it by its date
    CLASS_REMINDER = "class_reminder"  # its date is near, and silence will confirm it
    COMPLAINT_ANSWERED = "complaint_answered"


class SenderKind(StrEnum):
    """Where messages go: a development outbox a developer reads, or an SMS gateway."""

    DEV_OUTBOX = "dev_outbox"
    SMS_GATEWAY = "sms_gateway"


class CodeOutcome(StrEnum):
    """How a sign-in code ended (a live one has none)."""

    USED = "used"
    SUPERSEDED = "superseded"  # a newer code was asked for
    EXHAUSTED = "exhausted"  # too many wrong tries


def phone_problem(phone: str) -> str | None:
    """Why `phone` is not a mainland mobile number, or None."""
    return None if PHONE.match(phone) else "a phone number is 11 digits starting with 13 to 19, e.g. 13812345678"


def text_problem(text: str, *, limit: int, what: str) -> str | None:
    """Why `text` cannot be kept as a message (empty, or too long), or None."""
    if not text.strip():
        return f"the {what} is empty"
    if len(text) > limit:
        return f"the {what} has {len(text)} characters; at most {limit}"
    return None


def stars_problem(stars: int) -> str | None:
    return None if stars in STARS else f"an evaluation has 1 to 5 stars, not {stars}"
