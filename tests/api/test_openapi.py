"""The OpenAPI document as client generators read it: valid OpenAPI 3.1 with standard keywords only,
problems under application/problem+json, an example on every request body, a person's summary on every
operation; and a client generated from it type-checks and lives a contract's life against the service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any, get_args

import pytest
from fastapi.routing import APIRoute
from openapi_spec_validator import validate
from sqlalchemy import Engine

from api.app import create_app
from api.openapi import SUMMARIES
from escrow.access.callers import Role
from escrow.access.tokens import issue_token
from escrow.db.database import make_sessionmaker
from escrow.registry.jurisdictions import add_jurisdiction
from tests.factories import account_number, credit_code, phone
from tests.test_cli import env_with
from tests.test_logs import serving

NON_STANDARD = {"ge", "le", "gt", "lt"}  # pydantic's names, which JSON Schema does not know


def keywords(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "properties":  # property names are names, not keywords
                yield path, key
            yield from keywords(value, f"{path}/{key}")
    elif isinstance(node, list):
        for n, item in enumerate(node):
            yield from keywords(item, f"{path}/{n}")


@pytest.fixture(scope="module")
def document(engine: Engine) -> dict[str, Any]:
    return create_app(engine).openapi()


def operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for methods in document["paths"].values():
        yield from methods.values()


def test_the_document_is_valid_openapi_3_1_with_standard_keywords_only(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    leftovers = [f"{path}/{key}" for path, key in keywords(document["components"]) if key in NON_STANDARD]
    assert not leftovers, leftovers
    schemas = document["components"]["schemas"]
    assert schemas["CollectionIn"]["properties"]["amount_fen"]["exclusiveMinimum"] == 0


def test_problems_are_documented_as_problem_json_with_their_schema(document: dict[str, Any]) -> None:
    for operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (operation["operationId"], status)
        if operation["operationId"] != "get_health":
            assert "503" in operation["responses"], operation["operationId"]


def test_every_status_a_route_answers_is_documented(document: dict[str, Any]) -> None:
    statement_import = document["paths"]["/statements"]["post"]["responses"]
    assert {"200", "201"} <= set(statement_import)
    batch = document["paths"]["/institutions/{institution_id}/collection-batches"]["post"]["responses"]
    assert {"200", "201"} <= set(batch)


def test_summaries_and_tags_are_written_for_people(document: dict[str, Any]) -> None:
    ids = [o["operationId"] for o in operations(document)]
    assert sorted(ids) == sorted(SUMMARIES)
    for operation in operations(document):
        generated = operation["operationId"].replace("_", " ").title()
        assert operation["summary"] not in (generated, ""), operation["operationId"]
    described = {t["name"] for t in document["tags"] if t.get("description")}
    assert {tag for o in operations(document) for tag in o["tags"]} <= described


def test_every_request_body_has_an_example_the_route_accepts(engine: Engine, document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    bodies = 0
    for route in api_routes(create_app(engine).routes):
        if not route.dependant.body_params:
            continue
        (body,) = route.dependant.body_params
        model = body.field_info.annotation
        if isinstance(model, types.UnionType):  # an optional body: its model is the member that is not None
            (model,) = (member for member in get_args(model) if member is not type(None))
        assert model is not None and hasattr(model, "model_validate_json"), route.path
        examples = schemas[model.__name__].get("examples")
        assert examples, f"{route.operation_id}: no example"
        for example in examples:
            model.model_validate_json(json.dumps(example))  # as JSON, strictly: the example is a valid body
        bodies += 1
    assert bodies >= 18
    statement_body = document["paths"]["/statements"]["post"]["requestBody"]["content"]
    assert statement_body["text/csv"]["example"].startswith("account,date,type")


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every operation's route, inside the routers the app includes (the console's pages are not operations)."""
    for route in routes:
        if isinstance(route, APIRoute):
            if route.include_in_schema:
                yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


@pytest.fixture(scope="module")
def client_package(document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The document's client, generated by openapi-python-client, and type-checked by mypy (strict)."""
    folder = tmp_path_factory.mktemp("client")
    spec = folder / "openapi.json"
    spec.write_text(json.dumps(document))
    tools = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"}  # its hooks run ruff
    generated = subprocess.run(
        [
            tools / "openapi-python-client",
            "generate",
            "--path",
            spec,
            "--output-path",
            folder / "escrow_client",
            "--meta",
            "none",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "will not be generated" not in generated.stdout, generated.stdout
    # client.py is the generator's own template (not made from the document); its context manager's
    # *args does not satisfy httpx's stubs under mypy 1.x and later
    (folder / "mypy.ini").write_text(
        "[mypy]\nstrict = True\n[mypy-escrow_client.client]\ndisable_error_code = arg-type\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "escrow_client"],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    assert checked.returncode == 0, checked.stdout
    return folder


@pytest.mark.generated_client
def test_a_generated_client_lives_a_contract_from_signing_to_refund(
    client_package: Path, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    sys.path.insert(0, str(client_package))
    try:
        with (
            (tmp_path / "service.log").open("w") as log,
            serving(env_with(ESCROW_DATABASE_URL=database_url), log) as base,
            ExitStack() as clients,
        ):
            live_a_contract(base, engine, clients)
    finally:
        sys.path.remove(str(client_package))


def live_a_contract(base: str, engine: Engine, clients: ExitStack) -> None:
    from escrow_client import AuthenticatedClient
    from escrow_client.api.consumption import approve_refund, confirm_class, record_class, request_refund
    from escrow_client.api.contracts import get_contract_balance, register_collection, sign_contract
    from escrow_client.api.institutions import create_course, register_institution
    from escrow_client.models import (
        ApprovalIn,
        ClassIn,
        CollectionIn,
        ContractIn,
        CourseCategory,
        CourseIn,
        GuardianIn,
        InstitutionIn,
        Problem,
        ReasonIn,
    )

    keys = (f"client-{n}" for n in count())

    def client_for(token: str) -> AuthenticatedClient:
        return clients.enter_context(AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True))

    with make_sessionmaker(engine).begin() as s:
        add_jurisdiction(s, code="310117", name="Songjiang")
        _, regulator_token = issue_token(s, role=Role.REGULATOR, jurisdictions=["310117"])
    regulator = clients.enter_context(
        AuthenticatedClient(base_url=base, token=regulator_token, raise_on_unexpected_status=True)
    )
    institution = register_institution.sync(
        client=regulator,
        body=InstitutionIn(
            name="Songjiang Bright Minds",
            credit_code=credit_code(),
            jurisdiction_code="310117",
            custody_bank="bank_songjiang",
            custody_account=account_number(),
        ),
    )
    assert not isinstance(institution, Problem) and institution is not None
    with make_sessionmaker(engine).begin() as s:
        _, school_token = issue_token(s, role=Role.INSTITUTION, institution_id=institution.id)
    school = clients.enter_context(
        AuthenticatedClient(base_url=base, token=school_token, raise_on_unexpected_status=True)
    )
    course = create_course.sync(
        institution.id,
        client=school,
        body=CourseIn(
            name="Chess",
            category=CourseCategory.NON_SUBJECT,
            unit_price_fen=10_000,
        ),
    )
    assert not isinstance(course, Problem) and course is not None
    mother = phone()
    today = datetime.now(UTC).date()
    contract = sign_contract.sync(
        institution.id,
        client=school,
        body=ContractIn(
            course_id=course.id,
            guardian=GuardianIn(name="Zhao Min", phone=mother),
            student_name="Zhao Lei",
            hours_bought=20,
            term_start=today,
            term_end=today + timedelta(days=60),
        ),
    )
    assert not isinstance(contract, Problem) and contract is not None
    over = register_collection.sync(
        institution.id,
        contract.id,
        client=school,
        idempotency_key=next(keys),
        body=CollectionIn(amount_fen=900_000, bank_reference="SJ-0000"),
    )
    assert isinstance(over, Problem) and over.status == 422, over  # a problem is parsed as one
    paid = register_collection.sync(
        institution.id,
        contract.id,
        client=school,
        idempotency_key=next(keys),
        body=CollectionIn(amount_fen=200_000, bank_reference="SJ-0001"),
    )
    assert not isinstance(paid, Problem) and paid is not None and paid.amount_fen == 200_000
    given = record_class.sync(
        institution.id, contract.id, client=school, idempotency_key=next(keys), body=ClassIn(hours=2)
    )
    assert not isinstance(given, Problem) and given is not None
    with make_sessionmaker(engine).begin() as s:
        _, parent_token = issue_token(s, role=Role.PARENT, guardian_phone=mother)
    parent = clients.enter_context(
        AuthenticatedClient(base_url=base, token=parent_token, raise_on_unexpected_status=True)
    )
    confirmed = confirm_class.sync(institution.id, given.id, client=parent, idempotency_key=next(keys))
    assert not isinstance(confirmed, Problem) and confirmed is not None and confirmed.amount_fen == 20_000
    asked = request_refund.sync(institution.id, contract.id, client=parent, body=ReasonIn(reason="moving away"))
    assert not isinstance(asked, Problem) and asked is not None
    approved = approve_refund.sync(
        institution.id, asked.id, client=school, body=ApprovalIn(reason="moving away"), idempotency_key=next(keys)
    )
    assert not isinstance(approved, Problem) and approved is not None and approved.amount_fen == 180_000
    held = get_contract_balance.sync(institution.id, contract.id, client=parent)
    assert not isinstance(held, Problem) and held is not None and held.held_fen == 0
