"""The demo district, small: seeded from nothing, the books hold and the bad actors are there."""

from __future__ import annotations

from sqlalchemy import Engine, text

from escrow.demo import BAD, seed_demo


def test_a_small_demo_district_keeps_its_books(database_url: str, engine: Engine) -> None:
    district = seed_demo(database_url, institutions=12, seed=3, workers=1)
    assert len(district.institutions) == 12
    assert set(district.bad) == set(BAD)
    assert set(district.tokens) == {"regulator", "institution", "parent", "bank"}
    with engine.connect() as conn:
        ids = [str(i) for i in district.institutions]
        drift = conn.scalar(
            text(
                "SELECT count(*) FROM account a WHERE a.institution_id = ANY(CAST(:ids AS uuid[])) AND a.balance <> "
                "(SELECT coalesce(sum(p.amount), 0) FROM posting p WHERE p.institution_id = a.institution_id"
                " AND p.account_id = a.id) * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END"
            ),
            {"ids": ids},
        )
        assert drift == 0
        gaps = conn.execute(
            text(
                "SELECT institution_id, sum(balance) FILTER (WHERE code = 'custody_cash') AS cash,"
                " sum(balance) FILTER (WHERE split_part(code, ':', 1) IN"
                " ('prepaid', 'releasable', 'payout_pending', 'refund_payable')) AS owed"
                " FROM account WHERE institution_id = ANY(CAST(:ids AS uuid[])) GROUP BY institution_id"
            ),
            {"ids": ids},
        ).all()
        assert all(cash == owed for _, cash, owed in gaps)
        collected = conn.scalar(
            text("SELECT sum(amount_fen) FROM collection WHERE institution_id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": ids},
        )
        assert collected == district.collected_fen
        kinds = set(
            conn.scalars(
                text("SELECT DISTINCT kind FROM journal_transaction WHERE institution_id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": ids},
            )
        )
        assert {"collection", "class_released", "payout_instructed", "payout_executed", "refund_approved"} <= kinds
        on_hold = conn.scalar(text("SELECT status FROM institution WHERE id = :i"), {"i": district.bad["on_hold"]})
        assert on_hold == "on_hold"
