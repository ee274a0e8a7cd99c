"""Province-sized books for bench/regulator_day.py, written set-based in SQL.

Institutions and their accounts are registered through the core (`register_institution`); everything
else is planned in temporary tables and written with `INSERT ... SELECT`: courses, guardians,
contracts and their prepaid accounts, collections, classes (confirmed by the parent the next evening,
one in five only deemed confirmed 15 working days later), weekly payouts executed by the bank, and
refunds of what a family had not used. Business time spans the 89 days up to the statement day;
journal transactions are written a day at a time, in effective-time order across institutions, as a
live system would have written them (and its indexes grown row by row: built in bulk at the end they
would come out a third smaller than a live system's, and the checks that read them faster).

Fast mode loads with `session_replication_role = replica` (triggers and foreign keys off) and writes
exactly what they would allow: every transaction two postings that sum to zero, every account's
balance (and version) what its postings make it, custody cash equal to everything owed, nothing
negative, each day's transactions and postings in one database transaction. `checked=True` loads the
same plan with every trigger and foreign key on (slow; for proving the plan at small sizes).
Not written: idempotency records and audit records of the generated flows.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from escrow.access.callers import Caller, Role
from escrow.db.database import make_sessionmaker
from escrow.ids import new_id
from escrow.registry.calendar import official_calendar
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.calendar import BUSINESS_TZ
from escrow.rules.identity import CREDIT_CODE_CHARS, credit_code_check_char

JURISDICTION = "440000"
BANK = "province_bank"
DAYS = 89  # collections spread over the 89 days up to the statement day
CLASSES = 20  # 2-hour classes per contract: 40 hours bought
POSTINGS_PER_CONTRACT = 23.5  # what one contract makes on average in this shape (measured), payouts included
# planted faults (institution numbers, 1-based in id order): see regulator_day.py
IDLE = 8  # no class recorded for 35 days while money is held: money_idle_long


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Province:
    institutions: dict[int, UUID]  # number -> id
    contracts: int
    transactions: int
    postings: int
    statement_day: date


def statement_day(now: datetime) -> date:
    """The day whose statement is due by `now` (T+1 09:00 Beijing time), as the statement_missing rule asks."""
    local = now.astimezone(BUSINESS_TZ)
    return local.date() - timedelta(days=1 if local.hour >= 9 else 2)


def generate(engine: Engine, *, postings: int, institutions: int, now: datetime, checked: bool = False) -> Province:
    """Write the province's books into the (migrated, empty) database of `engine`."""
    day = statement_day(now)
    started = time.monotonic()
    ids = _register(engine, institutions, day)
    log(f"  {institutions} institutions registered ({time.monotonic() - started:.0f} s)")
    per_institution = max(1, round(postings / POSTINGS_PER_CONTRACT / institutions))
    with engine.connect() as conn:
        conn.exec_driver_sql("SET temp_buffers = '1GB'")
        conn.exec_driver_sql("SET work_mem = '256MB'")
        conn.exec_driver_sql("SET synchronous_commit = off")
        params = {"s": day, "tz": str(BUSINESS_TZ), "kk": per_institution, "idle": IDLE}
        _plan(conn, params, started)
        _write(conn, params, checked=checked, started=started)
        counts = "SELECT (SELECT count(*) FROM gen_contract), count(*), 2 * count(*) FROM gen_txn"
        contracts, transactions, written = conn.execute(text(counts)).one()
        conn.exec_driver_sql("DROP TABLE gen_inst, gen_workday, gen_contract, gen_class, gen_payout, gen_txn")
        conn.commit()
        conn.invalidate()  # its settings (work_mem above all) must not reach the timed jobs through the pool
    return Province(ids, contracts, transactions, written, day)


def _register(engine: Engine, institutions: int, day: date) -> dict[int, UUID]:
    db = make_sessionmaker(engine)
    regulator = Caller(token_id=new_id(), role=Role.REGULATOR, jurisdictions=frozenset({JURISDICTION}))
    with db.begin() as s:
        add_jurisdiction(s, code=JURISDICTION, name="Guangdong Province")
    for start in range(0, institutions, 250):
        with db.begin() as s:
            for n in range(start, min(start + 250, institutions)):
                first = "52" + JURISDICTION + "".join(CREDIT_CODE_CHARS[(n // 31**k) % 31] for k in range(9))
                register_institution(
                    s,
                    caller=regulator,
                    name=f"Province school {n + 1}",
                    credit_code=first + credit_code_check_char(first),
                    jurisdiction_code=JURISDICTION,
                    custody_bank=BANK,
                    custody_account=f"6228{n:012d}",
                    supervision_model=None,
                    today=day - timedelta(days=120),
                )
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT row_number() OVER (ORDER BY id), id FROM institution ORDER BY id")).all()
    return {int(n): i for n, i in rows}


# A version 7 UUID (the layout escrow.ids.new_id makes) for an instant, with a number in place of the random
# bits: time-ordered ids keep indexes local, the plan stays reproducible, and no random bytes are drawn.
# The number is a kind (< 64) shifted left by 56 and what is unique within the kind.
_UUID7 = """
CREATE FUNCTION pg_temp.uuid7(ts timestamptz, seq bigint) RETURNS uuid LANGUAGE sql STABLE AS $$
SELECT (lpad(to_hex(floor(extract(epoch FROM ts) * 1000)::bigint << 16 | 28672), 16, '0')
        || to_hex(seq | (-9223372036854775807 - 1)))::uuid
$$
"""

_INSTITUTIONS = """
CREATE TEMP TABLE gen_inst AS
SELECT x.*, pg_temp.uuid7(opened, 1::bigint << 56 | n) AS course_s,
       pg_temp.uuid7(opened, 2::bigint << 56 | n) AS course_a,
       10000 + (n % 5) * 2500 AS unit_s, 6000 + (n % 4) * 2000 AS unit_a
FROM (SELECT row_number() OVER (ORDER BY i.id)::int AS n, i.id AS institution_id,
             (array_agg(a.id) FILTER (WHERE a.code = 'custody_cash'))[1] AS custody,
             (array_agg(a.id) FILTER (WHERE a.code = 'releasable'))[1] AS releasable,
             (array_agg(a.id) FILTER (WHERE a.code = 'payout_pending'))[1] AS pending,
             (CAST(:s AS date) - 100 + time '08:00') AT TIME ZONE :tz AS opened
      FROM institution i JOIN account a ON a.institution_id = i.id GROUP BY i.id) x
"""

# Contract k of institution n: collected d days before the statement day (evenly over 89 days, shifted per
# institution), 40 hours of a subject course (3 in 4) or an arts course; one in 20 refunded after 0-3 classes.
_CONTRACTS = """
CREATE TEMP TABLE gen_contract AS
WITH base AS (
    SELECT g.n, g.institution_id, g.custody, k, (g.n::bigint - 1) * :kk + k AS cno,
           CAST(:s AS date) - ((k * 89) / :kk + g.n * 7) % 89 AS c_day,
           CASE WHEN k % 4 <> 3 THEN g.course_s ELSE g.course_a END AS course_id,
           CASE WHEN k % 4 <> 3 THEN g.unit_s ELSE g.unit_a END AS unit,
           (k / 20) % 4 AS m_r, k % 20 = 13 AND g.n <> :idle AS refund_candidate
    FROM gen_inst g CROSS JOIN generate_series(0, :kk - 1) AS k
), timed AS (
    SELECT b.*, (c_day + time '09:00' + make_interval(mins => (k * 37 + n * 11) % 480)) AT TIME ZONE :tz
               AS collected_at,
           CASE WHEN m_r = 0 THEN c_day + 1 ELSE c_day + 2 + ((m_r - 1) * 7) / 2 + 2 END AS r_day
    FROM base b
), refunding AS (
    SELECT t.*, refund_candidate AND r_day <= CAST(:s AS date) AS refunding,
           (r_day + time '10:00') AT TIME ZONE :tz AS requested_at,
           CASE WHEN r_day + 1 <= CAST(:s AS date) THEN (r_day + 1 + time '11:00') AT TIME ZONE :tz END
               AS refund_paid_at
    FROM timed t
)
SELECT r.*, unit * 40 AS price, unit * (40 - 2 * m_r) AS refund_fen,
       collected_at - interval '2 hours' AS signed_at,
       'PB' || to_char(c_day, 'YYYYMMDD') || lpad(n::text, 5, '0') || lpad(k::text, 6, '0') AS bank_reference,
       'RF' || to_char(r_day, 'YYYYMMDD') || lpad(n::text, 5, '0') || lpad(k::text, 6, '0') AS refund_reference,
       '13' || lpad(((n - 1) * :kk + k)::text, 9, '0') AS phone,
       pg_temp.uuid7(collected_at - interval '2 hours', 3::bigint << 56 | cno) AS contract_id,
       pg_temp.uuid7(collected_at - interval '2 hours', 4::bigint << 56 | cno) AS prepaid_id,
       pg_temp.uuid7(collected_at - interval '2 hours', 5::bigint << 56 | cno) AS guardian_id,
       pg_temp.uuid7(collected_at, 6::bigint << 56 | cno) AS collection_id,
       pg_temp.uuid7(collected_at, 7::bigint << 56 | cno) AS collect_txn,
       pg_temp.uuid7(requested_at, 8::bigint << 56 | cno) AS request_id,
       pg_temp.uuid7(requested_at + interval '2 hours', 9::bigint << 56 | cno) AS refund_txn,
       pg_temp.uuid7(requested_at + interval '2 hours', 10::bigint << 56 | cno) AS refund_account,
       pg_temp.uuid7(requested_at + interval '2 hours', 11::bigint << 56 | cno) AS refund_payout,
       pg_temp.uuid7(coalesce(refund_paid_at, requested_at), 12::bigint << 56 | cno) AS refund_settle_txn
FROM refunding r
"""

# Class m of a contract is given 2 days after collection and then twice a week (while the contract
# has hours, up to the statement day, before a refund); the parent confirms it the next evening, or
# (one in five, never on refunded contracts) it is deemed confirmed the morning after confirm_by.
_CLASSES = """
CREATE TEMP TABLE gen_class AS
WITH c AS (
    SELECT gc.n, gc.institution_id, gc.contract_id, gc.unit, m, gc.cno << 5 | m AS kno,
           gc.c_day + 2 + (m * 7) / 2 AS given_on, m % 5 = 2 AND NOT gc.refunding AS deemed
    FROM gen_contract gc CROSS JOIN generate_series(0, 19) AS m
    WHERE gc.c_day + 2 + (m * 7) / 2 <= CASE WHEN gc.n = :idle THEN CAST(:s AS date) - 35 ELSE CAST(:s AS date) END
      AND (NOT gc.refunding OR m < gc.m_r)
), released AS (
    SELECT c.*, w.confirm_by,
           CASE WHEN c.deemed THEN
                    CASE WHEN w.confirm_by + 1 <= CAST(:s AS date)
                         THEN (w.confirm_by + 1 + time '10:00') AT TIME ZONE :tz END
                ELSE CASE WHEN c.given_on + 1 <= CAST(:s AS date)
                          THEN (c.given_on + 1 + time '20:00') AT TIME ZONE :tz END
           END AS release_at
    FROM c JOIN gen_workday w ON w.day = c.given_on
)
SELECT r.*, (given_on + time '18:00') AT TIME ZONE :tz AS recorded_at,
       pg_temp.uuid7((given_on + time '18:00') AT TIME ZONE :tz, 13::bigint << 56 | kno) AS class_id,
       CASE WHEN release_at IS NOT NULL THEN pg_temp.uuid7(release_at, 14::bigint << 56 | kno) END AS release_txn,
       -- the weekly payout (instructed at 03:00 on the statement day less 7w days) that pays it out
       CASE WHEN release_at <= (CAST(:s AS date) + time '03:00') AT TIME ZONE :tz
            THEN floor(extract(epoch FROM (CAST(:s AS date) + time '03:00') AT TIME ZONE :tz - release_at)
                       / (7 * 86400))::int END AS w
FROM released r
"""

# Weekly payouts of what was released; the bank executes each at 10:00, but for one institution in three
# the statement day's instruction is still pending.
_PAYOUTS = """
CREATE TEMP TABLE gen_payout AS
SELECT p.*, pg_temp.uuid7(instructed_at, 15::bigint << 56 | pno) AS payout_id,
       pg_temp.uuid7(instructed_at, 16::bigint << 56 | pno) AS instruct_txn,
       CASE WHEN executed THEN pg_temp.uuid7(instructed_at + interval '7 hours', 17::bigint << 56 | pno)
       END AS settle_txn,
       CASE WHEN executed THEN instructed_at + interval '7 hours' END AS settled_at,
       CASE WHEN executed THEN 'EX' || to_char(instructed_at AT TIME ZONE :tz, 'YYYYMMDD')
                               || lpad(n::text, 5, '0') || lpad(w::text, 3, '0') END AS bank_reference
FROM (SELECT c.n, c.institution_id, c.w, c.n::bigint << 8 | c.w AS pno, sum(2 * c.unit)::bigint AS amount,
             count(*)::int AS classes,
             (CAST(:s AS date) - 7 * c.w + time '03:00') AT TIME ZONE :tz AS instructed_at,
             NOT (c.w = 0 AND c.n % 3 = 0) AS executed
      FROM gen_class c WHERE c.w IS NOT NULL GROUP BY c.n, c.institution_id, c.w) p
"""

# Every journal transaction, with its debit and credit account and amount: two postings each.
_TRANSACTIONS = """
CREATE TEMP TABLE gen_txn AS
SELECT c.institution_id, c.collect_txn AS id, 'collection' AS kind, c.collected_at AS effective_at,
       c.custody AS debit, c.prepaid_id AS credit, c.price::bigint AS amount,
       jsonb_build_object('contract_id', c.contract_id, 'bank_reference', c.bank_reference) AS metadata
FROM gen_contract c
UNION ALL
SELECT k.institution_id, k.release_txn, 'class_released', k.release_at, c.prepaid_id, g.releasable, 2 * k.unit,
       jsonb_build_object('contract_id', k.contract_id, 'class_id', k.class_id, 'hours', 2)
FROM gen_class k JOIN gen_contract c ON c.institution_id = k.institution_id AND c.contract_id = k.contract_id
JOIN gen_inst g ON g.n = k.n WHERE k.release_at IS NOT NULL
UNION ALL
SELECT p.institution_id, p.instruct_txn, 'payout_instructed', p.instructed_at, g.releasable, g.pending, p.amount,
       jsonb_build_object('payout_id', p.payout_id, 'classes', p.classes)
FROM gen_payout p JOIN gen_inst g ON g.n = p.n
UNION ALL
SELECT p.institution_id, p.settle_txn, 'payout_executed', p.settled_at, g.pending, g.custody, p.amount,
       jsonb_build_object('payout_id', p.payout_id, 'note', p.bank_reference, 'bank_reference', p.bank_reference)
FROM gen_payout p JOIN gen_inst g ON g.n = p.n WHERE p.executed
UNION ALL
SELECT c.institution_id, c.refund_txn, 'refund_approved', c.requested_at + interval '2 hours', c.prepaid_id,
       c.refund_account, c.refund_fen,
       jsonb_build_object('contract_id', c.contract_id, 'cause', 'request:' || c.request_id)
FROM gen_contract c WHERE c.refunding
UNION ALL
SELECT c.institution_id, c.refund_settle_txn, 'payout_executed', c.refund_paid_at, c.refund_account, c.custody,
       c.refund_fen, jsonb_build_object('payout_id', c.refund_payout, 'note', c.refund_reference,
                                        'bank_reference', c.refund_reference)
FROM gen_contract c WHERE c.refunding AND c.refund_paid_at IS NOT NULL
"""

_BALANCES = """
CREATE TEMP TABLE gen_balance AS
SELECT institution_id, account_id, sum(amount)::bigint AS total, count(*)::bigint AS n
FROM (SELECT institution_id, debit AS account_id, amount FROM gen_txn
      UNION ALL SELECT institution_id, credit, -amount FROM gen_txn) legs
GROUP BY institution_id, account_id
"""


def _plan(conn: Connection, params: dict[str, Any], started: float) -> None:
    day: date = params["s"]
    workdays = [day - timedelta(days=back) for back in range(DAYS + 40, -1, -1)]
    conn.exec_driver_sql(_UUID7)
    conn.exec_driver_sql("CREATE TEMP TABLE gen_workday (day date PRIMARY KEY, confirm_by date, respond_by date)")
    calendar = official_calendar(Session(bind=conn))
    conn.execute(
        text("INSERT INTO gen_workday VALUES (:d, :c, :r)"),
        [{"d": d, "c": calendar.add_working_days(d, 15), "r": calendar.add_working_days(d, 5)} for d in workdays],
    )
    for name, table, sql in (
        ("institutions", "gen_inst", _INSTITUTIONS),
        ("contracts", "gen_contract", _CONTRACTS),
        ("classes", "gen_class", _CLASSES),
        ("payouts", "gen_payout", _PAYOUTS),
        ("transactions", "gen_txn", _TRANSACTIONS),
    ):
        conn.execute(text(sql), params)
        count = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
        log(f"  planned {count:,} {name} ({time.monotonic() - started:.0f} s)")
    conn.exec_driver_sql("CREATE INDEX ON gen_txn (effective_at)")
    conn.exec_driver_sql("ANALYZE gen_inst, gen_contract, gen_class, gen_payout, gen_txn")
    conn.commit()


_REFERENCE_ROWS = """
INSERT INTO course (institution_id, id, name, category, unit_price_fen, guide_price_fen)
SELECT institution_id, course_s, 'Maths level 3', 'subject', unit_s, unit_s FROM gen_inst
UNION ALL SELECT institution_id, course_a, 'Piano level 2', 'non_subject', unit_a, NULL FROM gen_inst;

INSERT INTO guardian (id, institution_id, phone, name)
SELECT guardian_id, institution_id, phone, 'Guardian ' || n || '-' || k FROM gen_contract ORDER BY guardian_id;

INSERT INTO account (institution_id, id, code, kind, contract_id, normal_side, currency, balance, version)
SELECT c.institution_id, a.id, a.kind || ':' || c.contract_id, a.kind, c.contract_id, 'credit', 'CNY',
       CASE WHEN :checked THEN 0 ELSE -coalesce(b.total, 0) END, CASE WHEN :checked THEN 0 ELSE coalesce(b.n, 0) END
FROM gen_contract c
CROSS JOIN LATERAL (VALUES (c.prepaid_id, 'prepaid'),
                           (CASE WHEN c.refunding THEN c.refund_account END, 'refund_payable')) AS a(id, kind)
LEFT JOIN gen_balance b ON b.institution_id = c.institution_id AND b.account_id = a.id
WHERE a.id IS NOT NULL ORDER BY c.institution_id, a.id;

INSERT INTO contract (institution_id, id, course_id, guardian_id, student_name, hours_bought, bonus_hours,
                      unit_price_fen, price_fen, term_start, term_end, policy_jurisdiction, policy_effective_date,
                      prepaid_account_id, signed_at, status)
SELECT institution_id, contract_id, course_id, guardian_id, 'Student ' || n || '-' || k, 40, 0, unit, price,
       c_day, c_day + 85, :jurisdiction, NULL, prepaid_id, signed_at,
       CASE WHEN refunding THEN 'refunded' ELSE 'active' END
FROM gen_contract ORDER BY institution_id, contract_id
"""

_DAY_TRANSACTIONS = """
INSERT INTO journal_transaction (institution_id, id, kind, effective_at, metadata, legs)
SELECT institution_id, id, kind, effective_at, metadata, 2 FROM gen_txn
WHERE effective_at >= :start AND effective_at < :end ORDER BY effective_at, id
"""

_DAY_POSTINGS = """
INSERT INTO posting (institution_id, transaction_id, account_id, currency, amount)
SELECT t.institution_id, t.id, leg.account_id, 'CNY', leg.amount
FROM gen_txn t CROSS JOIN LATERAL (VALUES (1, t.debit, t.amount), (2, t.credit, -t.amount)) leg(n, account_id, amount)
WHERE t.effective_at >= :start AND t.effective_at < :end ORDER BY t.effective_at, t.id, leg.n
"""

_FLOW_ROWS = """
INSERT INTO payout (institution_id, id, kind, contract_id, amount_fen, status, instructed_at, settled_at,
                    bank_reference, instruct_transaction_id, settle_transaction_id)
SELECT institution_id, payout_id, 'release', NULL, amount, CASE WHEN executed THEN 'executed' ELSE 'instructed' END,
       instructed_at, settled_at, bank_reference, instruct_txn, settle_txn
FROM gen_payout
UNION ALL
SELECT institution_id, refund_payout, 'refund', contract_id, refund_fen,
       CASE WHEN refund_paid_at IS NOT NULL THEN 'executed' ELSE 'instructed' END, requested_at + interval '2 hours',
       refund_paid_at, CASE WHEN refund_paid_at IS NOT NULL THEN refund_reference END, NULL,
       CASE WHEN refund_paid_at IS NOT NULL THEN refund_settle_txn END
FROM gen_contract WHERE refunding ORDER BY 1, 2;

INSERT INTO class_record (institution_id, id, contract_id, hours, given_on, status, confirmed_how, confirm_by,
                          amount_fen, release_transaction_id, payout_id, recorded_at, decided_at)
SELECT k.institution_id, k.class_id, k.contract_id, 2, k.given_on,
       CASE WHEN k.release_at IS NULL THEN 'pending' ELSE 'confirmed' END,
       CASE WHEN k.release_at IS NULL THEN NULL WHEN k.deemed THEN 'deemed' ELSE 'parent' END, k.confirm_by,
       CASE WHEN k.release_at IS NOT NULL THEN 2 * k.unit END, k.release_txn, p.payout_id, k.recorded_at, k.release_at
FROM gen_class k LEFT JOIN gen_payout p ON p.n = k.n AND p.w = k.w ORDER BY k.institution_id, k.class_id;

INSERT INTO collection (institution_id, id, contract_id, amount_fen, bank_reference, collected_at, transaction_id)
SELECT institution_id, collection_id, contract_id, price, bank_reference, collected_at, collect_txn
FROM gen_contract ORDER BY institution_id, collection_id;

INSERT INTO refund_request (institution_id, id, contract_id, reason, status, respond_by, amount_fen, decided_by,
                            requested_at, decided_at, transaction_id)
SELECT c.institution_id, c.request_id, c.contract_id, 'moving house', 'approved', w.respond_by, c.refund_fen,
       c.institution_id::text, c.requested_at, c.requested_at + interval '2 hours', c.refund_txn
FROM gen_contract c JOIN gen_workday w ON w.day = c.r_day WHERE c.refunding ORDER BY 1, 2
"""

# the accounts every institution opened at registration take the balance (and version) their postings give
_SYSTEM_BALANCES = """
UPDATE account a SET balance = CASE a.normal_side WHEN 'debit' THEN b.total ELSE -b.total END, version = b.n
FROM gen_balance b WHERE a.institution_id = b.institution_id AND a.id = b.account_id
AND a.code IN ('custody_cash', 'releasable', 'payout_pending')
"""

# in checked mode the triggers kept the balances: they must be what the plan says
_BALANCE_DIFFERENCES = """
SELECT count(*) FROM account a FULL JOIN gen_balance b ON b.institution_id = a.institution_id AND b.account_id = a.id
WHERE a.balance IS DISTINCT FROM coalesce(b.total, 0) * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END
"""


def _write(conn: Connection, params: dict[str, Any], *, checked: bool, started: float) -> None:
    role = "origin" if checked else "replica"  # replica: triggers and foreign keys off for the bulk load
    params = {**params, "checked": checked, "jurisdiction": JURISDICTION}
    conn.execute(text(_BALANCES))
    conn.exec_driver_sql(f"SET LOCAL session_replication_role = {role}")
    for statement in _REFERENCE_ROWS.split(";\n"):
        conn.execute(text(statement), params)
    conn.commit()
    log(f"  wrote courses, guardians, accounts and contracts ({time.monotonic() - started:.0f} s)")
    last: date = params["s"]
    written = 0
    for back in range(DAYS + 1, -1, -1):
        day = last - timedelta(days=back)
        bounds = {"start": _day_start(day), "end": _day_start(day + timedelta(days=1))}
        conn.exec_driver_sql(f"SET LOCAL session_replication_role = {role}")
        written += conn.execute(text(_DAY_TRANSACTIONS), bounds).rowcount
        conn.execute(text(_DAY_POSTINGS), bounds)
        conn.commit()  # a day's transactions and their postings in one database transaction
        if back % 10 == 0:
            log(f"  books written up to {day}: {written:,} transactions ({time.monotonic() - started:.0f} s)")
    planned = conn.execute(text("SELECT count(*) FROM gen_txn")).scalar_one()
    assert written == planned, f"{written} transactions written of {planned} planned"
    conn.exec_driver_sql(f"SET LOCAL session_replication_role = {role}")
    for statement in _FLOW_ROWS.split(";\n"):
        conn.execute(text(statement), params)
    if not checked:
        conn.execute(text(_SYSTEM_BALANCES))
    conn.commit()
    if checked:
        drift = conn.execute(text(_BALANCE_DIFFERENCES)).scalar_one()
        assert drift == 0, f"{drift} accounts differ between the triggers' balances and the plan"
    conn.exec_driver_sql("DROP TABLE gen_balance")
    log(f"  wrote payouts, classes, collections and refund requests ({time.monotonic() - started:.0f} s)")


def _day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), BUSINESS_TZ)
