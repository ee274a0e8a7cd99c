"""Collections: one at a time (a family paid at the counter), or a CSV file of many (the bank's day), checked
line by line and registered all or none through the batch use case; a template lists what is left to collect."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

import api.web.desk.collection_file as collection_file
from api.auth import Now
from api.deps import SessionDep
from api.web.desk.common import (
    FormDep,
    Translate,
    beijing_instant,
    desk_page,
    fen_of,
    institution_of,
    new_key,
    to_uuid,
    translator,
)
from api.web.desk.contracts import contract_view
from api.web.formats import yuan
from api.web.routing import PageRoute
from api.web.sessions import CsrfDep, PersonDep
from escrow.access.audit import all_or_nothing, rehearsed
from escrow.access.users import SignedIn
from escrow.db.records import Collection
from escrow.errors import (
    Conflict,
    EscrowError,
    IdempotencyConflict,
    InstitutionOnHold,
    InvalidRequest,
    NotFound,
)
from escrow.flows.batches import MAX_ITEMS, BatchKeyReused, BatchRefused, Imported, import_collections
from escrow.flows.collections import collect
from escrow.flows.desk import desk_contracts, recent_collections
from escrow.ledger.idempotency import Outcome
from escrow.supervision.exports import CSV_MEDIA_TYPE

router = APIRouter(prefix="/desk/collections", include_in_schema=False, route_class=PageRoute)
_REFERENCE = re.compile(r"^[A-Za-z0-9_./:-]{1,64}$")
ONE = ("contract_id", "amount", "bank_reference", "collected_at")


@router.get("")
def collections_page(request: Request, session: SessionDep, person: PersonDep) -> Response:
    done = {k: request.query_params.get(k, "") for k in ("done", "student", "amount", "reference")}
    return _page(request, session, person, {}, {}, done=done)


def _page(
    request: Request,
    session: Session,
    person: SignedIn,
    errors: dict[str, str],
    values: dict[str, str],
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    institution_id = institution_of(person)
    context = {
        "contracts": desk_contracts(session, caller=person.caller, institution_id=institution_id, to_collect=True),
        "recent": recent_collections(session, caller=person.caller, institution_id=institution_id),
        "errors": errors,
        "values": values,
        "key": values.get("key") or new_key("collection"),
        "row": None,
        "upload": None,
        "done": {},
        **context,
    }
    return desk_page(request, session, person, "desk/collections.html", context, status)


@router.post("")
def collect_submit(
    request: Request, session: SessionDep, person: PersonDep, csrf: CsrfDep, now: Now, form: FormDep
) -> Response:
    """One collection; refused, the form comes back with the reason beside its field and nothing kept."""
    _ = translator(request)
    values = {name: form.get(name, "").strip() for name in (*ONE, "key", "back")}
    errors, reading = _read_one(values, _, now)
    if not errors:
        try:
            done = all_or_nothing(session, lambda: _collect(session, person, reading, values["key"], now))
        except (Conflict, InvalidRequest, NotFound) as refused:
            errors = _one_refused(refused, _)
        else:
            return _collected(values["back"], done.value)
    if values["back"] == "contract" and reading["contract_id"] is not None:
        return contract_view(request, session, person, reading["contract_id"], errors=errors, values=values)
    return _page(request, session, person, errors, values, status=422)


def _read_one(values: dict[str, str], _: Translate, now: datetime) -> tuple[dict[str, str], dict[str, Any]]:
    errors: dict[str, str] = {}
    reading: dict[str, Any] = {
        "contract_id": to_uuid(values["contract_id"]),
        "amount": fen_of(values["amount"]),
        "bank_reference": values["bank_reference"],
        "collected_at": beijing_instant(values["collected_at"]) if values["collected_at"] else None,
    }
    if reading["contract_id"] is None:
        errors["contract_id"] = _("Choose a contract.")
    if reading["amount"] is None:
        errors["amount"] = _("Give a positive amount in yuan, for example 6000.00.")
    if not _REFERENCE.match(values["bank_reference"]):
        errors["bank_reference"] = _("Give the bank's reference: 1 to 64 letters, digits or _ . / : -")
    if values["collected_at"] and reading["collected_at"] is None:
        errors["collected_at"] = _("Give a date and time, for example 2026-12-01 10:30 (Beijing time).")
    elif reading["collected_at"] is not None and reading["collected_at"] > now:
        errors["collected_at"] = _("This time is in the future.")
    if not values["key"]:
        errors["form"] = _("This form has expired. Please try again.")
    return errors, reading


def _collect(
    session: Session, person: SignedIn, reading: dict[str, Any], key: str, now: datetime
) -> Outcome[Collection]:
    return collect(
        session,
        caller=person.caller,
        institution_id=institution_of(person),
        contract_id=reading["contract_id"],
        amount_fen=reading["amount"],
        bank_reference=reading["bank_reference"],
        collected_at=reading["collected_at"],
        idempotency_key=key,
        now=now,
    )


def _one_refused(refused: EscrowError, _: Translate) -> dict[str, str]:
    """The use case's refusal beside the field it concerns (several, one after the other)."""
    if isinstance(refused, InstitutionOnHold):
        return {"form": _("A hold is in place on your institution: new collections are blocked.")}
    if isinstance(refused, IdempotencyConflict):
        return {"form": _("This form was already used to register a collection: reload the page to register another.")}
    errors: dict[str, str] = {}
    for detail in refused.context.get("problems") or [refused.detail]:
        field, message, _lang = collection_file.refusal_message(str(detail), _)
        field = field or "form"
        errors[field] = f"{errors[field]} {message}" if field in errors else message
    return errors


def _collected(back: str, collection: Collection) -> Response:
    if back == "contract":
        return RedirectResponse(f"/desk/contracts/{collection.contract_id}?done=collected", status_code=303)
    query = urlencode({"done": "one", "amount": collection.amount_fen, "reference": collection.bank_reference})
    return RedirectResponse(f"/desk/collections?{query}", status_code=303)


@router.post("/upload")
def upload_submit(
    request: Request,
    session: SessionDep,
    person: PersonDep,
    csrf: CsrfDep,
    now: Now,
    file: Annotated[UploadFile | None, File()] = None,
    mode: Annotated[str, Form()] = "check",
) -> Response:
    """A CSV of collections: checked (nothing kept), or registered all or none; every bad line named."""
    _ = translator(request)
    data = file.file.read(collection_file.MAX_FILE_BYTES + 1) if file is not None else b""
    name = file.filename or "" if file is not None else ""
    lines, problems = collection_file.read_file(data, _, now)
    problems = sorted(problems + _own_contracts(session, person, lines, _), key=lambda p: p.line)
    imported: list[Imported] = []
    if not problems:
        imported, problems = _import(session, person, lines, now, keep=mode == "register", _=_)
    total = sum(line.amount_fen for line in lines)
    upload = {
        "name": name,
        "mode": mode,
        "lines": lines,
        "problems": problems,
        "imported": imported,
        "total_fen": total,
    }
    return _page(request, session, person, {}, {}, upload=upload, status=422 if problems else 200)


def _own_contracts(
    session: Session, person: SignedIn, lines: list[collection_file.Line], _: Translate
) -> list[collection_file.LineProblem]:
    wanted = {line.contract_id for line in lines}
    rows = desk_contracts(
        session, caller=person.caller, institution_id=institution_of(person), contract_ids=wanted, limit=MAX_ITEMS
    )
    students = {row.contract.id: row.contract.student_name for row in rows}
    return collection_file.student_problems(lines, students, _)


def _import(
    session: Session, person: SignedIn, lines: list[collection_file.Line], now: datetime, *, keep: bool, _: Translate
) -> tuple[list[Imported], list[collection_file.LineProblem]]:
    """The batch use case on the file's lines: kept all or none, or rehearsed and undone (a check)."""

    def batch() -> list[Imported]:
        items = [line.item() for line in lines]
        return import_collections(
            session, caller=person.caller, institution_id=institution_of(person), items=items, now=now
        )

    try:
        return (all_or_nothing(session, batch) if keep else rehearsed(session, batch)), []
    except (BatchRefused, BatchKeyReused) as refused:
        return [], collection_file.batch_problems(refused.problems, lines, _)
    except InstitutionOnHold:
        message = _("A hold is in place on your institution: new collections are blocked.")
        return [], [collection_file.LineProblem(1, "", message)]


@router.get("/template.csv")
def template_file(request: Request, session: SessionDep, person: PersonDep) -> Response:
    """The contracts in force with something left to collect, as the file to fill in (UTF-8 with a BOM)."""
    rows = desk_contracts(session, caller=person.caller, institution_id=institution_of(person), to_collect=True)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["contract_id", "student", "course", "left_to_collect", "amount", "bank_reference", "collected_at"])
    for row in rows:
        writer.writerow(
            [
                row.contract.id,
                _inert(row.contract.student_name),
                _inert(row.course_name),
                yuan(row.left_to_collect_fen).replace(",", ""),
                "",
                "",
                "",
            ]
        )
    headers = {"Content-Disposition": 'attachment; filename="collections-template.csv"'}
    return Response(out.getvalue().encode("utf-8-sig"), media_type=CSV_MEDIA_TYPE, headers=headers)


def _inert(text: str) -> str:
    """Text a spreadsheet would run as a formula is kept as text."""
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text
