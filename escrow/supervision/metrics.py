"""Prometheus metrics read from the books on each scrape, and the job runs of this process.

`BooksCollector` asks the database at scrape time (no state kept in the process, so every process of a
deployment reports the same figures): money held and in custody, open alerts by severity, job runs and
how the last one of each job went, and the process's connection pool. An outbox backlog joins them once
an outbox exists.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

# seconds, from a quick check to a province's reconciliation
JOB_DURATION = Histogram(
    "escrow_job_duration_seconds",
    "How long each job run of this process took, by job and outcome",
    ["job", "outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900),
    registry=None,
)

# the books' figures scan the account table once a scrape; a scrape never holds the database longer than this
SCRAPE_TIMEOUT = "2s"

BOOKS = text(
    "SELECT currency, coalesce(sum(balance) FILTER (WHERE code LIKE 'prepaid:%'), 0),"
    " coalesce(sum(balance) FILTER (WHERE code = 'custody_cash'), 0) FROM account GROUP BY currency"
)
OPEN_ALERTS = text("SELECT severity, count(*) FROM alert WHERE state = 'open' GROUP BY severity")
JOB_RUNS = text("SELECT job, outcome, count(*) FROM job_run GROUP BY job, outcome")
LAST_RUNS = text(
    "SELECT DISTINCT ON (job) job, extract(epoch FROM finished_at - started_at), found FROM job_run"
    " WHERE finished_at IS NOT NULL ORDER BY job, started_at DESC"
)


class BooksCollector(Collector):
    """The figures an operator watches, computed from the database when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        yield from self._pool()
        up = GaugeMetricFamily("escrow_metrics_database_up", "1 when the scrape could read the books")
        try:
            families = self._books()
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _pool(self) -> Iterator[Metric]:
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return
        used = GaugeMetricFamily("escrow_db_pool_connections", "Connections of this process's pool", labels=["state"])
        used.add_metric(["checked_out"], pool.checkedout())
        used.add_metric(["idle"], pool.checkedin())
        used.add_metric(["overflow"], max(pool.overflow(), 0))
        yield used
        size = GaugeMetricFamily("escrow_db_pool_size", "Connections the pool keeps (it may open as many again)")
        size.add_metric([], pool.size())
        yield size

    def _books(self) -> list[Metric]:
        held = GaugeMetricFamily("escrow_money_held_fen", "Prepaid money held for families", labels=["currency"])
        custody = GaugeMetricFamily("escrow_custody_cash_fen", "Money in custody accounts", labels=["currency"])
        alerts = GaugeMetricFamily("escrow_open_alerts", "Alerts open (not acknowledged)", labels=["severity"])
        runs = CounterMetricFamily("escrow_job_runs", "Job runs recorded, by outcome", labels=["job", "outcome"])
        last = GaugeMetricFamily("escrow_job_last_duration_seconds", "The last finished run's time", labels=["job"])
        found = GaugeMetricFamily("escrow_job_last_findings", "What the last finished run found", labels=["job"])
        with self.engine.connect() as conn, conn.begin():
            conn.execute(text(f"SET LOCAL statement_timeout = '{SCRAPE_TIMEOUT}'"))
            for currency, held_fen, custody_fen in conn.execute(BOOKS):
                held.add_metric([currency], held_fen)
                custody.add_metric([currency], custody_fen)
            counts: dict[str, int] = {severity: n for severity, n in conn.execute(OPEN_ALERTS)}
            for severity in ("yellow", "red"):
                alerts.add_metric([severity], counts.get(severity, 0))
            for job, outcome, count in conn.execute(JOB_RUNS):
                runs.add_metric([job, outcome], count)
            for job, seconds, result in conn.execute(LAST_RUNS):
                last.add_metric([job], float(seconds))
                found.add_metric([job], _findings(result))
        return [held, custody, alerts, runs, last, found]


def _findings(found: object) -> float:
    """A run's findings (or, for jobs that change rather than judge, how many things it changed)."""
    if not isinstance(found, dict):
        return 0.0
    value = found.get("findings", found.get("changed", 0))
    return float(value) if isinstance(value, int | float) else 0.0
