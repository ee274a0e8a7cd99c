"""Scheduled work as plain functions of `now`: each is safe to run twice and says what it did."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from sqlalchemy.orm import Session

from escrow.classes import deem_classes_confirmed
from escrow.errors import NotFound
from escrow.payouts import make_payouts, reinstruct_refunds
from escrow.refunds import deem_refunds_approved

Job = Callable[..., list[UUID]]


def _payouts(session: Session, *, now: datetime) -> list[UUID]:
    return make_payouts(session, now=now) + reinstruct_refunds(session, now=now)


JOBS: dict[str, tuple[Job, str]] = {
    "deem_classes_confirmed": (deem_classes_confirmed, "confirm classes whose parents stayed silent too long"),
    "deem_refunds_approved": (deem_refunds_approved, "approve refund requests left unanswered too long"),
    "make_payouts": (_payouts, "instruct releases due under each cadence, and refunds owed"),
}


def run_job(session: Session, *, name: str, now: datetime) -> list[UUID]:
    """Run one job in the caller's transaction; the ids of what it changed."""
    if name not in JOBS:
        raise NotFound(f"no job named {name!r}; jobs: {', '.join(JOBS)}")
    return JOBS[name][0](session, now=now)
