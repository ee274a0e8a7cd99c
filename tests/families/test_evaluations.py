"""A family evaluates a class it confirmed, once: while confirming it (both or neither) or afterwards; the
regulator and the institution read the evaluations per institution with their average."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.errors import Conflict, Forbidden, InvalidRequest, NotFound
from escrow.families.evaluations import (
    confirm_with_evaluation,
    evaluate_class,
    evaluation_summary,
    list_evaluations,
    recent_evaluations,
)
from escrow.families.overview import contract_summary
from tests.factories import JURISDICTION, regulator
from tests.families.family import HOURS, PAID_FEN, Family, a_family, give_class


def confirm(s: Session, family: Family, class_id: object, stars: int | None, comment: str | None = None) -> object:
    return confirm_with_evaluation(s, caller=family.parent, institution_id=family.institution_id,
                                   class_id=class_id, stars=stars, comment=comment,  # type: ignore[arg-type]
                                   idempotency_key=f"m-confirm:{class_id}", now=datetime.now(UTC))  # fmt: skip


def test_confirming_with_stars_releases_the_class_and_keeps_the_evaluation(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        class_id = give_class(s, family, hours=2)
        record, evaluation = confirm(s, family, class_id, 5, "  patient teacher  ")  # type: ignore[misc]
    assert record.status == "confirmed" and record.confirmed_how == "parent"
    assert evaluation is not None and (evaluation.stars, evaluation.comment) == (5, "patient teacher")
    with db.begin() as s:
        summary = contract_summary(s, caller=family.parent, institution_id=family.institution_id,
                                   contract_id=family.contract_id)  # fmt: skip
        assert summary.released_fen == PAID_FEN * 2 // HOURS and summary.held_fen == PAID_FEN - summary.released_fen
        again = confirm(s, family, class_id, 5, "patient teacher")  # the same form sent twice
        assert again[1].id == evaluation.id  # type: ignore[index]


def test_bad_stars_confirm_nothing(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        class_id = give_class(s, family)
    for stars, comment in ((0, None), (6, "x"), (None, "a comment without stars"), (3, "x" * 501)):
        with db.begin() as s, pytest.raises(InvalidRequest):
            confirm(s, family, class_id, stars, comment)
    with db.begin() as s:
        status = s.scalar(text("SELECT status FROM class_record WHERE id = :c"), {"c": class_id})
        assert status == "pending"


def test_a_class_is_evaluated_once_and_only_once_confirmed(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        neighbour = a_family(s, at=family.institution_id)
        waiting, confirmed = give_class(s, family), give_class(s, family)
        confirm(s, family, confirmed, None)
    ids = {"institution_id": family.institution_id}
    with db.begin() as s:
        with pytest.raises(Conflict):
            evaluate_class(s, caller=family.parent, class_id=waiting, stars=4, comment=None, now=datetime.now(UTC),
                           **ids)  # fmt: skip
        first, replayed = evaluate_class(s, caller=family.parent, class_id=confirmed, stars=4, comment=None,
                                         now=datetime.now(UTC), **ids)  # fmt: skip
        assert not replayed
        assert evaluate_class(s, caller=family.parent, class_id=confirmed, stars=4, comment=None,
                              now=datetime.now(UTC), **ids) == (first, True)  # fmt: skip
        with pytest.raises(Conflict):
            evaluate_class(s, caller=family.parent, class_id=confirmed, stars=1, comment="changed my mind",
                           now=datetime.now(UTC), **ids)  # fmt: skip
        with pytest.raises(NotFound):
            evaluate_class(s, caller=neighbour.parent, class_id=confirmed, stars=1, comment=None,
                           now=datetime.now(UTC), **ids)  # fmt: skip
        with pytest.raises(Forbidden):
            evaluate_class(s, caller=family.owner, class_id=confirmed, stars=1, comment=None,
                           now=datetime.now(UTC), **ids)  # fmt: skip
    with db.begin() as s:  # the audit trail is written with the commit
        actions = s.scalars(text("SELECT action FROM audit_record WHERE object_id = :c"), {"c": str(confirmed)}).all()
        assert actions.count("class.evaluated") == 1


def test_the_regulator_and_the_institution_read_the_average(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        family = a_family(s)
        for stars in (5, 4, 4):
            confirm(s, family, give_class(s, family), stars, "good" if stars == 5 else None)
    with db.begin() as s:
        for reader in (regulator(JURISDICTION), family.owner):
            summary = evaluation_summary(s, caller=reader, institution_id=family.institution_id)
            assert (summary.count, summary.average) == (3, Fraction(13, 3))
            assert summary.by_stars == {1: 0, 2: 0, 3: 0, 4: 2, 5: 1}
            page = list_evaluations(s, caller=reader, institution_id=family.institution_id, cursor=None, limit=2)
            assert len(page.items) == 2 and page.next_cursor is not None
        assert recent_evaluations(s, caller=family.owner, institution_id=family.institution_id)[-1].comment == "good"
        with pytest.raises(Forbidden):
            evaluation_summary(s, caller=family.parent, institution_id=family.institution_id)
        with pytest.raises(NotFound):
            evaluation_summary(s, caller=regulator("370000"), institution_id=family.institution_id)
