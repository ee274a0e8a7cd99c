"""Fault tolerance, measured: clients register collections with idempotency keys and retry whatever was
not acknowledged, with the same key, while each round kills something.

Usage: python bench/faults.py [ROUNDS] [--clients N] [--workers W] [--seed S]   (default 15 rounds)

Kills rotate: SIGKILL of `escrow serve` and all its workers (then it is started again); pg_terminate_backend
of every backend of the service's database (three times, 0.15 s apart, to catch transactions in flight);
`pg_ctl stop -m immediate` of PostgreSQL (no checkpoint: crash recovery on start), then start it again
(the service is given 15 s to reconnect on its own and is restarted if it has not). The script runs its
own embedded PostgreSQL in a temporary folder, whatever ESCROW_DATABASE_URL says, because it stops it.

After every round: every acknowledged collection is in the books with its amount and bank reference; there
are exactly as many collections, collection transactions, idempotency records and audit records of them
as distinct keys acknowledged; every journal transaction balances and every cached balance equals its
postings (escrow.supervision.checks.ledger_findings); each institution's custody cash equals what it owes and what it
collected; the audit chains are intact. Prints a line per round and one JSON line last; exits 1 on any
violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import Connection, HttpError, School, Server, Service, free_port, postgres, seed_schools

from escrow.db.database import make_engine, make_sessionmaker
from escrow.supervision.checks import audit_findings, ledger_findings

DATABASE = "escrow_faults"
KILLS = ("service", "backends", "postgres")
LOAD_S = 2.0  # new keys are issued for this long each round; then only retries until all are acknowledged
ACK_DEADLINE_S = 90.0  # a key not acknowledged this long after the load stops is a violation
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Ack:
    institution_id: str
    collection_id: str
    bank_reference: str
    amount_fen: int


@dataclass
class Round:
    acked: dict[str, Ack] = field(default_factory=dict)
    issued: int = 0
    attempts: int = 0
    retried: int = 0  # keys that needed more than one attempt
    replayed: int = 0  # acknowledgements that were replays of an earlier commit
    failures: Counter[str] = field(default_factory=Counter)  # why attempts were not acknowledged
    violations: list[str] = field(default_factory=list)
    killed: str = ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rounds", nargs="?", type=int, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    rng = random.Random(args.seed)
    acked: dict[str, Ack] = {}
    totals: Counter[str] = Counter()
    passed, violations = 0, []
    with postgres(embedded=True) as server, tempfile.TemporaryDirectory(prefix="escrow-faults-") as folder:
        url = server.database(DATABASE)
        schools = seed_schools(url, institutions=4, contracts=8, tag="faults")
        service = Service(url, workers=args.workers, port=free_port(), log=Path(folder) / "serve.log")
        service.start()
        try:
            for n in range(1, args.rounds + 1):
                mode = KILLS[(n - 1) % len(KILLS)]
                t0 = time.monotonic()
                result = asyncio.run(run_round(n, mode, service, server, schools, args.clients, rng))
                acked.update(result.acked)
                problems = result.violations + check_books(url, acked)
                totals.update(
                    issued=result.issued, attempts=result.attempts, retried=result.retried, replayed=result.replayed
                )
                totals.update({f"kill_{mode}": 1})
                failures = ", ".join(f"{k} {v}" for k, v in result.failures.most_common()) or "none"
                print(
                    f"round {n}/{args.rounds} kill {mode} ({result.killed}): {len(result.acked)} keys acknowledged,"
                    f" {result.retried} retried, {result.replayed} replayed; failed attempts: {failures};"
                    f" {len(acked)} keys in all; {time.monotonic() - t0:.1f} s: "
                    + ("ok" if not problems else "VIOLATED: " + "; ".join(problems[:5])),
                    flush=True,
                )
                if problems:
                    violations += [f"round {n}: {p}" for p in problems]
                else:
                    passed += 1
        finally:
            service.stop()
        effects = _count(url, "SELECT count(*) FROM collection")
    print(
        json.dumps(
            {
                "bench": "faults",
                "rounds": args.rounds,
                "passed": passed,
                "acknowledged": len(acked),
                "effects": effects,
                "issued": totals["issued"],
                "attempts": totals["attempts"],
                "retried": totals["retried"],
                "replayed": totals["replayed"],
                "kills": {k: totals[f"kill_{k}"] for k in KILLS},
                "violations": violations[:20],
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    if violations:
        raise SystemExit(1)


async def run_round(
    n: int, mode: str, service: Service, server: Server, schools: list[School], clients: int, rng: random.Random
) -> Round:
    """Clients issue new keys for LOAD_S seconds and retry each until acknowledged; a kill lands meanwhile."""
    result = Round()
    stop = asyncio.Event()

    async def client(c: int) -> None:
        conn = Connection("127.0.0.1", service.port)
        k = 0
        while not stop.is_set():
            k += 1
            school = rng.choice(schools)
            key = f"r{n}-c{c}-k{k}"
            body = {"amount_fen": rng.randint(1, 500), "bank_reference": f"F{n}-{c}-{k}"}
            result.issued += 1
            await until_acknowledged(conn, school, rng.choice(school.contracts), key, body, result)
        await conn.close()

    async def load() -> None:
        await asyncio.sleep(LOAD_S)
        stop.set()

    async def kill() -> None:
        await asyncio.sleep(rng.uniform(0.3, 1.2))
        result.killed = await asyncio.to_thread(KILL[mode], service, server)

    await asyncio.gather(load(), kill(), *(client(c) for c in range(clients)))
    return result


async def until_acknowledged(
    conn: Connection, school: School, contract: str, key: str, body: dict[str, object], result: Round
) -> None:
    """Send until the service acknowledges (201, or a replay of the first result); same key, same body."""
    path = f"/institutions/{school.id}/contracts/{contract}/collections"
    headers = {"Authorization": f"Bearer {school.token}", "Content-Type": "application/json", "Idempotency-Key": key}
    payload = json.dumps(body).encode()
    deadline = time.monotonic() + LOAD_S + ACK_DEADLINE_S
    pause = 0.05
    for attempt in range(1, 10_000):
        result.attempts += 1
        try:
            status, got, answer = await asyncio.wait_for(
                conn.request("POST", path, headers, payload), REQUEST_TIMEOUT_S
            )
        except (HttpError, TimeoutError) as exc:
            await conn.close()
            result.failures["no answer" if isinstance(exc, TimeoutError) else "connection"] += 1
        else:
            if status in (200, 201):
                row = json.loads(answer)
                result.acked[key] = Ack(school.id, row["id"], row["bank_reference"], row["amount_fen"])
                if (row["bank_reference"], row["amount_fen"]) != (body["bank_reference"], body["amount_fen"]):
                    result.violations.append(f"key {key} was acknowledged with another collection: {row}")
                result.replayed += got.get("idempotent-replayed") == "true"
                result.retried += attempt > 1
                return
            if status < 500:  # a refusal of a request that is valid and was never answered otherwise
                result.violations.append(f"key {key} refused with {status}: {answer[:300]!r}")
                return
            if status == 500:  # a lost database is an expected failure: 503 with Retry-After, never a 500
                result.violations.append(f"key {key} answered 500: {answer[:300]!r}")
            result.failures[str(status)] += 1
        if time.monotonic() > deadline:
            result.violations.append(f"key {key} not acknowledged after {attempt} attempts")
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


def kill_service(service: Service, server: Server) -> str:
    service.kill()
    started = time.monotonic()
    service.start()
    return f"SIGKILL, serving again in {time.monotonic() - started:.1f} s"


def kill_backends(service: Service, server: Server) -> str:
    engine = make_engine(server.url, pool_size=1)  # the superuser, on the `postgres` database
    killed = 0
    try:
        for _ in range(3):
            with engine.connect() as conn:
                killed += int(
                    conn.scalar(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = :d AND pid <> pg_backend_pid()"
                        ),
                        {"d": DATABASE},
                    )
                    or 0
                )
            time.sleep(0.15)
    finally:
        engine.dispose()
    return f"{killed} backends terminated"


def stop_postgres(service: Service, server: Server) -> str:
    server.stop_immediately()
    time.sleep(0.2)
    started = time.monotonic()
    server.start()
    up = time.monotonic() - started
    try:
        service.wait_ready(timeout=15)
        return f"stopped immediately, up again in {up:.1f} s; the service reconnected by itself"
    except RuntimeError:
        service.kill()
        service.start()
        return f"stopped immediately, up again in {up:.1f} s; the service had to be restarted"


KILL = {"service": kill_service, "backends": kill_backends, "postgres": stop_postgres}


def check_books(url: str, acked: dict[str, Ack]) -> list[str]:
    """Every violation of the round's promises, as sentences (none: the books are whole)."""
    engine = make_engine(url, pool_size=1)
    problems: list[str] = []
    try:
        with make_sessionmaker(engine).begin() as s:
            rows = {
                str(id_): (str(inst), ref, amount)
                for inst, id_, ref, amount in s.execute(
                    text("SELECT institution_id, id, bank_reference, amount_fen FROM collection")
                )
            }
            lost = [
                k
                for k, a in acked.items()
                if rows.get(a.collection_id) != (a.institution_id, a.bank_reference, a.amount_fen)
            ]
            if lost:
                problems.append(f"{len(lost)} acknowledged collections lost or altered, e.g. key {lost[0]}")
            counts = {
                "collections": len(rows),
                "collection transactions": _scalar(
                    s, "SELECT count(*) FROM journal_transaction WHERE kind = 'collection'"
                ),
                "idempotency records": _scalar(s, "SELECT count(*) FROM idempotency_record"),
                "audit records of collections": _scalar(
                    s, "SELECT count(*) FROM audit_record WHERE action = 'collection.registered'"
                ),
            }
            for what, count in counts.items():
                if count != len(acked):
                    problems.append(f"{count} {what} for {len(acked)} distinct keys acknowledged")
            unrecorded = _scalar(s, "SELECT count(*) FROM idempotency_record WHERE result IS NULL")
            if unrecorded:
                problems.append(f"{unrecorded} idempotency keys claimed without a recorded result")
            now = datetime.now(UTC)
            problems += [f"{f.rule}: {f.detail}" for f in ledger_findings(s, now=now)]
            problems += [f"{f.rule}: {f.detail}" for f in audit_findings(s, now=now)]
            for inst, cash, owed, collected in s.execute(
                text(
                    "SELECT a.institution_id, sum(a.balance) FILTER (WHERE a.code = 'custody_cash'),"
                    " sum(a.balance) FILTER (WHERE split_part(a.code, ':', 1) IN"
                    "  ('prepaid', 'releasable', 'payout_pending', 'refund_payable')),"
                    " (SELECT coalesce(sum(c.amount_fen), 0) FROM collection c"
                    "  WHERE c.institution_id = a.institution_id)"
                    " FROM account a GROUP BY a.institution_id"
                )
            ):
                if not cash == owed == collected:
                    problems.append(f"institution {inst}: custody cash {cash}, owed {owed}, collected {collected} fen")
    finally:
        engine.dispose()
    return problems


def _scalar(s: Session, sql: str) -> int:
    return int(s.scalar(text(sql)) or 0)


def _count(url: str, sql: str) -> int:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(text(sql)) or 0)
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
