"""Hostile strings into every text field of every route (walked from the OpenAPI schema) and of every
statement format: never a 5xx, and a refused request changes nothing.

The routes' valid bodies come from the authorization matrix's table, so a new route is covered as soon as
it has a row there; each string a body, query or path takes is replaced in turn by each hostile string.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from tests.api.test_authorization_matrix import COUNTER, TABLE, TOKEN_OF, Row, target
from tests.world import Place, World, build_world

HOSTILE = {
    "nul": "a\x00b",
    "lone_surrogate": "a\ud800b",
    "long": "x" * 100_000,
    "control": "a\x01\x1b[31m\x7fb",
    "c1_control": "a\x85\x9bb",
    "right_to_left": "\u202eabc\u200f\u2067",
    "empty": "",
    "year_9999": "9999-12-31",
    "year_1": "0001-01-01",
}
TABLES = ("institution", "course", "contract", "guardian", "collection", "class_record", "refund_request")
TABLES += ("payout", "hold", "policy_version", "journal_transaction", "bank_statement", "alert", "audit_record")
TABLES += ("complaint", "complaint_message", "evaluation", "outbox_message")
Leaf = tuple[str | int, ...]


@pytest.fixture(scope="module")
def setup(engine: Engine) -> Iterator[tuple[TestClient, World, sessionmaker[Session]]]:
    db = sessionmaker(engine)
    with db.begin() as session:
        world = build_world(session)
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield client, world, db


def counts(db: sessionmaker[Session]) -> tuple[int, ...]:
    with db.begin() as s:
        return tuple(s.execute(text("SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in TABLES))).one())


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def string_leaves(spec: dict[str, Any], schema: dict[str, Any], at: Leaf = ()) -> Iterator[Leaf]:
    """Every place in a body the schema lets a string go (an array's first item stands for all)."""
    schema = resolve(spec, schema)
    for option in schema.get("anyOf", []) + schema.get("allOf", []):
        yield from string_leaves(spec, option, at)
    if schema.get("type") == "string":
        yield at
    for name, sub in schema.get("properties", {}).items():
        yield from string_leaves(spec, sub, (*at, name))
    if "items" in schema:
        yield from string_leaves(spec, schema["items"], (*at, 0))


def put(body: Any, leaf: Leaf, value: str) -> Any:
    """`body` with `value` at `leaf`, making the containers on the way."""
    body = copy.deepcopy(body) if body is not None else {}
    node = body
    for key, after in zip(leaf, (*leaf[1:], None), strict=True):
        if after is None:
            break
        if isinstance(node, list):
            while len(node) <= int(key):
                node.append({})
            node = node[int(key)]
        else:
            node = node.setdefault(key, [] if isinstance(after, int) else {})
    if isinstance(node, list):
        while len(node) <= int(leaf[-1]):
            node.append(None)
        node[int(leaf[-1])] = value
    else:
        node[leaf[-1]] = value
    return body


def role_for(row: Row) -> str:
    return sorted(row.roles)[0]


def send(client: TestClient, world: World, op: str, row: Row, *, body: Any = None, params: Any = None) -> Any:
    place = target(world, role_for(row), "own")
    headers = {
        "Authorization": f"Bearer {world.tokens[TOKEN_OF[role_for(row)]]}",
        "Idempotency-Key": f"hostile-{next(COUNTER)}",
        "Content-Type": "application/json",
    }
    path = call_path(row, place)
    if params:
        path += "?" + "&".join(f"{k}={in_url(v)}" for k, v in params.items())
    content = json.dumps(body).encode() if body is not None else None  # ASCII escapes carry lone surrogates
    return client.request(row.method, path, content=content, headers=headers)


def in_url(value: str) -> str:
    """Percent-encoded as sent on the wire (lone surrogates too); URLs are cut at 8,000 characters."""
    return quote(value[:8_000].encode("utf-8", "surrogatepass"), safe="")


def call_path(row: Row, place: Place) -> str:
    return row.path.format(
        jurisdiction=place.jurisdiction,
        institution_id=place.institution_id,
        course_id=place.course_id,
        contract_id=place.contract_id,
        collection_id=place.collection_id,
        transaction_id=place.transaction_id,
        class_id=place.class_id,
        disputed_class_id=place.disputed_class_id,
        request_id=place.refund_request_id,
        payout_id=place.payout_id,
        hold_id=place.hold_id,
        alert_id=place.alert_id,
        statement_id=place.statement_id,
        complaint_id=place.complaint_id,
        confirmed_class_id=place.confirmed_class_id,
    )


def judge(found: list[str], what: str, response: Any, before: tuple[int, ...], after: tuple[int, ...]) -> None:
    if response.status_code >= 500:
        found.append(f"{what}: {response.status_code} {response.text[:100]}")
    elif response.status_code >= 400 and after != before:
        found.append(f"{what}: refused with {response.status_code} yet changed {dict(zip(TABLES, after, strict=True))}")


def test_hostile_strings_in_every_json_field_and_query(setup: tuple[TestClient, World, sessionmaker[Session]]) -> None:
    client, world, db = setup
    spec = client.get("/openapi.json").json()
    found: list[str] = []
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            op = operation["operationId"]
            row = TABLE.get(op)
            if row is None or op in ("close_institution",):  # closing refunds the world away
                continue
            place = target(world, role_for(row), "own")
            schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            leaves = list(string_leaves(spec, schema)) if schema and row.body else []
            strings = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            for (name, hostile), leaf in [(h, leaf) for h in HOSTILE.items() for leaf in leaves]:
                before = counts(db)
                response = send(client, world, op, row, body=put(row.body(place) if row.body else {}, leaf, hostile))
                judge(found, f"{op} body {'.'.join(map(str, leaf))} {name}", response, before, counts(db))
            for (name, hostile), param in [(h, p) for h in HOSTILE.items() for p in strings]:
                before = counts(db)
                params = (row.query(place) if row.query else {}) | {param: hostile}
                body = row.body(place) if row.body else None
                response = send(client, world, op, row, body=body, params=params)
                judge(found, f"{op} query {param} {name}", response, before, counts(db))
    assert not found, "\n".join(found)


def test_hostile_strings_in_every_path(setup: tuple[TestClient, World, sessionmaker[Session]]) -> None:
    client, world, db = setup
    found: list[str] = []
    for op, row in TABLE.items():
        if "{" not in row.path:
            continue
        role = role_for(row)
        for name, hostile in HOSTILE.items():
            if name == "empty":
                continue
            place = target(world, role, "own")
            segment = row.path.split("{", 1)[1].split("}", 1)[0]
            path = call_path(row.__class__(row.method, row.path.replace("{" + segment + "}", "@", 1), row.roles), place)
            path = path.replace("@", in_url(hostile))
            headers = {"Authorization": f"Bearer {world.tokens[TOKEN_OF[role]]}", "Idempotency-Key": "h"}
            before = counts(db)
            response = client.request(row.method, path, headers=headers, json=row.body(place) if row.body else None)
            judge(found, f"{op} path {segment} {name}", response, before, counts(db))
    assert not found, "\n".join(found)


def statement_files(account: str, day: date, text_value: str) -> dict[str, bytes]:
    """One balanced statement per format with `text_value` wherever the format carries text."""
    ymd = day.strftime("%y%m%d")
    csv_text = (
        "account,date,type,amount,reference,counterparty,memo\n"
        f"{account},{day},opening,0.00,,,\n"
        f'{account},{day},credit,1.00,R{ymd}{text_value},"{text_value}","{text_value}"\n'
        f"{account},{day},closing,1.00,,,\n"
    )
    mt940 = (
        f":20:S{ymd}\n:25:{account}\n:28C:1/1\n:60F:C{ymd}CNY0,00\n"
        f":61:{ymd}{ymd[2:]}C1,00NTRFR{ymd}{text_value}//B1\n:86:{text_value}\n:62F:C{ymd}CNY1,00\n-\n"
    )
    camt = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>M{ymd}</MsgId><CreDtTm>{day}T02:00:00+08:00</CreDtTm></GrpHdr><Stmt><Id>S{ymd}</Id>"
        f"<Acct><Id><Othr><Id>{account}</Id></Othr></Id><Ccy>CNY</Ccy></Acct>"
        f'<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<Dt><Dt>{day}</Dt></Dt></Bal>"
        f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CNY">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<Dt><Dt>{day}</Dt></Dt></Bal>"
        f'<Ntry><Amt Ccy="CNY">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
        f"<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>B1</AcctSvcrRef>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>R{ymd}{text_value}</EndToEndId></Refs>"
        f"<RltdPties><Dbtr><Nm>{text_value}</Nm></Dbtr></RltdPties><RmtInf><Ustrd>{text_value}</Ustrd></RmtInf>"
        "</TxDtls></NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>"
    )
    encoded = {fmt: body.encode("utf-8", "surrogatepass") for fmt, body in (("csv", csv_text), ("mt940", mt940))}
    return encoded | {"camt053": camt.encode("utf-8", "surrogatepass")}


STATEMENT_HOSTILE = HOSTILE | {
    "csv_field_over_limit": "y" * 140_000,
    "xml_references": "&amp;&lt;&#0;&undefined;",
    "quote": "\"'<>&",
}
ENTITY_FILES = {  # an internal entity, an external one, and entities that expand a billion-fold
    "internal_entity": '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><Document>&e;</Document>',
    "external_entity": '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><Document>&e;</Document>',
    "billion_laughs": '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    "<Document>&c;</Document>",
}


def test_hostile_strings_in_every_statement_format(setup: tuple[TestClient, World, sessionmaker[Session]]) -> None:
    client, world, db = setup
    account = world.places["A"].custody_account
    headers = {"Authorization": f"Bearer {world.tokens['regulator']}", "Content-Type": "text/plain"}
    found: list[str] = []
    for name, hostile in STATEMENT_HOSTILE.items():
        day = date(2019, 1, 1) + timedelta(days=next(COUNTER))
        for fmt, data in statement_files(account, day, hostile).items():
            before = counts(db)
            response = client.post("/statements", params={"format": fmt}, content=data, headers=headers)
            judge(found, f"statement {fmt} {name}", response, before, counts(db))
    for name, document in ENTITY_FILES.items():
        before = counts(db)
        response = client.post("/statements", params={"format": "camt053"}, content=document.encode(), headers=headers)
        judge(found, f"statement camt053 {name}", response, before, counts(db))
        if response.status_code != 422:
            found.append(f"statement camt053 {name}: {response.status_code}, want 422")
    assert not found, "\n".join(found)


def test_the_statement_templates_are_valid_when_the_text_is_plain(
    setup: tuple[TestClient, World, sessionmaker[Session]],
) -> None:
    """The files above are refused for their hostile text, not for being malformed otherwise."""
    client, world, _ = setup
    headers = {"Authorization": f"Bearer {world.tokens['regulator']}", "Content-Type": "text/plain"}
    day = date(2018, 1, 1)
    for fmt, data in statement_files(world.places["A"].custody_account, day, "plain").items():
        day += timedelta(days=1)
        data = data.replace(date(2018, 1, 1).isoformat().encode(), day.isoformat().encode())
        data = data.replace(b"180101", day.strftime("%y%m%d").encode())
        response = client.post("/statements", params={"format": fmt}, content=data, headers=headers)
        assert response.status_code == 201, (fmt, response.text)
