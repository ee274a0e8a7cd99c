"""Evaluations: 1 to 5 stars and an optional comment on a confirmed class, by its family, once; given while
confirming the class (confirm_with_evaluation) or afterwards. The regulator and the institution read them per
institution, with the average."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escrow.access.audit import note
from escrow.access.callers import Caller, Role, contract_scope, require_role
from escrow.db.family_records import Evaluation
from escrow.db.paging import Page, keyset
from escrow.db.records import ClassRecord, Contract
from escrow.errors import Conflict, InvalidRequest, NotFound
from escrow.flows.classes import confirm_class
from escrow.ids import new_id
from escrow.registry.institutions import visible_institution
from escrow.rules.families import MAX_COMMENT_CHARS, stars_problem, text_problem
from escrow.rules.states import ClassStatus


def _checked(stars: int, comment: str | None) -> str | None:
    problem = stars_problem(stars)
    if problem:
        raise InvalidRequest(problem, field="stars", reason="stars")
    if comment is None or not comment.strip():
        return None
    too_long = text_problem(comment, limit=MAX_COMMENT_CHARS, what="comment")
    if too_long:
        raise InvalidRequest(too_long, field="comment", reason="too_long")
    return comment.strip()


def evaluate_class(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    class_id: UUID,
    stars: int,
    comment: str | None,
    now: datetime,
) -> tuple[Evaluation, bool]:
    """The family evaluates one of its confirmed classes, once; the same evaluation sent again is the first
    (True: it was), another is a conflict."""
    require_role(caller, Role.PARENT)
    comment = _checked(stars, comment)
    found = session.execute(
        select(ClassRecord, Contract)
        .join(
            Contract,
            (Contract.institution_id == ClassRecord.institution_id) & (Contract.id == ClassRecord.contract_id),
        )
        .where(ClassRecord.institution_id == institution_id, ClassRecord.id == class_id, contract_scope(caller))
        .with_for_update(of=ClassRecord, key_share=True)  # two evaluations at once: the second sees the first
    ).one_or_none()
    if found is None:
        raise NotFound(f"class {class_id} does not exist or is outside your scope")
    record, contract = found
    if record.status != ClassStatus.CONFIRMED:
        raise Conflict(f"class {class_id} is {record.status}; only a confirmed class can be evaluated")
    earlier = session.scalars(
        select(Evaluation).where(Evaluation.institution_id == institution_id, Evaluation.class_id == class_id)
    ).one_or_none()
    if earlier is not None:
        if (earlier.stars, earlier.comment) == (stars, comment):
            return earlier, True
        raise Conflict(f"class {class_id} was evaluated already; an evaluation is given once")
    row = Evaluation(
        institution_id=institution_id,
        id=new_id(),
        class_id=class_id,
        contract_id=contract.id,
        guardian_phone=caller.guardian_phone,
        stars=stars,
        comment=comment,
        created_at=now,
    )
    session.add(row)
    session.flush()
    note(session, caller, "class.evaluated", institution_id=institution_id, object_type="class", object_id=class_id,
         at=now, after={"stars": stars, "comment": comment is not None})  # fmt: skip
    return row, False


def confirm_with_evaluation(
    session: Session,
    *,
    caller: Caller,
    institution_id: UUID,
    class_id: UUID,
    stars: int | None,
    comment: str | None,
    idempotency_key: str,
    now: datetime,
) -> tuple[ClassRecord, Evaluation | None]:
    """Confirm the class (its share is released) and, when stars are given, evaluate it: both or neither."""
    if stars is not None:
        _checked(stars, comment)  # refused before anything moves
    elif comment and comment.strip():
        raise InvalidRequest("a comment goes with stars: give 1 to 5 stars", field="stars", reason="stars")
    record, _ = confirm_class(
        session, caller=caller, institution_id=institution_id, class_id=class_id, idempotency_key=idempotency_key,
        now=now,
    )  # fmt: skip
    if stars is None:
        return record, None
    evaluation, _ = evaluate_class(
        session, caller=caller, institution_id=institution_id, class_id=class_id, stars=stars, comment=comment, now=now
    )
    return record, evaluation


@dataclass(frozen=True, slots=True)
class EvaluationSummary:
    count: int
    stars_total: int
    by_stars: dict[int, int]

    @property
    def average(self) -> Fraction | None:
        return Fraction(self.stars_total, self.count) if self.count else None


def evaluation_summary(session: Session, *, caller: Caller, institution_id: UUID) -> EvaluationSummary:
    """How an institution's classes were rated: how many evaluations, their stars, the average."""
    require_role(caller, Role.REGULATOR, Role.INSTITUTION)
    visible_institution(session, caller, institution_id)
    rows = session.execute(
        select(Evaluation.stars, func.count())
        .where(Evaluation.institution_id == institution_id)
        .group_by(Evaluation.stars)
    ).all()
    by_stars = {s: 0 for s in range(1, 6)} | {int(s): int(n) for s, n in rows}
    return EvaluationSummary(sum(by_stars.values()), sum(s * n for s, n in by_stars.items()), by_stars)


def list_evaluations(
    session: Session, *, caller: Caller, institution_id: UUID, cursor: str | None, limit: int
) -> Page[Evaluation]:
    """An institution's evaluations, oldest first, a page at a time."""
    require_role(caller, Role.REGULATOR, Role.INSTITUTION)
    visible_institution(session, caller, institution_id)
    query = select(Evaluation).where(Evaluation.institution_id == institution_id)
    return keyset(session, query, Evaluation.id, cursor=cursor, limit=limit)


def recent_evaluations(session: Session, *, caller: Caller, institution_id: UUID, limit: int = 10) -> list[Evaluation]:
    """An institution's newest evaluations (for its page)."""
    require_role(caller, Role.REGULATOR, Role.INSTITUTION)
    visible_institution(session, caller, institution_id)
    query = select(Evaluation).where(Evaluation.institution_id == institution_id)
    return list(session.scalars(query.order_by(Evaluation.created_at.desc(), Evaluation.id.desc()).limit(limit)))
