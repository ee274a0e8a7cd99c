"""The regulator's day on province-sized books: reconciliation, the invariant checks and the risk rules
over ~10 million postings of a few thousand institutions, against one bare aggregate of the same postings.

Usage: python bench/regulator_day.py [POSTINGS=10_000_000] [--institutions 3000] [--repeat 3] [--keep] [--reuse]
       [--checked]

A fresh database `escrow_bench_province` on ESCROW_DATABASE_URL's server, or (unset) on an embedded
server in .bench/province, migrated to head; the books generated set-based (bench/_province.py, progress
on stderr), then VACUUM (ANALYZE) as autovacuum would do; the custody bank's statements of the statement
day imported through the core, with planted faults: three bank lines the ledger does not know (one
above any collection's cap) and one executed payout the bank does not show, and one institution with no
class for 35 days. Then, each timed on its own in the same run: the bare `SELECT institution_id,
sum(amount) FROM posting GROUP BY institution_id` and the recorded jobs reconcile, check_invariants,
evaluate_risks (and seal_audit, whose trail holds the registrations and statement imports). Each runs
once cold (the jobs match the statements and raise the alerts), then --repeat times more in rounds
(default 3); a warm figure is the median of those, all reported; the ratio is the warm jobs' total over
the warm baseline (PostgreSQL runs it with parallel workers; the same aggregate without them is reported
too, as baseline_serial_s). The jobs run with JIT off (jobs.run_recorded), and so does the baseline.
Then the regulator's console on those books: the record_daily_figures job (timed as the others, not part
of the day's ratio) keeps the dashboard's figures, `escrow serve` starts, a regulator of the province signs
in through the form, and the dashboard's and the reports page's time to first byte are taken once cold and
--repeat times more (bench/_console.py). The
open alerts must be exactly the planted faults. --keep leaves the database (and the embedded server's
folder) behind, and --reuse times the day again on it (migrated to head first, kept) without generating;
--checked loads with every trigger and foreign key on, to prove at a small size that the fast load writes
only what they allow. Prints one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _console import console_ttfb
from _province import BANK, IDLE, JURISDICTION, Province, generate, log

from escrow.access.callers import Caller, Role
from escrow.bank.formats import ParsedStatement, StatementLine
from escrow.bank.statements import import_statements
from escrow.db.database import make_engine, make_sessionmaker, normalize_url, upgrade_to_head
from escrow.db.embedded import recreate_database, start_embedded
from escrow.demo.bank_files import ledger_statements, statements_csv
from escrow.ids import new_id
from escrow.settings import Settings
from escrow.supervision.jobs import run_recorded

DATABASE = "escrow_bench_province"
EMBEDDED_DIR = Path(__file__).resolve().parent.parent / ".bench" / "province"
BASELINE = "SELECT institution_id, sum(amount) FROM posting GROUP BY institution_id"
JOBS = ("reconcile", "check_invariants", "evaluate_risks")
UNKNOWN_LINES = {2: 12_345, 4: 67_890, 7: 2_000_000}  # institution number -> fen; the last is above any cap
HIDDEN_PAYOUT = 1  # the bank's statement of this institution leaves out the payout executed that day
EXPECTED = {
    "recon_bank_line_unmatched": len(UNKNOWN_LINES),
    "recon_ledger_unmatched": 1,
    "cap_broken": 1,
    "money_idle_long": 1,
}
T = TypeVar("T")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("postings", nargs="?", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--institutions", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs of each, after the cold one (median)")
    parser.add_argument("--keep", action="store_true", help="leave the database behind")
    parser.add_argument("--reuse", action="store_true", help="time the day on the database a --keep run left")
    parser.add_argument("--database", default=DATABASE, help=f"database name (default {DATABASE})")
    parser.add_argument("--checked", action="store_true", help="load with triggers and foreign keys on (slow)")
    args = parser.parse_args()
    if args.institutions < max(*UNKNOWN_LINES, HIDDEN_PAYOUT, IDLE):
        parser.error(f"the planted faults need at least {max(*UNKNOWN_LINES, HIDDEN_PAYOUT, IDLE)} institutions")
    configured = Settings().database_url
    server = normalize_url(configured) if configured else start_embedded(EMBEDDED_DIR, "postgres")
    if args.reuse:
        url = make_url(server).set(database=args.database).render_as_string(hide_password=False)
    else:
        url = recreate_database(server, args.database)
    engine = make_engine(url, pool_size=2)
    try:
        result = run(engine, args, embedded=not configured)
    finally:
        engine.dispose()
        if not (args.keep or args.reuse):
            drop = create_engine(server, isolation_level="AUTOCOMMIT")
            with drop.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'))
            drop.dispose()
    print(json.dumps(result), flush=True)


def run(engine: Engine, args: argparse.Namespace, *, embedded: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    upgrade_to_head(engine)
    generate_s = statements_s = 0.0
    books: Province | None = None
    if not args.reuse:
        log(f"generating about {args.postings:,} postings over {args.institutions} institutions")
        generate_s, books = _timed(
            lambda: generate(
                engine, postings=args.postings, institutions=args.institutions, now=now, checked=args.checked
            )
        )
    vacuum_s, _ = _timed(lambda: _vacuum(engine))
    log(f"  VACUUM (ANALYZE) {vacuum_s:.0f} s")
    if books is not None:
        statements_s, _ = _timed(lambda: _deliver_statements(engine, books, now))
        log(f"  statements of {books.statement_day} imported ({statements_s:.0f} s)")
    with engine.connect() as conn:
        postings = conn.execute(text("SELECT count(*) FROM posting")).scalar_one()
        version = conn.execute(text("SHOW server_version")).scalar_one()
        transactions = conn.execute(text("SELECT count(*) FROM journal_transaction")).scalar_one()
        contracts = conn.execute(text("SELECT count(*) FROM contract")).scalar_one()
        institutions = conn.execute(text("SELECT count(*) FROM institution")).scalar_one()
    names = ("baseline", "baseline_serial", *JOBS, "seal_audit", "record_daily_figures")
    tasks: dict[str, Callable[[], object]] = {
        "baseline": partial(_baseline, engine, serial=False),
        "baseline_serial": partial(_baseline, engine, serial=True),
        **{n: partial(_job, engine, n, now) for n in (*JOBS, "seal_audit", "record_daily_figures")},
    }
    cold: dict[str, float] = {}
    samples: dict[str, list[float]] = {n: [] for n in names}
    found: dict[str, dict[str, Any]] = {"cold": {}, "warm": {}}
    for name in names:
        seconds, found["cold"][name] = _timed(tasks[name])
        cold[name] = round(seconds, 3)
        log(f"  {name}: cold {seconds:.2f} s")
    for round_ in range(args.repeat):  # in rounds, so that a burst of load elsewhere hits one sample of each
        for name in names:
            seconds, found["warm"][name] = _timed(tasks[name])
            samples[name].append(round(seconds, 3))
        log(f"  warm round {round_ + 1}: " + ", ".join(f"{n} {samples[n][-1]:.2f} s" for n in names))
    warm = {n: round(statistics.median(samples[n]), 3) for n in names}
    findings = _open_alerts(engine)
    url = engine.url.render_as_string(hide_password=False)
    console = console_ttfb(engine, url, jurisdiction=JURISDICTION, now=now, repeat=args.repeat)
    log("  console: " + ", ".join(f"{p} {c['cold_s']:.2f} s cold, {c['warm_s']} s warm" for p, c in console.items()))
    day_s = sum(warm[j] for j in JOBS)
    return {
        "bench": "regulator_day",
        "postings": postings,
        "institutions": institutions,
        "transactions": transactions,
        "contracts": contracts,
        "reused": args.reuse,
        "server": f"PostgreSQL {version}" + (" (embedded)" if embedded else ""),
        "checked_load": args.checked,
        "generate_s": round(generate_s, 1),
        "vacuum_s": round(vacuum_s, 1),
        "statements_s": round(statements_s, 1),
        "baseline_s": warm["baseline"],
        **{f"{j}_s": warm[j] for j in JOBS},
        "day_s": round(day_s, 3),
        "ratio": round(day_s / warm["baseline"], 2),
        "baseline_serial_s": warm["baseline_serial"],
        "ratio_to_serial_baseline": round(day_s / warm["baseline_serial"], 2),
        "seal_audit_s": warm["seal_audit"],
        "record_daily_figures_s": warm["record_daily_figures"],
        "dashboard_ttfb_s": console["/console/dashboard"]["warm_s"],
        "dashboard_ttfb_cold_s": console["/console/dashboard"]["cold_s"],
        "console_ttfb": console,
        "cold_s": cold,
        "warm_samples_s": samples,
        "findings": findings,
        "as_planted": findings == EXPECTED,
        "jobs_found": {run_: {j: found[run_][j] for j in (*JOBS, "seal_audit")} for run_ in ("cold", "warm")},
    }


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _vacuum(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")


def _baseline(engine: Engine, *, serial: bool) -> int:
    """The bare aggregate; serial: without parallel workers, as the jobs' index-order plans run."""
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL jit = off"))  # as the jobs run
        if serial:
            conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        return len(conn.execute(text(BASELINE)).all())


def _job(engine: Engine, name: str, now: datetime) -> dict[str, Any]:
    done = run_recorded(engine, name=name, now=now)
    if done.outcome != "ok":
        with engine.connect() as conn:
            error = conn.execute(text("SELECT error FROM job_run WHERE id = :id"), {"id": done.id}).scalar()
        raise RuntimeError(f"job {name} {done.outcome}: {error or done.found}")
    return done.found


def _deliver_statements(engine: Engine, books: Province, now: datetime) -> None:
    """The bank's statements of the statement day, as the ledger has them but for the planted faults."""
    day = books.statement_day
    bank = Caller(token_id=new_id(), role=Role.BANK, bank_code=BANK)
    with make_sessionmaker(engine).begin() as s:
        accounts = {i: a for i, a in s.execute(text("SELECT id, custody_account FROM institution"))}
        unknown = {accounts[books.institutions[n]]: fen for n, fen in UNKNOWN_LINES.items()}
        hidden = accounts[books.institutions[HIDDEN_PAYOUT]]
        statements: list[ParsedStatement] = []
        for st in ledger_statements(s, day=day):
            if st.account in unknown:
                fen = unknown[st.account]
                line = StatementLine(day, fen, f"UNK{day:%Y%m%d}{len(statements):05d}", "Unknown payer", "tuition")
                st = replace(st, closing_fen=st.closing_fen + fen, lines=(*st.lines, line))
            elif st.account == hidden:
                payouts = [x for x in st.lines if x.reference.startswith("EX")]
                assert len(payouts) == 1, f"expected one payout executed on {day}, found {len(payouts)}"
                kept = tuple(x for x in st.lines if x is not payouts[0])
                st = replace(st, closing_fen=st.closing_fen - payouts[0].amount_fen, lines=kept)
            statements.append(st)
        import_statements(s, caller=bank, data=statements_csv(statements), fmt="csv", now=now)


def _open_alerts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT rule, count(*) FROM alert WHERE cleared_at IS NULL GROUP BY rule"))
        return {rule: int(n) for rule, n in rows}


if __name__ == "__main__":
    main()
