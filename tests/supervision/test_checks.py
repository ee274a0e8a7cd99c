"""Faults planted in a copy of the books (and of the bank's statements) raise exactly one alert of the
right rule; clean books raise none; running again raises nothing new. Two schedulers started together
run each firing once."""

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
from sqlalchemy import Engine, text

from escrow.access.callers import Caller, Role
from escrow.bank.statements import import_statements
from escrow.db.database import make_sessionmaker
from escrow.demo.bank_files import ledger_statements, statements_csv
from escrow.flows.payouts import settle_payout
from escrow.ids import new_id
from escrow.rules.calendar import BUSINESS_TZ
from escrow.supervision.jobs import JOBS, run_recorded
from tests.factories import fresh_database
from tests.world import Place, build_world

PAYOUT_REFERENCE = "PAY-A-0001"


@pytest.fixture
def books(database_url: str) -> Iterator[tuple[Engine, dict[str, UUID]]]:
    """A database of its own holding the test district (the copy of the books faults are planted in)."""
    with fresh_database(database_url, "checks") as engine:
        now = datetime.now(UTC)
        with make_sessionmaker(engine).begin() as s:
            world = build_world(s, now=now)
        _pay_out_and_redeliver(engine, world.places["A"], now)
        yield engine, {name: world.places[name].institution_id for name in ("A", "B")}


def _pay_out_and_redeliver(engine: Engine, place: Place, now: datetime) -> None:
    """A's bank executes its payout and sends today's statement again with it (the world's is replaced)."""
    with make_sessionmaker(engine).begin() as s:
        bank = Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_a")
        settle_payout(
            s,
            caller=bank,
            institution_id=place.institution_id,
            payout_id=place.payout_id,
            executed=True,
            note_text=PAYOUT_REFERENCE,
            idempotency_key="execute-a",
            now=now,
        )
    plant(
        engine,
        "DELETE FROM statement_line WHERE institution_id = :i",
        "DELETE FROM bank_statement WHERE institution_id = :i",
        i=place.institution_id,
    )
    with make_sessionmaker(engine).begin() as s:
        (statement,) = ledger_statements(
            s, day=now.astimezone(BUSINESS_TZ).date(), institution_ids=[place.institution_id]
        )
        import_statements(s, caller=bank, data=statements_csv([statement]), fmt=None, now=now)


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


CHECKS = ("reconcile", "check_invariants", "evaluate_risks")


def check(engine: Engine) -> dict[str, dict[str, object]]:
    """The jobs that hold the books against themselves, against the bank, and against the rules."""
    found = {}
    for job in CHECKS:
        run = run_recorded(engine, name=job, now=datetime.now(UTC))
        assert run.outcome == "ok", (run, _error(engine, run.id))
        found[job] = run.found
    return found


def raised(found: dict[str, dict[str, object]]) -> int:
    return sum(int(f["raised"]) for f in found.values())  # type: ignore[call-overload]


def test_clean_books_raise_nothing(books: tuple[Engine, dict[str, UUID]]) -> None:
    engine, _ = books
    found = check(engine)
    assert [found[job]["findings"] for job in CHECKS] == [0, 0, 0], found
    assert found["reconcile"]["matched_one_to_one"] == 5  # the collections of A, B and C (two), A's payout
    assert alerts(engine) == []


CASH = "(SELECT id FROM account WHERE institution_id = :i AND code = 'custody_cash')"
RELEASABLE = "(SELECT id FROM account WHERE institution_id = :i AND code = 'releasable')"
PREPAID = "(SELECT id FROM account WHERE institution_id = :i AND code LIKE 'prepaid:%' ORDER BY balance DESC LIMIT 1)"
RESERVE = "(SELECT id FROM account WHERE institution_id = :i AND code = 'reserve_deposit')"


def transaction(*legs: tuple[str, int]) -> list[str]:
    """A journal transaction :t with these (account, amount) postings, written as they stand; balances untouched."""
    values = ", ".join(f"(:i, :t, {account}, 'CNY', {amount})" for account, amount in legs)
    return [
        "INSERT INTO journal_transaction (institution_id, id, kind, effective_at, legs)"
        f" VALUES (:i, :t, 'x', now(), {len(legs)})",
        f"INSERT INTO posting (institution_id, transaction_id, account_id, currency, amount) VALUES {values}",
    ]


def move_one_fen(source: str, target: str) -> list[str]:
    """A balanced transaction, as it says, from one credit account to another, with both balances moved."""
    return [
        *transaction((source, 1), (target, -1)),
        f"UPDATE account SET balance = balance - 1 WHERE id = {source}",
        f"UPDATE account SET balance = balance + 1 WHERE id = {target}",
    ]


def round_trip(fen: int, *, over_by: int = 0) -> list[str]:
    """A transaction that moves `fen` from releasable to a family's prepaid account and back with `over_by`
    fen more on the way back (unbalanced by that much, releasable's balance moved with its postings)."""
    return [
        *transaction((RELEASABLE, fen), (PREPAID, -fen), (PREPAID, fen), (RELEASABLE, -fen - over_by)),
        f"UPDATE account SET balance = balance + {over_by} WHERE id = {RELEASABLE}",
    ]


BEYOND_PRODUCTS = 2**40  # fen: amount x hash no longer fits a bigint, so the checks sum in halves


RELEASE = "(SELECT id FROM journal_transaction WHERE institution_id = :i AND kind = 'class_released' LIMIT 1)"


@pytest.mark.parametrize(
    ("rule", "statements"),
    [
        (  # a one-legged transaction written past the trigger (on releasable: on custody cash it would
            # also be a cash movement the bank never made, which reconciliation reports on its own)
            "ledger_unbalanced",
            [
                "INSERT INTO journal_transaction (institution_id, id, kind, effective_at, legs)"
                " VALUES (:i, :t, 'x', now(), 2)",
                "INSERT INTO posting (institution_id, transaction_id, account_id, currency, amount)"
                f" SELECT :i, :t, id, 'CNY', -1 FROM account WHERE id = {RELEASABLE}",
                f"UPDATE account SET balance = balance + 1 WHERE id = {RELEASABLE}",
            ],
        ),
        (  # the same with amounts too large to multiply by a hash in a bigint
            "ledger_unbalanced",
            round_trip(BEYOND_PRODUCTS, over_by=1),
        ),
        (  # a transaction that says it has more postings than it has
            "ledger_unbalanced",
            [f"UPDATE journal_transaction SET legs = legs + 1 WHERE id = {RELEASE}"],
        ),
        ("ledger_balance_drift", [f"UPDATE account SET balance = balance + 1 WHERE id = {CASH}"]),
        (  # a family's fen moved to the reserve deposit: every sum is right, but custody cash is not what is owed
            "custody_identity_broken",
            move_one_fen(PREPAID, RESERVE),
        ),
        (  # the reserve deposit, which may not go negative, driven below zero past its CHECK
            "ledger_negative_balance",
            ["ALTER TABLE account DROP CONSTRAINT account_balance_not_negative", *move_one_fen(RESERVE, RELEASABLE)],
        ),
        (  # what a family is owed, cached one fen high: not the bank's difference, nor custody below owed
            "ledger_balance_drift",
            [f"UPDATE account SET balance = balance + 1 WHERE id = {PREPAID}"],
        ),
        (  # the bank received 100.00 yuan the ledger knows nothing of (its closing balance includes it)
            "recon_bank_line_unmatched",
            [
                "INSERT INTO statement_line (institution_id, id, statement_id, position, value_date, amount_fen,"
                " reference) SELECT institution_id, :t, id, 99, statement_date, 10000, 'UNKNOWN-1'"
                " FROM bank_statement WHERE institution_id = :i",
                "UPDATE bank_statement SET closing_fen = closing_fen + 10000 WHERE institution_id = :i",
            ],
        ),
        (  # the ledger paid the institution out, the bank's statement does not show it (nor its balance)
            "recon_ledger_unmatched",
            [
                "UPDATE bank_statement SET closing_fen = closing_fen - l.amount_fen FROM statement_line l"
                f" WHERE l.institution_id = :i AND l.reference = '{PAYOUT_REFERENCE}'"
                " AND bank_statement.institution_id = :i",
                f"DELETE FROM statement_line WHERE institution_id = :i AND reference = '{PAYOUT_REFERENCE}'",
            ],
        ),
        (  # the bank's closing balance is one fen short of the ledger's custody cash (at B, whose
            # payout is still pending, so the one fen is not families' money: custody_below_owed stays off)
            "recon_balance_differs",
            [
                "UPDATE bank_statement SET opening_fen = opening_fen - 1, closing_fen = closing_fen - 1"
                " WHERE institution_id = :b"
            ],
        ),
    ],
)
def test_each_planted_fault_raises_exactly_one_alert_of_its_rule(
    books: tuple[Engine, dict[str, UUID]], rule: str, statements: list[str]
) -> None:
    engine, places = books
    plant(engine, *statements, i=places["A"], b=places["B"], t=new_id())
    found = check(engine)
    assert alerts(engine) == [(rule, "red")], (found, _statements(engine))
    again = check(engine)
    assert raised(again) == 0, again  # still on: no new alert
    assert alerts(engine) == [(rule, "red")]


def test_amounts_too_large_for_a_bigint_product_are_summed_exactly(books: tuple[Engine, dict[str, UUID]]) -> None:
    engine, places = books
    plant(engine, *round_trip(BEYOND_PRODUCTS), i=places["A"], t=new_id())
    found = check(engine)
    assert found["check_invariants"]["findings"] == 0, found
    assert alerts(engine) == []


def test_postings_moved_to_a_transaction_that_does_not_exist_are_found_on_both_ends(
    books: tuple[Engine, dict[str, UUID]],
) -> None:
    """Every balance still sums right and every transaction that has postings balances: only the
    transactions' own count of postings shows that one lost its postings to one that was never recorded."""
    engine, places = books
    ghost = new_id()
    with engine.connect() as conn:
        release = conn.scalar(text(RELEASE), {"i": places["A"]})
    plant(engine, "UPDATE posting SET transaction_id = :t WHERE transaction_id = :r", t=ghost, r=release)
    check(engine)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT rule, subject FROM alert WHERE cleared_at IS NULL AND rule <> 'test_rule' ORDER BY 2")
        ).all()
    assert sorted(found) == sorted([("ledger_unbalanced", str(release)), ("ledger_unbalanced", str(ghost))])


def test_two_schedulers_started_together_run_each_firing_once(books: tuple[Engine, dict[str, UUID]]) -> None:
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
    deadline = time.monotonic() + 90  # a loaded machine starts the schedulers slowly
    while time.monotonic() < deadline and _firings_of_every_job(engine) < 2:
        time.sleep(1)
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


def _error(engine: Engine, run_id: UUID | None) -> str:
    with engine.connect() as conn:
        return str(conn.scalar(text("SELECT error FROM job_run WHERE id = :id"), {"id": run_id}))


def _statements(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text("SELECT institution_id, closing_fen, ledger_closing_fen, family_owed_fen FROM bank_statement")
            )
        ]


def _firings_of_every_job(engine: Engine) -> int:
    """How many slots every job has finished a run for."""
    with engine.connect() as conn:
        return int(
            conn.scalar(
                text(
                    "SELECT count(*) FROM (SELECT slot FROM job_run WHERE slot IS NOT NULL AND finished_at IS NOT NULL"
                    " GROUP BY slot HAVING count(DISTINCT job) = :jobs) full_slots"
                ),
                {"jobs": len(JOBS)},
            )
            or 0
        )
