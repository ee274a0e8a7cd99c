"""The `escrow` command line."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from escrow.access.callers import Role
from escrow.db.database import make_engine, make_sessionmaker, migration_status, resolve_database_url, upgrade_to_head
from escrow.errors import EscrowError
from escrow.rules.states import JobOutcome
from escrow.settings import get_settings

if TYPE_CHECKING:
    from escrow.flows.batches import BatchItem

app = typer.Typer(
    help="Ledger and escrow engine for supervised prepaid tuition.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema: apply and inspect migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
tokens_app = typer.Typer(
    help="Bearer tokens for the four roles: create (shown once), revoke, list.", no_args_is_help=True
)
app.add_typer(tokens_app, name="tokens")
jobs_app = typer.Typer(
    help="Scheduled jobs, run by hand: each is a function of `now`, safe to repeat.", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
jurisdictions_app = typer.Typer(help="Jurisdictions (administrative division codes).", no_args_is_help=True)
app.add_typer(jurisdictions_app, name="jurisdictions")
statements_app = typer.Typer(help="Custody bank statements.", no_args_is_help=True)
app.add_typer(statements_app, name="statements")
calendar_app = typer.Typer(help="The official calendar: holidays and make-up workdays per year.", no_args_is_help=True)
app.add_typer(calendar_app, name="calendar")


def main() -> None:
    """The `escrow` command: logs configured from the settings; a wrong setting or an unreachable
    database is one line saying what to change (exit 2), never a traceback."""
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError

    from escrow.logs import configure_logging

    try:
        configure_logging(get_settings())
        app()
    except ValidationError as exc:
        for error in exc.errors():
            name = "ESCROW_" + "_".join(str(p) for p in error["loc"]).upper() if error["loc"] else "a setting"
            typer.echo(f"escrow: {name}: {error['msg']}; change it in the environment or .env", err=True)
        sys.exit(2)
    except OperationalError as exc:
        url = make_url(resolve_database_url(get_settings())) if get_settings().database_url else None
        where = url.render_as_string(hide_password=True) if url else "the embedded server"
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        typer.echo(f"escrow: cannot reach the database at {where} ({reason}); check ESCROW_DATABASE_URL", err=True)
        sys.exit(2)
    except EscrowError as exc:
        typer.echo(f"escrow: refused: {exc.detail}", err=True)
        sys.exit(2)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"escrow {version('escrow')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    """Ledger and escrow engine for supervised prepaid tuition."""


users_app = typer.Typer(help="People who sign in to the console (machines use tokens).", no_args_is_help=True)
app.add_typer(users_app, name="users")


def _migrated_url() -> str:
    url = resolve_database_url(get_settings())
    engine = make_engine(url, pool_size=1)
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    return url


# Idle keep-alive connections close after 5 s; a request line and headers over 16 KiB end the
# connection (h11); each chunk of a body must come within 30 s (api/bodies.py)
KEEP_ALIVE_S = 5
MAX_HEAD_BYTES = 16 * 1024


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(1, min=1, help="worker processes"),
    metrics_port: int | None = typer.Option(None, help="serve Prometheus /metrics on this port (one worker only)"),
) -> None:
    """Migrate the database to head, then serve the HTTP API (embedded PostgreSQL when no URL is set)."""
    _serve(_migrated_url(), host=host, port=port, workers=workers, metrics_port=metrics_port)


def _serve(url: str, *, host: str, port: int, workers: int, metrics_port: int | None) -> None:
    import uvicorn

    metrics_port = metrics_port or get_settings().metrics_port
    if metrics_port and workers > 1:
        raise typer.BadParameter("/metrics counts one process: serve it with --workers 1", param_hint="--metrics-port")
    # workers are new processes: hand them the server this process started or was given
    os.environ["ESCROW_DATABASE_URL"] = url
    if metrics_port:
        os.environ["ESCROW_METRICS_PORT"] = str(metrics_port)
    get_settings.cache_clear()
    # uvicorn re-raises SIGTERM once it has shut down; exit normally instead so that the
    # embedded PostgreSQL is stopped by its exit hook
    signal.signal(signal.SIGTERM, _exit_quietly)
    where = f"; /metrics on http://{get_settings().metrics_host}:{metrics_port}" if metrics_port else ""
    typer.echo(f"escrow serving on http://{host}:{port} (docs at /docs{where})")
    # serve_app configures the logs; its request line replaces uvicorn's access log (which writes queries)
    uvicorn.run(
        "api.app:serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


# a newcomer's first page within a minute and a half of cloning; `--institutions 690` seeds a real district
DEMO_INSTITUTIONS = 100


@app.command()
def demo(
    institutions: int = typer.Option(
        DEMO_INSTITUTIONS, min=1, help="how many institutions the district has; 690: a real district's scale"
    ),
    seed: int = typer.Option(1, help="the random seed: the same seed gives the same district"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(1, min=1, help="worker processes"),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="serve the API once seeded"),
    metrics_port: int | None = typer.Option(None, help="serve Prometheus /metrics on this port"),
) -> None:
    """Seed a demo district in the database every command uses (made anew: it drops only a database it
    made itself), print a token per role, then serve."""
    import time

    from escrow.demo.database import make_demo_database
    from escrow.demo.district import run_jobs_once, seed_demo

    started = time.monotonic()
    url = make_demo_database(get_settings())
    engine = make_engine(url, pool_size=1)
    upgrade_to_head(engine)
    engine.dispose()
    with typer.progressbar(length=institutions, label="seeding the demo district") as bar:
        district = seed_demo(url, institutions=institutions, seed=seed, progress=bar.update)
    typer.echo(
        f"{len(district.institutions)} institutions, {district.contracts} contracts, "
        f"{district.collected_fen / 100:,.2f} yuan collected; seeded in {time.monotonic() - started:.1f} s"
    )
    for behaviour, institution_id in district.bad.items():
        typer.echo(f"  behaving badly ({behaviour}): {institution_id}")
    typer.echo("tokens (Authorization: Bearer ...):")
    for role, secret in district.tokens.items():
        typer.echo(f"  {role:<12} {secret}")
    jobs = run_jobs_once(url, now=datetime.now(UTC))
    typer.echo(f"jobs run once: {', '.join(f'{job} {outcome}' for job, outcome in jobs.items())}")
    typer.echo("every escrow command (jobs, tokens, users, serve, scheduler) now works on this database")
    typer.echo(
        f"console: http://{host}:{port}/console  sign in as {district.regulator[0]}, password {district.regulator[1]}"
    )
    typer.echo(
        f"desk:    http://{host}:{port}/desk  sign in as {district.desk[0]}, password {district.desk[1]}"
        " (the first institution's accountant)"
    )
    typer.echo(
        f"parent:  http://{host}:{port}/m  sign in with {district.parent_phone}; the code appears in the"
        f" development outbox, http://{host}:{port}/m/dev/outbox"
    )
    if serve_after:
        _serve(url, host=host, port=port, workers=workers, metrics_port=metrics_port)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    url = _migrated_url()
    engine = make_engine(url, pool_size=1)
    current, _ = migration_status(engine)
    engine.dispose()
    typer.echo(f"database at {current}")


@db_app.command("status")
def db_status() -> None:
    """Show the database's migration and the code's head; exit 1 when they differ."""
    engine = make_engine(resolve_database_url(get_settings()), pool_size=1)
    current, head = migration_status(engine)
    engine.dispose()
    typer.echo(f"database: {current}\ncode head: {head}")
    raise typer.Exit(0 if current == head else 1)


@contextmanager
def _session() -> Iterator[Session]:
    engine = make_engine(_migrated_url(), pool_size=1)
    try:
        with make_sessionmaker(engine).begin() as session:
            yield session
    except EscrowError as exc:
        typer.echo(f"refused: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()


@jurisdictions_app.command("add")
def jurisdictions_add(
    code: str = typer.Argument(help="6-digit code, e.g. 310104"), name: str = typer.Argument()
) -> None:
    """Register a jurisdiction (idempotent)."""
    from escrow.registry.jurisdictions import add_jurisdiction

    with _session() as session:
        row = add_jurisdiction(session, code=code, name=name)
        typer.echo(f"{row.code} {row.name}")


@tokens_app.command("create")
def tokens_create(
    role: Role = typer.Option(..., help="regulator, institution, parent or bank"),
    jurisdiction: list[str] = typer.Option([], help="regulator: a jurisdiction code (repeat for more)"),
    institution: UUID | None = typer.Option(None, help="institution: its id"),
    guardian_phone: str | None = typer.Option(None, help="parent: the guardian's phone on their contracts"),
    bank: str | None = typer.Option(None, help="bank: the custody bank code of its institutions"),
    label: str = typer.Option("", help="a note on whom the token is for"),
    expires_in_days: int | None = typer.Option(None, min=1, help="expire after this many days"),
) -> None:
    """Create a token and print it once; only its hash is stored."""
    from escrow.access.tokens import issue_token

    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    with _session() as session:
        row, secret = issue_token(
            session,
            role=role,
            jurisdictions=jurisdiction,
            institution_id=institution,
            guardian_phone=guardian_phone,
            bank_code=bank,
            label=label,
            expires_at=expires_at,
        )
        typer.echo(f"token id {row.id} ({row.role}); keep this secret, it is shown only once:")
        typer.echo(secret)


@tokens_app.command("revoke")
def tokens_revoke(token_id: UUID) -> None:
    """Revoke a token by its id; it stops working at once."""
    from escrow.access.tokens import revoke_token

    with _session() as session:
        row = revoke_token(session, token_id=token_id, now=datetime.now(UTC))
        typer.echo(f"token {row.id} revoked at {row.revoked_at}")


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (ids, roles, scopes, state); never the secrets."""
    from escrow.access.tokens import list_tokens
    from escrow.rules.identity import mask_phone

    with _session() as session:
        for row in list_tokens(session):
            phone = mask_phone(row.guardian_phone) if row.guardian_phone else None
            scope = row.jurisdiction_codes or row.institution_id or phone or row.bank_code
            state = "revoked" if row.revoked_at else f"expires {row.expires_at}" if row.expires_at else "active"
            typer.echo(f"{row.id}  {row.role:<11} {scope}  {state}  {row.label}")


@jobs_app.command("run")
def jobs_run(
    name: str = typer.Argument(help="a job name from `escrow jobs list`"),
    now: str | None = typer.Option(None, help="the instant to run as (ISO 8601, with a time zone); default now"),
) -> None:
    """Run one job now (or as of --now): recorded, and never at the same time as another run of it."""
    from escrow.supervision.jobs import JOBS, run_recorded

    try:
        instant = datetime.fromisoformat(now) if now else datetime.now(UTC)
        if instant.tzinfo is None:
            raise ValueError
    except ValueError:
        typer.echo("refused: --now is an ISO 8601 instant with a time zone, e.g. 2026-12-01T09:00:00+08:00", err=True)
        raise typer.Exit(2) from None
    if name not in JOBS:
        typer.echo(f"refused: no job named {name!r}; jobs: {', '.join(JOBS)}", err=True)
        raise typer.Exit(2)
    engine = make_engine(_migrated_url(), pool_size=2)
    try:
        run = run_recorded(engine, name=name, now=instant)
    finally:
        engine.dispose()
    typer.echo(f"{name}: {run.outcome} {json.dumps(run.found, default=str)}")
    raise typer.Exit(0 if run.outcome in (JobOutcome.OK, JobOutcome.SKIPPED) else 1)


@users_app.command("create")
def users_create(
    role: Role = typer.Option(..., help="regulator or institution (an institution's staff)"),
    name: str = typer.Option(..., help="the person's name, which they sign in with"),
    jurisdiction: list[str] = typer.Option([], help="a regulator's jurisdiction (repeat for more)"),
    institution: UUID | None = typer.Option(None, help="the staff member's institution"),
    password: str | None = typer.Option(None, help="default: a random one, printed once"),
) -> None:
    """Add a person who signs in with a name and password (argon2-hashed)."""
    import secrets

    from escrow.access.audit import OPERATOR
    from escrow.access.users import create_user

    chosen = password or secrets.token_urlsafe(12)
    with _session() as session:
        user = create_user(
            session,
            name=name,
            role=role,
            password=chosen,
            jurisdictions=jurisdiction,
            institution_id=institution,
            by=OPERATOR,
            now=datetime.now(UTC),
        )
        typer.echo(f"user {user.id} ({user.role}) {user.name} can sign in at /console")
    if password is None:
        typer.echo(f"password (shown only once): {chosen}")


@jobs_app.command("list")
def jobs_list() -> None:
    """The jobs there are, what each does, and how its last run went."""
    from escrow.supervision.jobs import JOBS, last_runs

    with _session() as session:
        last = {r["job"]: r for r in last_runs(session)}
    for name, (_, what) in JOBS.items():
        run = last.get(name)
        when = f"last {run['outcome']} at {run['started_at']:%Y-%m-%d %H:%M:%S} {run['found']}" if run else "never run"
        typer.echo(f"{name:<24} {what}\n{'':<24} {when}")


@app.command()
def scheduler(
    every: int | None = typer.Option(None, min=1, help="run every job every N seconds (trials); default: hourly"),
    metrics_port: int | None = typer.Option(None, help="serve Prometheus /metrics (job runs, the books) here"),
) -> None:
    """Run the jobs on their schedule in this process (APScheduler); safe to start more than one."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    from prometheus_client import CollectorRegistry, start_http_server

    from escrow.supervision.jobs import JOBS
    from escrow.supervision.metrics import JOB_DURATION, BooksCollector

    engine = make_engine(_migrated_url(), pool_size=len(JOBS))  # a lock and a session per job at once
    metrics_port = metrics_port or get_settings().metrics_port
    if metrics_port:
        registry = CollectorRegistry()
        registry.register(JOB_DURATION)
        registry.register(BooksCollector(engine))
        start_http_server(metrics_port, get_settings().metrics_host, registry=registry)
    runner = BlockingScheduler(timezone=UTC)
    seconds = every or 3600
    for name in JOBS:
        runner.add_job(
            _fire,
            "interval",
            seconds=seconds,
            args=[engine, name, seconds],
            id=name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        runner.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        engine.dispose()


def _fire(engine: object, name: str, seconds: int) -> None:
    from escrow.supervision.jobs import run_recorded

    now = datetime.now(UTC)
    slot = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, UTC)  # the firing both schedulers share
    run_recorded(engine, name=name, now=now, slot=slot)  # type: ignore[arg-type]  # it logs the run


@statements_app.command("import")
def statements_import(
    file: Path = typer.Argument(exists=True, dir_okay=False, readable=True, help="the bank's statement file"),
    fmt: str | None = typer.Option(None, "--format", help="csv, mt940 or camt053; default: read from the file"),
    bank: str | None = typer.Option(None, help="import as this custody bank (its institutions only)"),
) -> None:
    """Import a custody bank statement file, whole or not at all; importing it again changes nothing."""
    from escrow.bank.statements import import_statements, operator_caller

    with _session() as session:
        caller = operator_caller(session, bank=bank)
        imported = import_statements(session, caller=caller, data=file.read_bytes(), fmt=fmt, now=datetime.now(UTC))
        for item in imported:
            s = item.statement
            what = "already imported" if item.replayed else "imported"
            typer.echo(f"{s.account} {s.statement_date} {s.line_count} lines, closing {s.closing_fen} fen: {what}")


@calendar_app.command("load")
def calendar_load(
    file: Path = typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV lines: date,kind,name"),
    source: str = typer.Option(..., help="where the days come from, e.g. the State Council notice's number"),
) -> None:
    """Put one year's official holidays and make-up workdays in force (replacing what was kept for it)."""
    from escrow.access.audit import OPERATOR
    from escrow.registry.calendar import load_calendar_year, parse_calendar_file

    with _session() as session:
        year, days = parse_calendar_file(file.read_text(encoding="utf-8-sig"))
        y = load_calendar_year(session, caller=OPERATOR, year=year, days=days, source=source, now=datetime.now(UTC))
        typer.echo(f"{y.year}: {y.holidays} holidays, {y.workdays} make-up workdays ({y.source})")


@calendar_app.command("years")
def calendar_years() -> None:
    """The years with official data; working days are never counted through any other year."""
    from escrow.registry.calendar import calendar_years as years

    with _session() as session:
        for y in years(session):
            typer.echo(f"{y.year}  {y.holidays:3} holidays  {y.workdays:2} make-up workdays  {y.source}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk every chain of the audit trail; name the first record altered, removed or reordered (exit 1)."""
    from sqlalchemy import text as sql

    from escrow.access.audit import verify_chains

    with _session() as session:
        breaks = verify_chains(session)
        records, chains = session.execute(sql("SELECT count(*), count(DISTINCT chain) FROM audit_record")).one()
    for found in breaks:
        typer.echo(f"chain {found.chain}: record {found.position} {found.problem}")
    if breaks:
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {records} records in {chains} chains")


@app.command("import")
def import_collections_file(
    file: Path = typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV of collections"),
    institution: UUID | None = typer.Option(None, help="the institution; default: the one the contracts belong to"),
) -> None:
    """Import collections from a CSV (contract_id, amount_fen, bank_reference, collected_at, idempotency_key)
    as the operator acting for the institution, in batches of 1,000: each batch whole or not at all,
    each row once per idempotency key (importing the file again changes nothing)."""
    import csv

    from sqlalchemy import select

    from escrow.access.callers import Caller
    from escrow.db.records import Contract
    from escrow.flows.batches import MAX_ITEMS, import_collections

    try:
        with file.open(newline="", encoding="utf-8-sig") as rows:
            items = [_batch_item(n, row) for n, row in enumerate(csv.DictReader(rows), start=2)]
    except ValueError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(2) from None
    if institution is None:
        with _session() as session:
            owners = set(
                session.scalars(select(Contract.institution_id).where(Contract.id.in_({i.contract_id for i in items})))
            )
        if len(owners) != 1:
            typer.echo("refused: the contracts do not belong to one known institution; pass --institution", err=True)
            raise typer.Exit(2)
        institution = owners.pop()
    operator = Caller(token_id=UUID(int=0), role=Role.INSTITUTION, institution_id=institution)
    new = replayed = 0
    for start in range(0, len(items), MAX_ITEMS):
        try:
            with _session() as session:
                done = import_collections(
                    session,
                    caller=operator,
                    institution_id=institution,
                    items=items[start : start + MAX_ITEMS],
                    now=datetime.now(UTC),
                )
        except typer.Exit:
            typer.echo(f"(item N of this batch is CSV line {start + 2} + N; earlier batches stay imported)", err=True)
            raise
        new += sum(not d.replayed for d in done)
        replayed += sum(d.replayed for d in done)
        typer.echo(f"rows {start + 2} to {start + 1 + len(done)}: {len(done)} collections")
    typer.echo(f"imported {new} collections, {replayed} already imported")


def _batch_item(line: int, row: dict[str, str]) -> BatchItem:
    from escrow.flows.batches import BatchItem

    try:
        when = (row.get("collected_at") or "").strip()
        return BatchItem(
            contract_id=UUID(row["contract_id"].strip()),
            amount_fen=int(row["amount_fen"].strip()),
            bank_reference=row["bank_reference"].strip(),
            collected_at=datetime.fromisoformat(when) if when else None,
            idempotency_key=row["idempotency_key"].strip(),
        )
    except (KeyError, AttributeError, ValueError) as exc:
        raise ValueError(f"line {line}: {exc}") from None
