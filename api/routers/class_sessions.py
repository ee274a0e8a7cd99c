"""A class session: one class for each student present, recorded all or none under one idempotency key."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StrictInt

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented, mark_replayed
from api.routers.contracts import IdempotencyKeyHeader
from api.schemas import WHOLE, ClassOut, Day, Request, example
from escrow.flows import class_sessions

router = APIRouter(tags=["consumption"], route_class=ApiRoute)


class ClassSessionIn(Request):
    model_config = example(
        course_id="01a23371-cf6d-7a36-b3ad-2ac2ffe89f7c",
        given_on="2027-03-06",
        hours=2,
        contract_ids=["01a23371-d0a4-7c11-9a2e-5b8f0c3d4e21", "01a23371-d0a4-7c11-9a2e-5b8f0c3d4e22"],
    )

    course_id: UUID
    given_on: Day | None = Field(default=None, description="the day the class was given; default today")
    hours: Annotated[StrictInt, Field(ge=1, le=24), WHOLE]
    contract_ids: list[UUID] = Field(
        min_length=1, max_length=class_sessions.MAX_STUDENTS, description="the students present, by their contracts"
    )


class ClassSessionOut(BaseModel):
    course_id: UUID
    given_on: date
    hours: int
    classes: list[ClassOut] = Field(description="one per student, pending until the parent confirms")


@router.post(
    "/institutions/{institution_id}/class-sessions",
    status_code=201,
    operation_id="record_class_session",
    responses=documented(403, 404, 409),
)
def record_class_session(
    institution_id: UUID,
    body: ClassSessionIn,
    key: IdempotencyKeyHeader,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    response: Response,
) -> ClassSessionOut:
    """Record a class for every student present, or for none: refused (409) with each student's refusal named."""
    done, replayed = class_sessions.record_class_session(
        session,
        caller=caller,
        institution_id=institution_id,
        course_id=body.course_id,
        given_on=body.given_on,
        hours=body.hours,
        contract_ids=body.contract_ids,
        idempotency_key=key,
        now=now,
    )
    mark_replayed(response, replayed)
    return ClassSessionOut(
        course_id=done.course_id,
        given_on=done.given_on,
        hours=done.hours,
        classes=[ClassOut.model_validate(c) for c in done.classes],
    )
