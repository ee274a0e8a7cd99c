"""Pooled connections: one the server dropped while it sat idle is replaced before anyone uses it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from escrow.db import database
from escrow.db.database import make_engine


def _backend(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(engine: Engine, pid: int) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        conn.commit()


def test_a_connection_dropped_while_idle_is_replaced_and_a_busy_one_fails_once(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pooled = make_engine(database_url, pool_size=1)
    try:
        first = _backend(pooled)
        assert _backend(pooled) == first  # reused, not pinged: it was idle for less than a second
        _terminate(engine, first)
        with pytest.raises(OperationalError) as lost:  # used again at once: no ping, the statement fails
            _backend(pooled)
        assert lost.value.connection_invalidated
        second = _backend(pooled)  # the pool started afresh
        assert second != first
        monkeypatch.setattr(database, "IDLE_BEFORE_PING_S", 0.0)  # now every checkout counts as idle
        _terminate(engine, second)
        third = _backend(pooled)  # pinged, found dead, replaced: the caller never sees it
        assert third not in (first, second)
    finally:
        pooled.dispose()
