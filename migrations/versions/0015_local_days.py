"""Local days and the official calendar as data; a hold recalls payout instructions.

Revision ID: 0015_local_days
Revises: 0014_hostile_input
Create Date: 2026-12-01

- Each jurisdiction carries its time zone (Asia/Shanghai for every Chinese region): business dates
  ("today", a class's day, a deadline) are its local dates.
- The official calendar (holidays and make-up workdays, per year) is a table, seeded here with every
  year the chinese-calendar library knows; a regulator or an operator adds a year as the State Council
  publishes it. A year absent from official_calendar_year is never counted.
- A payout instruction can be recalled (a hold stops money leaving to the institution).
- An alert resolved while its condition still holds opens again, linked to the resolved one (`reopens`).
"""

import chinese_calendar
import sqlalchemy as sa
from alembic import op

revision = "0015_local_days"
down_revision = "0014_hostile_input"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE jurisdiction ADD COLUMN time_zone text NOT NULL DEFAULT 'Asia/Shanghai'
    CHECK (time_zone ~ '^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$');

CREATE TABLE official_calendar_year (
    year integer PRIMARY KEY CHECK (year BETWEEN 2000 AND 2100),
    source text NOT NULL CHECK (length(btrim(source)) BETWEEN 1 AND 200),
    loaded_by text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
-- the days that differ from Monday-Friday working: holidays (on any weekday) and make-up workdays
CREATE TABLE official_calendar_day (
    day date PRIMARY KEY,
    year integer NOT NULL REFERENCES official_calendar_year (year) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('holiday', 'workday')),
    name text NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    CHECK (extract(year FROM day) = year)
);

-- an alert resolved while its condition held opens again on the next run, naming the resolved one
ALTER TABLE alert ADD COLUMN reopens uuid REFERENCES alert (id);

ALTER TABLE payout DROP CONSTRAINT payout_status_check;
ALTER TABLE payout ADD CONSTRAINT payout_status_check
    CHECK (status IN ('instructed', 'executed', 'failed', 'recalled'));
"""

DOWNGRADE = """
ALTER TABLE payout DROP CONSTRAINT payout_status_check;
ALTER TABLE payout ADD CONSTRAINT payout_status_check CHECK (status IN ('instructed', 'executed', 'failed'));
ALTER TABLE alert DROP COLUMN reopens;
DROP TABLE official_calendar_day, official_calendar_year;
ALTER TABLE jurisdiction DROP COLUMN time_zone;
"""


def _library_days() -> list[dict[str, object]]:
    days: list[dict[str, object]] = []
    for kind, table in (("holiday", chinese_calendar.holidays), ("workday", chinese_calendar.workdays)):
        for day, name in sorted(table.items()):
            days.append({"day": day, "year": day.year, "kind": kind, "name": str(name or "")})
    return days


def upgrade() -> None:
    op.execute(UPGRADE)
    days = _library_days()
    years = sorted({int(str(d["year"])) for d in days})
    source = f"chinese-calendar {chinese_calendar.__version__}"
    op.bulk_insert(
        sa.table("official_calendar_year", sa.column("year"), sa.column("source"), sa.column("loaded_by")),
        [{"year": y, "source": source, "loaded_by": "migration"} for y in years],
    )
    op.bulk_insert(
        sa.table(
            "official_calendar_day",
            sa.column("day", sa.Date),
            sa.column("year"),
            sa.column("kind"),
            sa.column("name"),
        ),
        days,
    )


def downgrade() -> None:
    op.execute(DOWNGRADE)
