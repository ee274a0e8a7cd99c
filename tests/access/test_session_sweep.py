"""The console's sessions past their expiry are deleted by a scheduled job (sweep_sessions), which is a
plain function of `now`: run twice, it deletes nothing more; a live session is never touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.audit import OPERATOR
from escrow.access.callers import Role
from escrow.access.users import SESSION_LIFETIME, create_user, sign_in, sign_out, signed_in
from escrow.errors import Unauthenticated
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.supervision.jobs import JOBS, run_job, run_recorded

J = "310118"
T0 = datetime(2026, 6, 1, 1, tzinfo=UTC)  # long before any session the other tests sign in with now
PASSWORD = "sweep-test-password"


def _sessions(db: sessionmaker[Session], user: object) -> int:
    with db() as s:
        return int(s.scalar(text("SELECT count(*) FROM web_session WHERE user_id = :u"), {"u": user}) or 0)


def test_expired_sessions_are_deleted_and_live_ones_kept(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        add_jurisdiction(s, code=J, name="Zhabei")
        user = create_user(s, name="孙丽", role=Role.REGULATOR, password=PASSWORD, jurisdictions=[J], by=OPERATOR,
                           now=T0).id  # fmt: skip
    with db.begin() as s:
        sign_in(s, name="孙丽", password=PASSWORD, now=T0)  # expires at T0 + 8 h
        signed_out, _ = sign_in(s, name="孙丽", password=PASSWORD, now=T0 + timedelta(hours=1))
        sign_out(s, secret=signed_out, now=T0 + timedelta(hours=2))  # ended, expires at T0 + 9 h
        live, _ = sign_in(s, name="孙丽", password=PASSWORD, now=T0 + timedelta(hours=5))  # until T0 + 13 h
    assert _sessions(db, user) == 3
    at = T0 + SESSION_LIFETIME + timedelta(hours=1, minutes=30)  # T0 + 9.5 h
    with db.begin() as s:
        assert run_job(s, name="sweep_sessions", now=at) == {"deleted": 2, "parent_sessions_deleted": 0}
    assert _sessions(db, user) == 1
    with db.begin() as s:
        assert run_job(s, name="sweep_sessions", now=at) == {
            "deleted": 0,
            "parent_sessions_deleted": 0,
        }  # again: nothing more
        assert signed_in(s, secret=live, now=at).user.id == user
        swept = s.scalar(
            text("SELECT after FROM audit_record WHERE action = 'web_sessions.swept' ORDER BY occurred_at DESC LIMIT 1")
        )
        assert swept["deleted"] >= 2 and swept["expired_by"] == at.isoformat()
    with db.begin() as s, pytest.raises(Unauthenticated):
        signed_in(s, secret=signed_out, now=at)


def test_the_sweep_is_scheduled_with_the_other_jobs_and_recorded(engine: Engine) -> None:
    assert "sweep_sessions" in JOBS  # the scheduler runs every job of JOBS, hourly (escrow scheduler)
    done = run_recorded(engine, name="sweep_sessions", now=T0)
    assert done.outcome == "ok" and set(done.found) == {"deleted", "parent_sessions_deleted"}
