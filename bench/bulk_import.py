"""Collections imported in bulk: `import_collections` in batches, in process and over HTTP, against
batched raw SQL inserts of the same rows into bare tables on the same PostgreSQL in the same run.

Usage: python bench/bulk_import.py [ITEMS] [--batch B] [--institutions N] [--no-http]
ITEMS collections (default 20000) go in batches of B (default 100), each batch for one institution, the
institutions taken in turn, one batch after another. In process: each batch is one transaction through
the core (idempotency claims, checks, journal transactions, postings, collections, audit notes, with every
trigger on). Over HTTP: the same number of new items posted to /collection-batches of `escrow serve` by
one client. Baseline: the same number of transfers, one transaction per batch of B, each a multi-row
insert of the journal rows and of their postings into plain tables (bench_txn, bench_posting: no
triggers, no foreign keys) and one update of the balances they move. The books are checked at the end.
Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg2  # type: ignore[import-untyped]
from psycopg2.extras import execute_values  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import Connection, School, Service, free_port, postgres, seed_schools
from http_collections import BASELINE_TABLES

from escrow.access.callers import Caller, Role
from escrow.db.database import make_engine, make_sessionmaker
from escrow.flows.batches import BatchItem, import_collections
from escrow.ids import new_id

DATABASE = "escrow_bench_bulk"
AMOUNT_FEN = 100
CONTRACTS = 10  # per institution; each takes 60 hours at 150 yuan, far more than the run collects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("items", nargs="?", type=int, default=20_000, help="collections to import")
    parser.add_argument("--batch", type=int, default=100, help="items per batch (at most 1000)")
    parser.add_argument("--institutions", type=int, default=10, help="institutions the batches go round")
    parser.add_argument("--no-http", action="store_true", help="skip the run over HTTP")
    args = parser.parse_args()
    with postgres() as server, tempfile.TemporaryDirectory(prefix="escrow-bench-") as folder:
        url = server.database(DATABASE)
        schools = seed_schools(url, institutions=args.institutions, contracts=CONTRACTS)
        in_process(url, schools, "warm", max(args.batch, args.items // 20), args.batch)
        core = in_process(url, schools, "core", args.items, args.batch)
        http = None
        if not args.no_http:
            service = Service(url, workers=2, port=free_port(), log=Path(folder) / "serve.log")
            service.start()
            try:
                over_http(service.port, schools, "hwarm", max(args.batch, args.items // 20), args.batch)
                http = over_http(service.port, schools, "http", args.items, args.batch)
            finally:
                service.stop()
        books = check_books(url)
        base = baseline(url, transactions=args.items, batch=args.batch, pairs=args.institutions * CONTRACTS)
        server.drop(DATABASE)
    result: dict[str, Any] = {
        "bench": "bulk_import",
        "items": args.items,
        "batch": args.batch,
        "items_per_s": round(core, 1),
        "baseline_per_s": round(base, 1),
        "ratio": round(core / base, 3),
    }
    if http is not None:
        result |= {"http_items_per_s": round(http, 1), "http_ratio": round(http / base, 3)}
    result |= {"institutions": args.institutions, "books_problems": books}
    print(json.dumps(result))
    if books:
        raise SystemExit(f"the books are wrong: {books}")


def batches_of(schools: list[School], tag: str, items: int, batch: int) -> list[tuple[School, list[BatchItem]]]:
    """`items` new collections in batches, each for one institution in turn, round its contracts."""
    plan = []
    rounds = itertools.cycle(schools)
    for start in range(0, items, batch):
        school = next(rounds)
        rows = [
            BatchItem(UUID(school.contracts[n % len(school.contracts)]), AMOUNT_FEN, f"{tag}-{n}", None, f"{tag}-{n}")
            for n in range(start, min(items, start + batch))
        ]
        plan.append((school, rows))
    return plan


def in_process(url: str, schools: list[School], tag: str, items: int, batch: int) -> float:
    """Items per second through the core, one batch per transaction, one after another."""
    engine = make_engine(url, pool_size=1)
    db = make_sessionmaker(engine)
    plan = batches_of(schools, tag, items, batch)
    try:
        started = time.perf_counter()
        for school, rows in plan:
            institution_id = UUID(school.id)
            caller = Caller(token_id=new_id(), role=Role.INSTITUTION, institution_id=institution_id)
            with db.begin() as session:
                done = import_collections(
                    session, caller=caller, institution_id=institution_id, items=rows, now=datetime.now(UTC)
                )
            assert not any(d.replayed for d in done)
        return items / (time.perf_counter() - started)
    finally:
        engine.dispose()


def over_http(port: int, schools: list[School], tag: str, items: int, batch: int) -> float:
    """Items per second posted to /collection-batches by one client, one batch after another."""
    plan = [
        (
            f"/institutions/{school.id}/collection-batches",
            {"Authorization": f"Bearer {school.token}", "Content-Type": "application/json"},
            json.dumps(
                {
                    "items": [
                        {
                            "contract_id": str(i.contract_id),
                            "amount_fen": i.amount_fen,
                            "bank_reference": i.bank_reference,
                            "idempotency_key": i.idempotency_key,
                        }
                        for i in rows
                    ]
                }
            ).encode(),
        )
        for school, rows in batches_of(schools, tag, items, batch)
    ]

    async def send() -> float:
        conn = Connection("127.0.0.1", port)
        statuses: Counter[int] = Counter()
        started = time.perf_counter()
        for path, headers, body in plan:
            status, _, payload = await conn.request("POST", path, headers, body)
            statuses[status] += 1
            if status != 201:
                raise SystemExit(f"POST {path}: {status} {payload[:300]!r}")
        elapsed = time.perf_counter() - started
        await conn.close()
        return items / elapsed

    return asyncio.run(send())


def check_books(url: str) -> list[str]:
    """Every way the books are wrong: unbalanced transactions, drifted caches, custody short of what is owed."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            unbalanced = conn.scalar(
                text("SELECT count(*) FROM (SELECT 1 FROM posting GROUP BY institution_id, transaction_id"
                     " HAVING sum(amount) <> 0) AS u")
            )  # fmt: skip
            drifted = conn.scalar(
                text(
                    "SELECT count(*) FROM account a WHERE a.balance <> coalesce((SELECT sum(p.amount) FROM posting p"
                    " WHERE p.institution_id = a.institution_id AND p.account_id = a.id), 0)"
                    " * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END"
                )
            )
            short = conn.scalar(
                text(
                    "SELECT count(*) FROM (SELECT institution_id FROM account GROUP BY institution_id HAVING"
                    " sum(balance) FILTER (WHERE code = 'custody_cash') <>"
                    " coalesce(sum(balance) FILTER (WHERE code <> 'custody_cash'), 0)) AS s"
                )
            )
    finally:
        engine.dispose()
    return [
        f"{n} {what}"
        for n, what in ((unbalanced, "unbalanced transactions"), (drifted, "drifted balances"), (short, "custody gaps"))
        if n
    ]


def baseline(url: str, *, transactions: int, batch: int, pairs: int) -> float:
    """Raw PostgreSQL: one connection, one transaction per batch of transfers (debit a cash account, credit a
    prepaid one): a multi-row insert of the journal rows, one of their postings, one update of the balances."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(BASELINE_TABLES)
            cur.execute("INSERT INTO bench_account (id) SELECT generate_series(1, %s)", (2 * pairs,))
        conn.commit()
        cur = conn.cursor()
        started = time.perf_counter()
        for start in range(0, transactions, batch):
            count = min(batch, transactions - start)
            pair = (start // batch) % pairs
            cash, prepaid = 2 * pair + 1, 2 * pair + 2
            ids = execute_values(
                cur,
                "INSERT INTO bench_txn (kind) VALUES %s RETURNING id",
                [("collection",)] * count,
                fetch=True,
                page_size=count,
            )
            legs = [(txn, cash, AMOUNT_FEN) for (txn,) in ids] + [(txn, prepaid, -AMOUNT_FEN) for (txn,) in ids]
            execute_values(
                cur, "INSERT INTO bench_posting (txn_id, account_id, amount) VALUES %s", legs, page_size=2 * count
            )
            cur.execute(
                "UPDATE bench_account AS a SET balance = a.balance + d.delta FROM (VALUES (%s, %s), (%s, %s))"
                " AS d(id, delta) WHERE a.id = d.id",
                (cash, count * AMOUNT_FEN, prepaid, -count * AMOUNT_FEN),
            )
            conn.commit()
        return transactions / (time.perf_counter() - started)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
