"""Job runs and alerts.

Revision ID: 0005_alerts
Revises: 0004_audit
Create Date: 2026-11-29
"""

from alembic import op

revision = "0005_alerts"
down_revision = "0004_audit"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE job_run (
    id uuid PRIMARY KEY,
    job text NOT NULL,
    run_as timestamptz NOT NULL,
    slot timestamptz,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    outcome text NOT NULL CHECK (outcome IN ('running', 'ok', 'failed', 'skipped')),
    found jsonb NOT NULL DEFAULT '{}'::jsonb,
    error text,
    CHECK ((outcome = 'running') = (finished_at IS NULL))
);
CREATE INDEX job_run_latest ON job_run (job, started_at DESC);
-- a scheduled firing is claimed once, however many schedulers are running
CREATE UNIQUE INDEX job_run_once_per_slot ON job_run (job, slot) WHERE slot IS NOT NULL;

CREATE TABLE alert (
    id uuid PRIMARY KEY,
    rule text NOT NULL CHECK (rule ~ '^[a-z_]+$'),
    severity text NOT NULL CHECK (severity IN ('yellow', 'red')),
    institution_id uuid REFERENCES institution (id),
    subject text NOT NULL DEFAULT '',
    detail text NOT NULL,
    evidence jsonb NOT NULL DEFAULT '{}'::jsonb,
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    raised_at timestamptz NOT NULL,
    raised_by_run uuid REFERENCES job_run (id),
    cleared_at timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    acknowledge_note text,
    resolved_at timestamptz,
    resolved_by text,
    resolution_note text,
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);
-- one alert per condition while it stays on: it fires when the condition turns on, not every run
CREATE UNIQUE INDEX alert_condition_on ON alert
    (rule, coalesce(institution_id, '00000000-0000-0000-0000-000000000000'::uuid), subject)
    WHERE cleared_at IS NULL;
CREATE INDEX alert_by_institution ON alert (institution_id, state);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE alert, job_run")
