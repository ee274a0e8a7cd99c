"""Scheduled work as plain functions of `now`: each is safe to run twice and says what it found.

`run_recorded` records every run (start, end, outcome, findings) and holds a PostgreSQL advisory
lock for the job, so one job never runs twice at once across processes; a scheduled firing names
its slot, and a slot already claimed by another scheduler is skipped.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from escrow.access.messages import sender_for
from escrow.access.parents import sweep_parent_sessions
from escrow.access.users import sweep_sessions
from escrow.db.database import make_sessionmaker
from escrow.errors import NotFound
from escrow.families.reminders import remind_parents
from escrow.flows.classes import deem_classes_confirmed
from escrow.flows.payouts import make_payouts, reinstruct_refunds
from escrow.flows.refunds import deem_refunds_approved
from escrow.ids import new_id
from escrow.logs import get_logger
from escrow.rules.states import JobOutcome
from escrow.settings import get_settings
from escrow.supervision.alerts import raise_alerts
from escrow.supervision.checks import LEDGER_RULES, audit_findings, ledger_findings
from escrow.supervision.dashboard import record_daily_figures
from escrow.supervision.metrics import JOB_DURATION
from escrow.supervision.reconcile import RECON_RULES, reconcile, reconciliation_findings
from escrow.supervision.risks import risk_findings

log = get_logger(__name__)

Job = Callable[[Session, datetime, UUID | None], dict[str, Any]]

# Jobs that read the books to judge them run on one snapshot (REPEATABLE READ): what one statement
# reads agrees with what the next reads while collections keep committing. A write of theirs that meets
# a concurrent change (an alert cleared meanwhile) fails the run, and the next run does it again.
SNAPSHOT_JOBS = frozenset({"reconcile", "check_invariants", "seal_audit", "evaluate_risks", "record_daily_figures"})


def _changed(fn: Callable[..., list[UUID]]) -> Job:
    return lambda session, now, run: {"changed": len(fn(session, now=now))}


def _payouts(session: Session, now: datetime, run: UUID | None) -> dict[str, Any]:
    return {"changed": len(make_payouts(session, now=now)) + len(reinstruct_refunds(session, now=now))}


def _invariants(session: Session, now: datetime, run: UUID | None) -> dict[str, Any]:
    findings = ledger_findings(session, now=now)
    raised = raise_alerts(session, findings, rules=LEDGER_RULES, now=now, run_id=run)
    return {"findings": len(findings), "raised": len(raised), "rules": sorted({f.rule for f in findings})}


def _seal_audit(session: Session, now: datetime, run: UUID | None) -> dict[str, Any]:
    findings = audit_findings(session, now=now)
    raised = raise_alerts(session, findings, rules=["audit_chain_broken"], now=now, run_id=run)
    return {"findings": len(findings), "raised": len(raised)}


def _reconcile(session: Session, now: datetime, run: UUID | None) -> dict[str, Any]:
    done = reconcile(session, now=now)
    findings = reconciliation_findings(session)
    raised = raise_alerts(session, findings, rules=RECON_RULES, now=now, run_id=run)
    return {**done, "findings": len(findings), "raised": len(raised), "rules": sorted({f.rule for f in findings})}


def _risks(session: Session, now: datetime, run: UUID | None) -> dict[str, Any]:
    findings, codes = risk_findings(session, now=now)
    raised = raise_alerts(session, findings, rules=codes, now=now, run_id=run)
    return {"findings": len(findings), "raised": len(raised), "rules": sorted({f.rule for f in findings})}


JOBS: dict[str, tuple[Job, str]] = {
    "deem_classes_confirmed": (
        _changed(deem_classes_confirmed),
        "confirm classes whose parents stayed silent too long",
    ),
    "deem_refunds_approved": (_changed(deem_refunds_approved), "approve refund requests left unanswered too long"),
    "remind_parents": (
        lambda session, now, run: remind_parents(session, now=now, sender=sender_for(get_settings())),
        "tell families of classes waiting for their word, and remind them before silence confirms",
    ),
    "make_payouts": (_payouts, "instruct releases due under each cadence, and refunds owed"),
    "reconcile": (_reconcile, "match custody bank statements to the ledger's cash movements; breaks are alerts"),
    "check_invariants": (_invariants, "balanced transactions, cached balances, no forbidden negatives, custody"),
    "seal_audit": (_seal_audit, "walk the audit trail's hash chains; a break is a red alert"),
    "evaluate_risks": (_risks, "the risk rules over every institution, with the policy's thresholds"),
    "record_daily_figures": (
        lambda session, now, run: record_daily_figures(session, now=now),
        "the dashboard's held funds and flows per institution and day, the last 90 days",
    ),
    "sweep_sessions": (
        lambda session, now, run: {
            "deleted": sweep_sessions(session, now=now),
            "parent_sessions_deleted": sweep_parent_sessions(session, now=now),
        },
        "delete the console's and the phones' sessions past their expiry",
    ),
}


def run_job(session: Session, *, name: str, now: datetime) -> dict[str, Any]:
    """Run one job in the caller's transaction (no run record, no lock): what it found."""
    if name not in JOBS:
        raise NotFound(f"no job named {name!r}; jobs: {', '.join(JOBS)}")
    return JOBS[name][0](session, now, None)


@dataclass(frozen=True, slots=True)
class Run:
    id: UUID | None
    job: str
    outcome: JobOutcome
    found: dict[str, Any]


def run_recorded(engine: Engine, *, name: str, now: datetime, slot: datetime | None = None) -> Run:
    """Run a job under its advisory lock, in one transaction, and record the run."""
    if name not in JOBS:
        raise NotFound(f"no job named {name!r}; jobs: {', '.join(JOBS)}")
    db = make_sessionmaker(engine)
    with engine.connect() as lock:
        if not lock.scalar(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": f"escrow.job.{name}"}):
            return Run(None, name, JobOutcome.SKIPPED, {"reason": "running elsewhere"})
        try:
            run_id = new_id()
            with db.begin() as s:
                claimed = s.scalar(
                    text(
                        "INSERT INTO job_run (id, job, run_as, slot, started_at, outcome) VALUES"
                        " (:id, :job, :now, :slot, clock_timestamp(), 'running') ON CONFLICT DO NOTHING RETURNING id"
                    ),
                    {"id": run_id, "job": name, "now": now, "slot": slot},
                )
            if claimed is None:
                return Run(None, name, JobOutcome.SKIPPED, {"reason": "slot already run"})
            started = time.monotonic()
            try:
                with db.begin() as s:
                    if name in SNAPSHOT_JOBS:
                        s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                    # compiling a plan costed in the millions took 225 ms for a query that ran in 3
                    s.execute(text("SET LOCAL jit = off"))
                    found = JOBS[name][0](s, now, run_id)
                outcome, error = JobOutcome.OK, None
            except Exception:  # a failed run is recorded with its error; the next run tries again
                found, outcome, error = {}, JobOutcome.FAILED, traceback.format_exc(limit=5)
            with db.begin() as s:
                s.execute(
                    text(
                        "UPDATE job_run SET finished_at = clock_timestamp(), outcome = :o, found = CAST(:f AS jsonb),"
                        " error = :e WHERE id = :id"
                    ),
                    {"o": outcome, "f": json.dumps(found, default=str), "e": error, "id": run_id},
                )
            _note_run(name, outcome, found, time.monotonic() - started, run_id)
            return Run(run_id, name, outcome, found)
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": f"escrow.job.{name}"})
            lock.commit()


def _note_run(name: str, outcome: str, found: dict[str, Any], seconds: float, run_id: UUID) -> None:
    """One log line per run (its error is in job_run.error, not the log: it may quote the data) and its time."""
    JOB_DURATION.labels(name, outcome).observe(seconds)
    emit = log.error if outcome == JobOutcome.FAILED else log.info
    emit("job run", job=name, outcome=outcome, run_id=str(run_id), duration_ms=round(seconds * 1000, 1), found=found)


def last_runs(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT DISTINCT ON (job) job, started_at, finished_at, outcome, found FROM job_run"
            " ORDER BY job, started_at DESC"
        )
    ).mappings()
    return [dict(r) for r in rows]
