"""/metrics as Prometheus scrapes it: on a port of its own, with the families an operator watches."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import httpx2 as httpx
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from api.app import create_app
from escrow.supervision.jobs import run_recorded

FAMILIES = {
    "escrow_http_requests",
    "escrow_http_request_duration_seconds",
    "escrow_db_pool_connections",
    "escrow_db_pool_size",
    "escrow_money_held_fen",
    "escrow_custody_cash_fen",
    "escrow_open_alerts",
    "escrow_job_runs",
    "escrow_job_last_duration_seconds",
    "escrow_job_last_findings",
    "escrow_metrics_database_up",
    "process_resident_memory_bytes",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_metrics_are_served_on_their_own_port_and_not_on_the_api(engine: Engine) -> None:
    run_recorded(engine, name="check_invariants", now=datetime.now(UTC))
    port = free_port()
    with TestClient(create_app(engine, metrics_port=port)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 404  # the public port has no metrics
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    assert set(families) >= FAMILIES
    requests = {(s.labels["route"], s.labels["status"]): s.value for s in families["escrow_http_requests"].samples}
    assert requests[("/healthz", "200")] >= 1
    assert requests[("unmatched", "404")] >= 1
    up = families["escrow_metrics_database_up"].samples[0].value
    assert up == 1
    severities = {s.labels["severity"] for s in families["escrow_open_alerts"].samples}
    assert severities == {"yellow", "red"}
    runs = {s.labels["job"] for s in families["escrow_job_runs"].samples}
    assert "check_invariants" in runs


def test_no_metrics_port_unless_one_is_set(engine: Engine) -> None:
    with TestClient(create_app(engine)) as client:
        assert client.get("/metrics").status_code == 404
