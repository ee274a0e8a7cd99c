"""Faults planted in a copy of the books raise exactly one alert of the right rule; clean books raise
none; running again raises nothing new. Two schedulers started together run each firing once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from escrow.database import make_engine, make_sessionmaker, upgrade_to_head
from escrow.ids import new_id
from escrow.jobs import JOBS, run_recorded
from tests.world import build_world


@pytest.fixture
def books(database_url: str) -> Iterator[tuple[Engine, UUID]]:
    """A database of its own holding the test district (the copy of the books faults are planted in)."""
    server = make_url(database_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"{server.database}_checks"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(server.set(database=name).render_as_string(hide_password=False), pool_size=4)
    upgrade_to_head(engine)
    with make_sessionmaker(engine).begin() as s:
        world = build_world(s)
    try:
        yield engine, world.places["A"].institution_id
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def plant(engine: Engine, *statements: str, **params: object) -> None:
    """A superuser slipping past the triggers, as a fault would."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for sql in statements:
            conn.execute(text(sql), params)


def alerts(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(  # type: ignore[misc]
                    "SELECT rule, severity FROM alert WHERE cleared_at IS NULL AND rule <> 'test_rule' ORDER BY rule"
                )
            )
        ]


def check(engine: Engine) -> dict[str, object]:
    run = run_recorded(engine, name="check_invariants", now=datetime.now(UTC))
    assert run.outcome == "ok"
    return run.found


def test_clean_books_raise_nothing(books: tuple[Engine, UUID]) -> None:
    engine, _ = books
    assert check(engine)["findings"] == 0
    assert alerts(engine) == []


CASH = "(SELECT id FROM account WHERE institution_id = :i AND code = 'custody_cash')"


@pytest.mark.parametrize(
    ("rule", "statements"),
    [
        (  # a transaction whose postings do not sum to zero, written past the trigger
            "ledger_unbalanced",
            [
                "INSERT INTO journal_transaction (institution_id, id, kind, effective_at) VALUES (:i, :t, 'x', now())",
                "INSERT INTO posting (institution_id, transaction_id, account_id, currency, amount)"
                f" SELECT :i, :t, id, 'CNY', 1 FROM account WHERE id = {CASH}",
                f"UPDATE account SET balance = balance + 1 WHERE id = {CASH}",
            ],
        ),
        ("ledger_balance_drift", [f"UPDATE account SET balance = balance + 1 WHERE id = {CASH}"]),
    ],
)
def test_each_planted_fault_raises_exactly_one_alert_of_its_rule(
    books: tuple[Engine, UUID], rule: str, statements: list[str]
) -> None:
    engine, institution = books
    plant(engine, *statements, i=institution, t=new_id())
    found = check(engine)
    assert alerts(engine) == [(rule, "red")], found
    again = check(engine)
    assert again["raised"] == 0  # still on: no new alert
    assert alerts(engine) == [(rule, "red")]


def test_two_schedulers_started_together_run_each_firing_once(books: tuple[Engine, UUID]) -> None:
    engine, _ = books
    url = engine.url.render_as_string(hide_password=False)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ESCROW_")}, "ESCROW_DATABASE_URL": url}
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "escrow", "scheduler", "--every", "4"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    time.sleep(10)
    for proc in started:
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        proc.wait(timeout=30)
    with engine.connect() as conn:
        runs = conn.execute(
            text("SELECT job, slot, count(*) FROM job_run WHERE slot IS NOT NULL GROUP BY job, slot")
        ).all()
        outcomes = set(conn.scalars(text("SELECT DISTINCT outcome FROM job_run WHERE slot IS NOT NULL")))
    with engine.connect() as conn:
        report = conn.execute(text("SELECT job, slot, outcome, error FROM job_run ORDER BY started_at")).all()
    assert runs, f"the schedulers ran nothing: {report}"
    assert {job for job, _, _ in runs} == set(JOBS), report
    assert all(count == 1 for _, _, count in runs), runs
    assert outcomes == {"ok"}
    assert len({slot for _, slot, _ in runs}) >= 2  # more than one firing happened
