"""Statement files: every format and encoding reads to the same statements; a malformed file is refused
whole with the line and the reason and changes nothing; the same statement imported again changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from api.app import create_app
from escrow.access.callers import Caller, Role
from escrow.access.tokens import issue_token
from escrow.bank.formats import MalformedStatement, ParsedStatement, parse_statements
from escrow.bank.statements import import_statements
from escrow.cli import app
from escrow.errors import Conflict, NotFound
from escrow.flows.collections import collect
from escrow.flows.payouts import settle_payout
from escrow.flows.refunds import decide_refund, request_refund
from escrow.ids import new_id
from escrow.registry.contracts import GuardianDetails, sign_contract
from escrow.registry.courses import create_course
from escrow.registry.institutions import register_institution
from escrow.registry.jurisdictions import add_jurisdiction
from escrow.rules.policy import CourseCategory
from escrow.supervision.reconcile import reconcile, reconciliation_findings
from tests.factories import account_number, credit_code, parent, phone, regulator
from tests.factories import school as school_caller

FILES = Path(__file__).parent / "statements"
ACCOUNT = "6222000011112222"  # the account the sample files are for
NOW = datetime(2026, 11, 28, 2, tzinfo=UTC)


def sample(name: str) -> bytes:
    return (FILES / name).read_bytes()


def essence(statements: list[ParsedStatement]) -> list[tuple[object, ...]]:
    return [
        (
            s.account,
            s.statement_date,
            s.opening_fen,
            s.closing_fen,
            s.content_hash,
            [(x.value_date, x.amount_fen, x.reference) for x in s.lines],
        )
        for s in statements
    ]


def test_every_format_and_encoding_reads_to_the_same_statements() -> None:
    utf8 = sample("two_days.csv")
    chinese = sample("two_days_chinese_header.csv")
    files = {
        "csv utf-8": utf8,
        "csv utf-8 with bom": b"\xef\xbb\xbf" + utf8,
        "csv gb18030": utf8.decode().encode("gb18030"),
        "csv chinese header utf-8": chinese,
        "csv chinese header gb18030": chinese.decode().encode("gb18030"),
        "csv crlf": utf8.replace(b"\n", b"\r\n"),
        "mt940": sample("two_days.sta"),
        "camt.053": sample("two_days.xml"),
    }
    read = {name: essence(parse_statements(data)) for name, data in files.items()}
    expected = [
        (
            ACCOUNT,
            date(2026, 11, 26),
            1_200_000,
            1_350_000,
            read["csv utf-8"][0][4],
            [(date(2026, 11, 26), 300_000, "C-8812"), (date(2026, 11, 26), -150_000, "PAY-0193")],
        ),
        (ACCOUNT, date(2026, 11, 27), 1_350_000, 1_350_000, read["csv utf-8"][1][4], []),
    ]
    assert read == {name: expected for name in files}
    # the Chinese names survive every encoding
    for name in ("csv gb18030", "csv chinese header gb18030", "camt.053"):
        (first, _) = parse_statements(files[name])
        assert [(x.counterparty, x.memo) for x in first.lines] == [("王芳", "学费"), ("阳光学校", "课消结算")], name


CSV_HEAD = "account,date,type,amount,reference\n"


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        (
            CSV_HEAD + f"{ACCOUNT},2026-11-26,opening,1.00,\n{ACCOUNT},2026-11-26,credit,12.345,R1\n",
            None,
            "line 3: amount: '12.345' is not an amount in yuan with at most two decimals",
        ),
        (
            CSV_HEAD + f"{ACCOUNT},2026-11-26,opening,1.00,\n{ACCOUNT},2026-11-26,credit,2.00,R1\n",
            None,
            f"line 2: account {ACCOUNT} on 2026-11-26 has no closing balance row",
        ),
        (
            CSV_HEAD + f"{ACCOUNT},2026-11-26,opening,1.00,\n{ACCOUNT},2026-11-26,credit,2.00,R1\n"
            f"{ACCOUNT},2026-11-26,closing,4.00,\n",
            None,
            "line 2: account 6222000011112222 on 2026-11-26: opening 1.00 plus lines 2.00 is 3.00,"
            " not the closing 4.00",
        ),
        (CSV_HEAD + f"{ACCOUNT},26/11/2026,opening,1.00,\n", None, "line 2: date '26/11/2026' is not YYYY-MM-DD"),
        (
            CSV_HEAD + f"{ACCOUNT},2026-11-26,refund,1.00,R\n",
            None,
            "line 2: type 'refund' is not one of opening, credit, debit, closing",
        ),
        (CSV_HEAD + f"{ACCOUNT},2026-11-26,credit,1.00,\n", None, "line 2: a credit line needs the bank reference"),
        (CSV_HEAD + f"{ACCOUNT},2026-11-26,opening,1.00\n", None, "line 2: 4 fields where the header has 5"),
        ("account,date,amount\n", None, "line 1: the header lacks the column(s) type, reference"),
        (
            sample("two_days.sta").decode().replace(":61:2611261126D1500,00", ":61:26112X1126D1500,00"),
            None,
            "line 7: MT940 field not understood",
        ),
        (
            sample("two_days.sta").decode().replace(":62F:C261126CNY13500,00", ":62F:C261126CNY13500,01"),
            None,
            "line 1: account 6222000011112222 on 2026-11-26: opening 12000.00 plus lines 1500.00 is 13500.00,"
            " not the closing 13500.01",
        ),
        (
            sample("two_days.xml").decode().replace('<Amt Ccy="CNY">1500.00</Amt>', '<Amt Ccy="CNY">15OO</Amt>'),
            None,
            "line 21: entry: '15OO' is not an amount in yuan",
        ),
        (
            sample("two_days.xml").decode().replace("</Ntry>", "</Entry>", 1),
            None,
            "line 20: not well-formed XML: Opening and ending tag mismatch",
        ),
        (
            sample("two_days.csv")
            .decode()
            .replace("6222000011112222,2026-11-27,opening", "6222000011112222,2026-11-26,opening"),
            None,
            "a second opening balance for account 6222000011112222 on 2026-11-26",
        ),
        (b"account,date,type,amount,reference\n\x81\x30", None, "line 2: the file is neither UTF-8 nor GB18030 text"),
        ("", "csv", "line 1: the file is empty"),
        ("x", "ods", "unknown format 'ods'"),
    ],
    ids=[
        "three-decimals",
        "no-closing",
        "does-not-add-up",
        "bad-date",
        "bad-type",
        "no-reference",
        "short-row",
        "header",
        "mt940-bad-61",
        "mt940-closing",
        "camt-amount",
        "camt-xml",
        "two-openings",
        "not-text",
        "empty",
        "format",
    ],
)
def test_a_malformed_file_is_refused_with_the_line_and_the_reason(
    data: str | bytes, fmt: str | None, reason: str
) -> None:
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(MalformedStatement) as refused:
        parse_statements(raw, fmt)
    assert reason in refused.value.detail
    assert refused.value.detail.startswith("the file was refused whole")


@pytest.fixture
def school(db: sessionmaker[Session]) -> Iterator[tuple[UUID, str, Caller]]:
    """An institution whose custody account is at bank_s, and that bank."""
    account = account_number()
    with db.begin() as s:
        add_jurisdiction(s, code="310104", name="Xuhui District")
        inst = register_institution(
            s,
            caller=regulator(),
            name="Statement school",
            credit_code=credit_code(),
            jurisdiction_code="310104",
            custody_bank="bank_s",
            custody_account=account,
            supervision_model=None,
            today=NOW.date(),
        )
    yield inst.id, account, Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_s")


def for_account(name: str, account: str) -> bytes:
    return sample(name).replace(ACCOUNT.encode(), account.encode())


def stored(db: sessionmaker[Session], institution_id: UUID) -> tuple[int, int, int]:
    with db.begin() as s:
        row = s.execute(
            text(
                "SELECT (SELECT count(*) FROM bank_statement WHERE institution_id = :i),"
                " (SELECT count(*) FROM statement_line WHERE institution_id = :i),"
                " (SELECT count(*) FROM audit_record WHERE chain = :i AND action = 'statement.imported')"
            ),
            {"i": institution_id},
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def test_a_statement_is_imported_once_whatever_the_format(
    db: sessionmaker[Session], school: tuple[UUID, str, Caller]
) -> None:
    institution, account, bank = school
    with db.begin() as s:
        first = import_statements(s, caller=bank, data=for_account("two_days.csv", account), fmt=None, now=NOW)
    assert [(i.statement.statement_date, i.statement.line_count, i.replayed) for i in first] == [
        (date(2026, 11, 26), 2, False),
        (date(2026, 11, 27), 0, False),
    ]
    assert stored(db, institution) == (2, 2, 2)
    for name in ("two_days.csv", "two_days.sta", "two_days.xml"):
        with db.begin() as s:
            again = import_statements(s, caller=bank, data=for_account(name, account), fmt=None, now=NOW)
        assert [(i.statement.id, i.replayed) for i in again] == [(i.statement.id, True) for i in first], name
    assert stored(db, institution) == (2, 2, 2)
    # the bank changes its mind about a day already imported: refused, nothing of the file is kept
    changed = for_account("two_days.csv", account).replace(b"3000.00,C-8812", b"3000.00,C-9999")
    changed += f"{account},2026-11-28,opening,13500.00,,,\n{account},2026-11-28,closing,13500.00,,,\n".encode()
    with db.begin() as s, pytest.raises(Conflict, match=r"a different statement for account \d+ on 2026-11-26"):
        import_statements(s, caller=bank, data=changed, fmt=None, now=NOW)
    assert stored(db, institution) == (2, 2, 2)


def test_a_file_with_one_bad_statement_imports_nothing(
    db: sessionmaker[Session], school: tuple[UUID, str, Caller]
) -> None:
    institution, account, bank = school
    bad = for_account("two_days.csv", account).replace(b"2026-11-27,closing,13500.00", b"2026-11-27,closing,13500.10")
    with db.begin() as s, pytest.raises(MalformedStatement, match=r"line 6: .* not the closing 13500\.10"):
        import_statements(s, caller=bank, data=bad, fmt=None, now=NOW)
    other_bank = Caller(token_id=new_id(), role=Role.BANK, bank_code="bank_elsewhere")
    with db.begin() as s, pytest.raises(NotFound, match=f"line 2: account {account}"):
        import_statements(s, caller=other_bank, data=for_account("two_days.csv", account), fmt=None, now=NOW)
    assert stored(db, institution) == (0, 0, 0)


def test_statements_over_http(engine: Engine, db: sessionmaker[Session], school: tuple[UUID, str, Caller]) -> None:
    institution, account, _ = school
    with db.begin() as s:
        _, bank_token = issue_token(s, role=Role.BANK, bank_code="bank_s", label="bank_s")
        _, other_token = issue_token(s, role=Role.BANK, bank_code="bank_t", label="bank_t")
        _, school_token = issue_token(s, role=Role.INSTITUTION, institution_id=institution, label="school")
    bank = {"Authorization": f"Bearer {bank_token}", "Content-Type": "text/csv"}
    with TestClient(create_app(engine)) as client:
        malformed = client.post("/statements", content=b"account,date\n", headers=bank)
        assert malformed.status_code == 422
        assert malformed.headers["content-type"] == "application/problem+json"
        assert malformed.json()["code"] == "statement_malformed"
        assert malformed.json()["problems"] == [
            "line 1: the header lacks the column(s) type, amount, reference (see docs/statements.md)"
        ]
        created = client.post("/statements", content=for_account("two_days.xml", account), headers=bank)
        assert created.status_code == 201, created.text
        assert [x["replayed"] for x in created.json()["statements"]] == [False, False]
        replay = client.post("/statements?format=mt940", content=for_account("two_days.sta", account), headers=bank)
        assert (replay.status_code, replay.headers.get("idempotent-replayed")) == (200, "true")
        foreign = client.post(
            "/statements",
            content=for_account("two_days.csv", account),
            headers={**bank, "Authorization": f"Bearer {other_token}"},
        )
        assert foreign.status_code == 404
        assert (
            client.post("/statements", content=b"x", headers={"Authorization": f"Bearer {school_token}"}).status_code
            == 403
        )
        listed = client.get("/statements", params={"institution_id": str(institution)}, headers=bank).json()["items"]
        assert sorted(x["statement_date"] for x in listed) == ["2026-11-26", "2026-11-27"]
        first = next(x for x in listed if x["statement_date"] == "2026-11-26")
        detail = client.get(f"/institutions/{institution}/statements/{first['id']}", headers=bank).json()
        assert [(x["amount_fen"], x["reference"], x["counterparty"]) for x in detail["lines"]] == [
            (300_000, "C-8812", "王芳"),
            (-150_000, "PAY-0193", "阳光学校"),
        ]
    assert stored(db, institution) == (2, 2, 2)


def test_statements_import_on_the_command_line(
    database_url: str, db: sessionmaker[Session], school: tuple[UUID, str, Caller], tmp_path: Path
) -> None:
    institution, account, _ = school
    file = tmp_path / "day.sta"
    file.write_bytes(for_account("two_days.sta", account))
    runner = CliRunner()
    env = {"ESCROW_DATABASE_URL": database_url}
    first = runner.invoke(app, ["statements", "import", str(file), "--bank", "bank_s"], env=env)
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [
        f"{account} 2026-11-26 2 lines, closing 1350000 fen: imported",
        f"{account} 2026-11-27 0 lines, closing 1350000 fen: imported",
    ]
    again = runner.invoke(app, ["statements", "import", str(file)], env=env)
    assert again.exit_code == 0, again.output
    assert again.output.count("already imported") == 2
    file.write_bytes(
        for_account("two_days.sta", account).replace(b"13500,00\n-\n:20:STMT20261127", b"13500,99\n-\n:20:STMT20261127")
    )
    bad = runner.invoke(app, ["statements", "import", str(file)], env=env)
    assert bad.exit_code == 2
    assert "refused: the file was refused whole" in bad.output
    assert stored(db, institution) == (2, 2, 2)


def test_a_bank_paying_a_batch_as_one_line_is_matched_many_to_one(
    db: sessionmaker[Session], school: tuple[UUID, str, Caller]
) -> None:
    """Two refunds the bank executed under one batch reference match the one line that sums them."""
    institution, account, bank = school
    at = datetime(2026, 11, 26, 3, tzinfo=UTC)
    owner = school_caller(institution)
    with db.begin() as s:
        course = create_course(
            s,
            caller=owner,
            institution_id=institution,
            name="Art",
            category=CourseCategory.NON_SUBJECT,
            unit_price_fen=1_000,
            guide_price_fen=None,
            today=at.date(),
        )
        for n, hours in enumerate((1, 2)):
            view = sign_contract(
                s,
                caller=owner,
                institution_id=institution,
                course_id=course.id,
                guardian=GuardianDetails(name="Zhao Lei", phone=phone(), id_number=None),
                student_name="Zhao Yu",
                hours_bought=hours,
                bonus_hours=0,
                term_start=date(2026, 12, 1),
                term_end=date(2026, 12, 31),
                now=at,
            )
            collect(
                s,
                caller=owner,
                institution_id=institution,
                contract_id=view.contract.id,
                amount_fen=hours * 1_000,
                bank_reference=f"C-{n}",
                collected_at=at,
                idempotency_key=f"batch-{n}",
                now=at,
            )
            family = parent(s, view.contract.guardian_id)
            ask = request_refund(
                s, caller=family, institution_id=institution, contract_id=view.contract.id, reason="moved", now=at
            )
            decide_refund(
                s,
                caller=owner,
                institution_id=institution,
                request_id=ask.id,
                approve=True,
                reason=None,
                idempotency_key=f"approve-{n}",
                now=at,
            )
        refunds = s.scalars(text("SELECT id FROM payout WHERE institution_id = :i"), {"i": institution}).all()
        assert len(refunds) == 2
        for payout_id in refunds:
            settle_payout(
                s,
                caller=bank,
                institution_id=institution,
                payout_id=payout_id,
                executed=True,
                note_text="BATCH-7",
                idempotency_key=f"settle-{payout_id}",
                now=at,
            )
        batch = (
            CSV_HEAD + f"{account},2026-11-26,opening,0.00,\n{account},2026-11-26,credit,10.00,C-0\n"
            f"{account},2026-11-26,credit,20.00,C-1\n{account},2026-11-26,debit,30.00,BATCH-7\n"
            f"{account},2026-11-26,closing,0.00,\n"
        ).encode()
        import_statements(s, caller=bank, data=batch, fmt=None, now=NOW)
    with db.begin() as s:
        done = reconcile(s, now=NOW)
        mine = [f for f in reconciliation_findings(s) if f.institution_id == institution]
        matches = s.execute(
            text(
                "SELECT l.reference, m.how, count(*) FROM statement_match m JOIN statement_line l"
                " ON l.institution_id = m.institution_id AND l.id = m.line_id WHERE m.institution_id = :i"
                " GROUP BY l.reference, m.how ORDER BY l.reference"
            ),
            {"i": institution},
        ).all()
    assert done["matched_many_to_one"] >= 2
    assert [tuple(m) for m in matches] == [
        ("BATCH-7", "many_to_one", 2),
        ("C-0", "one_to_one", 1),
        ("C-1", "one_to_one", 1),
    ]
    assert mine == []


MT940_TEMPLATE = (
    ":20:S1\n:25:6222000011112222\n:28C:1/1\n:60F:C261126CNY{opening}\n{entry}:62F:C261126CNY{closing}\n-\n"
)


@pytest.mark.parametrize("amount", ["12a34,00", "1e309,00", "5.5,00", "1,2,3,00", "1234", ",50", "1234567890123,00"])
def test_an_mt940_amount_is_read_as_swift_defines_it_or_refused(amount: str) -> None:
    """Digits, one decimal comma, at most 15 characters: anything else is refused, not read as something else."""
    as_entry = MT940_TEMPLATE.format(opening="0,00", entry=f":61:2611261126C{amount}NTRFREF1//B1\n", closing="0,00")
    as_balance = MT940_TEMPLATE.format(opening=amount, entry="", closing=amount)
    for data in (as_entry, as_balance):
        with pytest.raises(MalformedStatement) as refused:
            parse_statements(data.encode(), "mt940")
        assert "not digits with one decimal comma" in refused.value.detail or "not understood" in refused.value.detail


def test_swift_amounts_are_exact() -> None:
    data = MT940_TEMPLATE.format(opening="0,", entry=":61:2611261126C1234,5NTRFREF1//B1\n", closing="1234,50")
    (statement,) = parse_statements(data.encode(), "mt940")
    assert (statement.opening_fen, statement.lines[0].amount_fen, statement.closing_fen) == (0, 123450, 123450)


def test_a_camt053_file_with_a_dtd_is_refused() -> None:
    data = (
        sample("two_days.xml")
        .replace(b"<Document", b'<!DOCTYPE Document [<!ENTITY who "x">]>\n<Document', 1)
        .replace("王芳".encode(), b"&who;")
    )
    with pytest.raises(MalformedStatement) as refused:
        parse_statements(data, "camt053")
    assert "DOCTYPE" in refused.value.detail


def test_a_csv_field_over_the_csv_module_limit_is_refused_with_its_line() -> None:
    data = "account,date,type,amount,reference,memo\n6222,2026-11-26,opening,0.00,,\n6222,2026-11-26,credit,1.00,R1,"
    data += "m" * 140_000 + "\n"
    with pytest.raises(MalformedStatement) as refused:
        parse_statements(data.encode(), "csv")
    assert "line 3" in refused.value.detail
