"""Migration 0014 on books written before it: a family two institutions shared becomes one guardian record
per institution, and a parent token its phone; the downgrade merges them back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from escrow.db.database import alembic_config, make_engine
from escrow.ids import new_id
from tests.factories import account_number, credit_code

BEFORE, AFTER = "0011_check_per_transaction", "0014_hostile_input"
PHONE = "13800000001"


def migrate(conn: Connection, url: str, revision: str, *, down: bool = False) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(config, revision)
    conn.commit()


def seed_a_shared_family(conn: Connection) -> dict[str, object]:
    ids = {
        name: str(new_id()) for name in ("a", "b", "course_a", "course_b", "acct_a", "acct_b", "k_a", "k_b", "g", "t")
    }
    conn.execute(text("INSERT INTO jurisdiction (code, name) VALUES ('310199', 'J')"))
    for side in ("a", "b"):
        args = {"i": ids[side], "cc": credit_code(), "acc": account_number(), "g": ids["g"]}
        args |= {key: ids[f"{key}_{side}"] for key in ("course", "acct", "k")}
        args["signed"] = "2026-01-01T00:00:00Z" if side == "a" else "2026-01-02T00:00:00Z"  # A's first
        conn.execute(
            text(
                "INSERT INTO institution (id, name, credit_code, jurisdiction_code, supervision_model, custody_bank,"
                " custody_account) VALUES (:i, 'School', :cc, '310199', 'custody', 'bank', :acc)"
            ),
            args,
        )
        conn.execute(
            text(
                "INSERT INTO course (institution_id, id, name, category, unit_price_fen)"
                " VALUES (:i, :course, 'Piano', 'non_subject', 100)"
            ),
            args,
        )
        conn.execute(
            text(
                "INSERT INTO account (institution_id, id, code, normal_side, currency)"
                " VALUES (:i, :acct, 'prepaid:' || :k, 'credit', 'CNY')"
            ),
            args,
        )
        if side == "a":
            conn.execute(text("INSERT INTO guardian (id, phone, name) VALUES (:g, :p, 'Wu Min')"), {**args, "p": PHONE})
        conn.execute(
            text(
                "INSERT INTO contract (institution_id, id, course_id, guardian_id, student_name, hours_bought,"
                " unit_price_fen, price_fen, term_start, term_end, policy_jurisdiction, prepaid_account_id, signed_at)"
                " VALUES (:i, :k, :course, :g, 'Wu Tong', 1, 100, 100, '2026-01-01', '2026-02-01', '310199', :acct,"
                " :signed)"
            ),
            args,
        )
    conn.execute(
        text("INSERT INTO api_token (id, token_hash, role, guardian_id) VALUES (:t, 'hash', 'parent', :g)"), ids
    )
    conn.commit()
    return ids


def test_a_shared_family_is_split_per_institution_and_merged_back(database_url: str) -> None:
    server = make_url(database_url)
    name = f"{server.database}_guardian_split"
    url = server.set(database=name).render_as_string(hide_password=False)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            migrate(conn, url, BEFORE)
            ids = seed_a_shared_family(conn)
            migrate(conn, url, AFTER)
            rows = conn.execute(
                text(
                    "SELECT c.institution_id, g.institution_id AS guardian_institution, g.id, g.name"
                    " FROM contract c JOIN guardian g ON g.id = c.guardian_id ORDER BY c.institution_id = :a DESC"
                ),
                ids,
            ).all()
            assert [(str(r.institution_id), str(r.guardian_institution), r.name) for r in rows] == [
                (ids["a"], ids["a"], "Wu Min"),
                (ids["b"], ids["b"], "Wu Min"),
            ]
            assert str(rows[0].id) == ids["g"] and str(rows[1].id) != ids["g"]  # A's contract keeps the record it had
            assert conn.scalar(text("SELECT guardian_phone FROM api_token")) == PHONE

            migrate(conn, url, BEFORE, down=True)
            assert conn.scalar(text("SELECT count(*) FROM guardian")) == 1
            assert {str(g) for g in conn.scalars(text("SELECT guardian_id FROM contract"))} == {ids["g"]}
            assert str(conn.scalar(text("SELECT guardian_id FROM api_token"))) == ids["g"]
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
