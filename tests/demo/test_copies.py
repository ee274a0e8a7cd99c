"""Copies of a seeded institution (how the demo reaches district scale): the template's books, to the fen,
under ids, names and families of their own, with every trigger, foreign key and audit hash holding."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from escrow.demo.copies import TABLES, Identity, copy_id, copy_institution, next_copy_number
from escrow.demo.district import seed_demo
from escrow.supervision.checks import audit_findings, ledger_findings

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# what a copy holds, with every id masked: the same for template and copy
SHAPES = {
    "account": "SELECT code, normal_side, allow_negative, balance FROM account WHERE institution_id = :i",
    "contract": "SELECT student_name, hours_bought, price_fen, term_start, status FROM contract"
    " WHERE institution_id = :i",
    "journal_transaction": "SELECT kind, effective_at, legs, metadata::text FROM journal_transaction"
    " WHERE institution_id = :i",
    "posting": "SELECT p.amount, a.code FROM posting p JOIN account a ON a.institution_id = p.institution_id"
    " AND a.id = p.account_id WHERE p.institution_id = :i",
    "class_record": "SELECT given_on, status, confirmed_how, amount_fen, release_transaction_id IS NULL,"
    " payout_id IS NULL FROM class_record WHERE institution_id = :i",
    "payout": "SELECT kind, amount_fen, status, instructed_at FROM payout WHERE institution_id = :i",
    "idempotency_record": "SELECT caller, key, result::text FROM idempotency_record WHERE institution_id = :i",
    "audit_record": "SELECT position, occurred_at, actor, action, object_id, before::text, after::text"
    " FROM audit_record WHERE chain = :i"  # a copy's name, its bank statements (delivered after) and staff are its own
    " AND action NOT IN ('institution.registered', 'statement.imported', 'user.created')",
}


def _shape(session: Session, query: str, institution: UUID) -> list[tuple[object, ...]]:
    rows = session.execute(text(query), {"i": institution}).all()
    return sorted(tuple(UUID_TEXT.sub("<id>", v) if isinstance(v, str) else v for v in row) for row in rows)


def test_a_copy_holds_its_templates_books_under_ids_of_its_own(
    database_url: str, engine: Engine, db: sessionmaker[Session]
) -> None:
    # institution 0, copied as 1 and 2 (the demo's family joins 0 after the copies: left out here)
    district = seed_demo(database_url, institutions=3, seed=7, workers=1, family=False)
    template, first, second = district.institutions
    with db() as s:
        assert first.version == second.version == 8 and template.version == 7
        numbers = {int(first.hex[-4:], 16), int(second.hex[-4:], 16)}
        assert {copy_id(template, n) for n in numbers} == {first, second}
        for name, query in SHAPES.items():
            theirs = _shape(s, query, template)
            assert theirs, name
            for copy in (first, second):
                assert _shape(s, query, copy) == theirs, name
        # no row of a copy holds an original's id (version 7), in id columns or inside text and JSON
        for table in TABLES[2:]:
            leaked = s.scalar(
                text(f"SELECT count(*) FROM {table} t WHERE t.institution_id = ANY(:copies) AND t::text ~ :v7"),
                {"copies": [first, second], "v7": "[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-"},
            )
            assert leaked == 0, table
        names = s.execute(
            text("SELECT id, name, credit_code, custody_account FROM institution WHERE id = ANY(:ids)"),
            {"ids": [template, first, second]},
        ).all()
        assert len({(n, c, a) for _, n, c, a in names}) == 3
        registered = s.scalar(
            text("SELECT after->>'name' FROM audit_record WHERE chain = :i AND action = 'institution.registered'"),
            {"i": first},
        )
        assert registered == next(n for i, n, _, _ in names if i == first)
        phones = s.scalars(
            text(
                "SELECT g.phone FROM guardian g JOIN contract c ON c.guardian_id = g.id"
                " WHERE c.institution_id = ANY(:ids)"
            ),
            {"ids": [template, first, second]},
        ).all()
        assert len(phones) == len(set(phones)) == district.contracts
        now = datetime.now(UTC)
        ours = {template, first, second}  # other tests break other institutions' books on purpose
        assert [f for f in ledger_findings(s, now=now) + audit_findings(s, now=now) if f.institution_id in ours] == []
        # a family of a copy sees its contracts there, and the template's family's contract is not theirs
        phone = s.scalar(
            text("SELECT g.phone FROM guardian g JOIN contract c ON c.guardian_id = g.id WHERE c.institution_id = :i"),
            {"i": first},
        )
        theirs_contract = s.scalar(text("SELECT id FROM contract WHERE institution_id = :i LIMIT 1"), {"i": template})
        secret = issue_token(s, role=Role.PARENT, guardian_phone=phone, label="test")[1]
        s.commit()
    with TestClient(create_app(engine)) as client:
        auth = {"Authorization": f"Bearer {secret}"}
        mine = client.get("/contracts", headers=auth).json()["items"]
        assert mine and {c["institution_id"] for c in mine} == {str(first)}
        other = client.get(f"/institutions/{template}/contracts/{theirs_contract}", headers=auth)
        assert other.status_code == 404


def test_a_copy_number_is_used_once(database_url: str, db: sessionmaker[Session]) -> None:
    district = seed_demo(database_url, institutions=1, seed=8, workers=1)
    (template,) = district.institutions
    with db() as s:
        number = next_copy_number(s)
        copy = Identity(number, "Copy School", "52310104AAAAAAAAA8", "6222000000000001")
        copy_institution(s, template=template, copies=[copy])
        s.commit()
        assert next_copy_number(s) == number + 1
        before = s.scalar(text("SELECT count(*) FROM contract"))
        with pytest.raises(IntegrityError):
            copy_institution(s, template=template, copies=[copy])
        s.rollback()
        assert s.scalar(text("SELECT count(*) FROM contract")) == before
