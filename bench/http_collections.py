"""Collections over HTTP: `escrow serve` loaded from another process on loopback, against a bare
psycopg2 loop doing the same ledger writes on the same PostgreSQL in the same run.

Usage: python bench/http_collections.py [SIZE] [--hot] [--clients N] [--workers W] [--institutions N]
                                        [--py-spy PREFIX]
SIZE is the number of requests in the sustained phase (default 10000). Clients register collections
(Idempotency-Key, bearer token) and, one request in four, class records, across many institutions, or
with --hot all for one institution. Phases: a warm-up; SIZE requests in a closed loop (rps, p50, p99);
SIZE/2 requests paced open-loop at half that rate (p99 measured from when each request was due, so a
stall counts against it); then the baseline: SIZE transfers at the same concurrency, each one
transaction that moves two balances and inserts a journal transaction and its two postings into plain
tables (bench_account, bench_txn, bench_posting: no triggers, no foreign keys). --hot puts the baseline
on one account pair. Between the two, for scale, the same load against bench/_minimal_app.py: FastAPI
doing only that transfer with SQLAlchemy Core, as many uvicorn workers (minimal_fastapi_* figures).
With --py-spy, each service worker is sampled through the sustained phase into PREFIX-<pid>.txt
(collapsed stacks). Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg2  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import (
    Connection,
    HttpError,
    School,
    Server,
    Service,
    cpu_seconds,
    free_port,
    percentile,
    postgres,
    seed_schools,
)

DATABASE = "escrow_bench_http"
CLASS_EVERY = 4  # one request in four records a class; the others register collections
AMOUNT_FEN = 100


@dataclass(frozen=True, slots=True)
class Load:
    port: int
    schools: tuple[School, ...]
    hot: bool
    clients: int
    warmup: int
    size: int
    seed: int = 1
    minimal: bool = False  # load bench/_minimal_app.py instead: transfers on the baseline's pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size", nargs="?", type=int, default=10_000, help="requests in the sustained phase")
    parser.add_argument("--hot", action="store_true", help="every request for one institution")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (and baseline threads)")
    # measured on 2 cores: 3 workers serve the most spread-out load, 2 the hot institution
    parser.add_argument("--workers", type=int, help="escrow serve worker processes (default 3, or 2 with --hot)")
    parser.add_argument("--institutions", type=int, default=100, help="institutions the load spreads over")
    parser.add_argument("--py-spy", metavar="PREFIX", help="sample each worker with py-spy (collapsed stacks)")
    args = parser.parse_args()
    institutions = 1 if args.hot else args.institutions
    args.workers = args.workers or (2 if args.hot else 3)
    warmup = max(200, min(1000, args.size // 10))
    # every contract takes 60 one-hour classes; leave twice what the classes of all phases need
    classes = (warmup + args.size + args.size // 2) // CLASS_EVERY + 1
    contracts = max(4, -(-2 * classes // (60 * institutions)))
    with postgres() as server, tempfile.TemporaryDirectory(prefix="escrow-bench-") as folder:
        url = server.database(DATABASE)
        started = time.monotonic()
        schools = seed_schools(url, institutions=institutions, contracts=contracts)
        seeded_s = time.monotonic() - started
        service = Service(url, workers=args.workers, port=free_port(), log=Path(folder) / "serve.log")
        service.start()
        try:
            load = Load(service.port, tuple(schools), args.hot, args.clients, warmup, args.size)
            http = run_load(load, service, server, args.py_spy)
        finally:
            service.stop()
        make_baseline_tables(url, pairs=institutions)
        minimal = run_minimal_app(
            url, replace(load, minimal=True), server, workers=args.workers, log=Path(folder) / "minimal.log"
        )
        make_baseline_tables(url, pairs=institutions)
        base = baseline(url, clients=args.clients, transactions=args.size, pairs=institutions)
        server.drop(DATABASE)
    sustained, paced = http["sustained"], http["paced"]
    result = {
        "bench": "hot_institution" if args.hot else "http_collections",
        "requests": sustained["requests"],
        "rps": round(sustained["rps"], 1),
        "p50_ms": round(sustained["p50_ms"], 2),
        "p99_ms": round(sustained["p99_ms"], 2),
        "baseline_tps": round(base["tps"], 1),
        "ratio": round(sustained["rps"] / base["tps"], 3),
        "p99_ms_at_half_rate": round(paced["p99_ms"], 2),
        "half_rate_rps": round(paced["rps"], 1),
        "p50_ms_at_half_rate": round(paced["p50_ms"], 2),
        "baseline_p50_ms": round(base["p50_ms"], 2),
        "baseline_p99_ms": round(base["p99_ms"], 2),
        "minimal_fastapi_rps": round(minimal["sustained"]["rps"], 1),
        "minimal_fastapi_ratio": round(minimal["sustained"]["rps"] / base["tps"], 3),
        "minimal_fastapi_p99_ms": round(minimal["sustained"]["p99_ms"], 2),
        "errors": minimal["sustained"]["errors"] + sustained["errors"] + paced["errors"],
        "cpu_ms_per_request": {
            name: round(1000 * seconds / (sustained["requests"] + paced["requests"]), 2)
            for name, seconds in http["cpu_s"].items()
            if seconds > 0
        },
        "statuses": dict(sustained["statuses"]),
        "clients": args.clients,
        "workers": args.workers,
        "institutions": institutions,
        "contracts": institutions * contracts,
        "seeded_s": round(seeded_s, 1),
    }
    print(json.dumps(result))
    if result["errors"]:
        raise SystemExit(f"{result['errors']} requests failed")


def run_load(load: Load, service: Service, server: Server, py_spy: str | None) -> dict[str, Any]:
    """Drive the service from a process of its own; sample its workers through the sustained phase."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=drive, args=(load, ready, go, results))
    proc.start()
    try:
        while not ready.wait(1):  # the warm-up; then the sustained phase starts on `go`
            if not proc.is_alive():
                raise SystemExit("the load process died during the warm-up")
        samplers = []
        if py_spy:
            for pid in service.pids()[1:] or service.pids():
                command = [
                    shutil.which("py-spy", path=Path(sys.executable).parent) or "py-spy",
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                ]
                command += ["--gil", "--nonblocking", "--output", f"{py_spy}-{pid}.txt"]
                samplers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1)
        watched = {"service": service.pids(), "load": [proc.pid] if proc.pid else [], "postgres": server.pids()}
        cpu = {name: cpu_seconds(pids) for name, pids in watched.items()}
        go.set()
        while True:
            try:
                result: dict[str, Any] = results.get(timeout=1)
                break
            except queue.Empty:
                if not proc.is_alive():
                    raise SystemExit("the load process died") from None
        # the CPU each side spent on the sustained and paced phases
        watched["postgres"] = server.pids()  # a backend started meanwhile counts whole
        result["cpu_s"] = {name: cpu_seconds(pids) - cpu[name] for name, pids in watched.items()}
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
            sampler.wait(timeout=60)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    return result


def drive(load: Load, ready: Any, go: Any, results: Any) -> None:
    try:
        import uvloop

        results.put(uvloop.run(_drive(load, ready, go)))
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        results.put(asyncio.run(_drive(load, ready, go)))


async def _drive(load: Load, ready: Any, go: Any) -> dict[str, Any]:
    requests = Requests(load)
    connections = [Connection("127.0.0.1", load.port) for _ in range(load.clients)]
    await closed_loop(connections, requests, load.warmup)
    ready.set()
    while not go.is_set():
        await asyncio.sleep(0.01)
    sustained = await closed_loop(connections, requests, load.size)
    if load.minimal:
        paced = sustained
    else:
        paced = await open_loop(connections, requests, load.size // 2, rate=sustained["rps"] / 2)
    for c in connections:
        await c.close()
    return {"sustained": sustained, "paced": paced}


class Requests:
    """The i-th request of the run: a collection, or every CLASS_EVERY-th a class record, for a school
    drawn at random (the one school when hot). Classes go round the school's contracts."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.rng = random.Random(load.seed)
        self.next = itertools.count()
        self.classes: Counter[str] = Counter()

    def build(self) -> tuple[str, dict[str, str], bytes]:
        i = next(self.next)
        if self.load.minimal:  # the same body and headers; a pair of the baseline's accounts
            pair = 0 if self.load.hot else self.rng.randrange(len(self.load.schools))
            headers = {"Authorization": "Bearer -", "Content-Type": "application/json", "Idempotency-Key": f"m-{i}"}
            body = json.dumps({"amount_fen": AMOUNT_FEN, "bank_reference": f"BENCH-{i}"}).encode()
            return f"/pairs/{pair}/transfers", headers, body
        school = self.load.schools[0] if self.load.hot else self.rng.choice(self.load.schools)
        headers = {"Authorization": f"Bearer {school.token}", "Content-Type": "application/json"}
        if i % CLASS_EVERY == CLASS_EVERY - 1:
            k = self.classes[school.id]
            self.classes[school.id] += 1
            contract = school.contracts[k % len(school.contracts)]
            headers["Idempotency-Key"] = f"bench-class-{i}"  # recording a class is idempotent too
            return f"/institutions/{school.id}/contracts/{contract}/classes", headers, b'{"hours":1}'
        contract = self.rng.choice(school.contracts)
        headers["Idempotency-Key"] = f"bench-{i}"
        body = json.dumps({"amount_fen": AMOUNT_FEN, "bank_reference": f"BENCH-{i}"}).encode()
        return f"/institutions/{school.id}/contracts/{contract}/collections", headers, body


async def closed_loop(connections: list[Connection], requests: Requests, n: int) -> dict[str, Any]:
    """Each client sends its next request as soon as its last one is answered."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    left = iter(range(n))

    async def client(conn: Connection) -> None:
        for _ in left:
            path, headers, body = requests.build()
            t0 = time.perf_counter()
            statuses[await _send(conn, path, headers, body)] += 1
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    return _summary(latencies, statuses, time.perf_counter() - started)


async def open_loop(connections: list[Connection], requests: Requests, n: int, *, rate: float) -> dict[str, Any]:
    """Request k is due at start + k/rate, whether or not earlier ones were answered; its latency runs
    from when it was due, so a request held up behind a slow one counts its wait (no coordinated omission)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    due = iter(range(n))
    start = time.perf_counter() + 0.05

    async def client(conn: Connection) -> None:
        for k in due:
            at = start + k / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            path, headers, body = requests.build()
            statuses[await _send(conn, path, headers, body)] += 1
            latencies.append(time.perf_counter() - at)

    await asyncio.gather(*(client(c) for c in connections))
    return _summary(latencies, statuses, time.perf_counter() - start)


async def _send(conn: Connection, path: str, headers: dict[str, str], body: bytes) -> int:
    try:
        status, _, _ = await conn.request("POST", path, headers, body)
        return status
    except HttpError:
        return 0


def _summary(latencies: list[float], statuses: Counter[int], elapsed: float) -> dict[str, Any]:
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": sum(n for status, n in statuses.items() if status != 201),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


BASELINE_TABLES = """
DROP TABLE IF EXISTS bench_posting, bench_txn, bench_account;
CREATE TABLE bench_account (id bigint PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);
CREATE TABLE bench_txn (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text NOT NULL,
                        created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bench_posting (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, txn_id bigint NOT NULL,
                            account_id bigint NOT NULL, amount bigint NOT NULL);
"""


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def make_baseline_tables(url: str, *, pairs: int) -> None:
    """Fresh bench_account (a cash and a prepaid account per pair), bench_txn and bench_posting."""
    with psycopg2.connect(_dsn(url)) as conn, conn.cursor() as cur:
        cur.execute(BASELINE_TABLES)
        cur.execute("INSERT INTO bench_account (id) SELECT generate_series(1, %s)", (2 * pairs,))
    conn.close()


def run_minimal_app(url: str, load: Load, server: Server, *, workers: int, log: Path) -> dict[str, Any]:
    """Serve bench/_minimal_app.py with uvicorn (as many workers, no access log) and load it the same way."""
    serve = [sys.executable, "-m", "uvicorn", "_minimal_app:app", "--app-dir", str(Path(__file__).parent)]
    app = Service(
        url,
        workers=workers,
        port=free_port(),
        log=log,
        command=[*serve, "--no-access-log"],
        ready_path="/openapi.json",
        env={"BENCH_MINIMAL_URL": url},
    )
    app.start()
    try:
        return run_load(replace(load, port=app.port), app, server, None)
    finally:
        app.stop()


def baseline(url: str, *, clients: int, transactions: int, pairs: int) -> dict[str, float]:
    """Raw PostgreSQL: `clients` threads, each on its own connection, one transfer per transaction
    (debit a cash account, credit a prepaid one, in id order; a journal row and its two postings)."""
    dsn = _dsn(url)
    latencies: list[float] = []
    left = iter(range(transactions))
    failures: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[float] = []
        conn = psycopg2.connect(dsn)
        try:
            cur = conn.cursor()
            for _ in left:
                pair = rng.randrange(pairs)
                cash, prepaid = 2 * pair + 1, 2 * pair + 2
                t0 = time.perf_counter()
                cur.execute("UPDATE bench_account SET balance = balance + %s WHERE id = %s", (AMOUNT_FEN, cash))
                cur.execute("UPDATE bench_account SET balance = balance - %s WHERE id = %s", (AMOUNT_FEN, prepaid))
                cur.execute("INSERT INTO bench_txn (kind) VALUES ('collection') RETURNING id")
                (txn,) = cur.fetchone()
                cur.execute(
                    "INSERT INTO bench_posting (txn_id, account_id, amount) VALUES (%s, %s, %s), (%s, %s, %s)",
                    (txn, cash, AMOUNT_FEN, txn, prepaid, -AMOUNT_FEN),
                )
                conn.commit()
                mine.append(time.perf_counter() - t0)
        except BaseException as exc:  # reported below: a failed baseline is no baseline
            failures.append(exc)
        finally:
            conn.close()
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return {
        "tps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


if __name__ == "__main__":
    main()
