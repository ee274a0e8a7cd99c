"""Migration 0021 on a trail written before it: the records appended by audit_append still verify, the
chains go on from their heads through audit_note, and the way back restores audit_append."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from escrow.access.audit import OPERATOR, _canonical, note, verify_chains
from tests.db.test_account_kinds_migration import migrate

BEFORE = "0020_ledger_values"
AFTER = "0021_audit_at_commit"


@pytest.fixture
def old_trail(database_url: str) -> Iterator[Engine]:
    """A database of its own, migrated only to 0020."""
    server = make_url(database_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"{server.database}_notes"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(server.set(database=name))
    try:
        migrate(engine, BEFORE)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def append_as_before(engine: Engine, chain: UUID, actions: list[str]) -> None:
    """Records appended as escrow/access/audit.py did before 0021: canonical JSON with two slots, one call."""
    records = []
    for action in actions:
        record = {
            "chain": chain,
            "occurred_at": datetime.now(UTC),
            "actor": "operator:cli",
            "role": "operator",
            "action": action,
            "object_type": "thing",
            "object_id": action,
            "before": None,
            "after": {"名": '张伟 "quoted"', "n": 1},
        }
        slots = {"position_slot": uuid4().hex, "prev_hash_slot": uuid4().hex}
        canonical = _canonical(record | {"position": slots["position_slot"], "prev_hash": slots["prev_hash_slot"]})
        records.append(
            record
            | {"chain": str(chain), "occurred_at": record["occurred_at"].isoformat(), "canonical": canonical}
            | slots
        )
    with engine.begin() as conn:
        conn.execute(
            text("SELECT audit_append(:c, CAST(:r AS jsonb))"),
            {"c": chain, "r": json.dumps(records, ensure_ascii=False)},
        )


def actions(engine: Engine, chain: UUID) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT position, action FROM audit_record WHERE chain = :c ORDER BY position"), {"c": chain}
        )
        return [(r.position, r.action) for r in rows]


def breaks(engine: Engine) -> list[object]:
    with Session(engine) as s:
        return list(verify_chains(s))


def test_records_appended_before_0021_verify_after_it_and_their_chains_go_on(old_trail: Engine) -> None:
    first, second = uuid4(), uuid4()
    append_as_before(old_trail, first, ["old.one", "old.two"])
    append_as_before(old_trail, second, ["old.three"])
    migrate(old_trail, AFTER)
    assert breaks(old_trail) == []
    with Session(old_trail) as s, s.begin():
        for chain in (second, first):
            note(s, OPERATOR, "new.noted", institution_id=chain, object_type="thing", object_id=1)
    assert actions(old_trail, first) == [(1, "old.one"), (2, "old.two"), (3, "new.noted")]
    assert actions(old_trail, second) == [(1, "old.three"), (2, "new.noted")]
    assert breaks(old_trail) == []


def test_0021_down_again_restores_audit_append_and_keeps_the_trail(old_trail: Engine) -> None:
    chain = uuid4()
    append_as_before(old_trail, chain, ["old.one"])
    migrate(old_trail, AFTER)
    with Session(old_trail) as s, s.begin():
        note(s, OPERATOR, "new.noted", institution_id=chain, object_type="thing", object_id=1)
    migrate(old_trail, BEFORE, down=True)
    with old_trail.connect() as conn:
        assert conn.scalar(text("SELECT to_regclass('audit_note')")) is None
    append_as_before(old_trail, chain, ["old.again"])
    assert actions(old_trail, chain) == [(1, "old.one"), (2, "new.noted"), (3, "old.again")]
    assert breaks(old_trail) == []
