"""The OpenAPI document as client generators read it: a summary per operation, a description per tag,
problems under `application/problem+json` with their schema, and every status a route answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}

TAGS = [
    {"name": "health", "description": "Whether the process is up and its database ready; no token needed."},
    {"name": "policy", "description": "Jurisdictions and their policy: caps, release cadence, deadlines, versioned."},
    {"name": "institutions", "description": "Institutions, their courses, and what each holds and owes."},
    {"name": "contracts", "description": "Contracts with families and the collections paid into escrow under them."},
    {"name": "consumption", "description": "Classes given, confirmed or disputed, and refund requests."},
    {"name": "payouts and holds", "description": "Money leaving custody, regulator holds, and closing an institution."},
    {"name": "alerts", "description": "Risk and reconciliation alerts raised by the scheduled jobs, worked through."},
    {"name": "reports", "description": "Held funds per institution at any instant, their age, the contracts behind."},
    {"name": "bank statements", "description": "The custody bank's daily statements, imported and reconciled."},
    {"name": "calendar", "description": "The official calendar of holidays and make-up workdays, year by year."},
    {
        "name": "complaints and evaluations",
        "description": "Families' complaints to the regulator and their handling; evaluations of classes.",
    },
]

SUMMARIES = {
    "get_alert": "Get an alert",
    "list_calendar_years": "List the years of official calendar data",
    "load_calendar_year": "Load a year's official holidays and make-up workdays",
    "settle_closed_institution": "Pay a closed institution what it earned",
    "get_health": "Check the process is up",
    "get_readiness": "Check the database is reachable and migrated",
    "list_jurisdictions": "List your jurisdictions",
    "list_policy_versions": "List a jurisdiction's policy versions",
    "set_policy": "Set a policy version",
    "get_policy_in_force": "Get the policy in force",
    "register_institution": "Register an institution",
    "list_institutions": "List institutions",
    "get_institution": "Get an institution",
    "get_institution_balances": "Get what an institution holds and owes",
    "create_course": "Offer a course",
    "list_courses": "List an institution's courses",
    "get_course": "Get a course",
    "sign_contract": "Sign a contract",
    "list_contracts": "List your contracts",
    "get_contract": "Get a contract",
    "get_contract_balance": "Get what is held under a contract",
    "register_collection": "Register a collection",
    "list_collections": "List a contract's collections",
    "get_collection": "Get a collection",
    "list_contract_transactions": "List a contract's transactions",
    "list_transactions": "List an institution's transactions",
    "get_transaction": "Get a transaction",
    "import_collections": "Register up to 1,000 collections at once",
    "record_class": "Record a class",
    "record_class_session": "Record a class for a group of students at once",
    "list_classes": "List a contract's classes",
    "confirm_class": "Confirm a class",
    "dispute_class": "Dispute a class",
    "resolve_dispute": "Resolve a disputed class",
    "request_refund": "Request a refund",
    "list_refund_requests": "List refund requests",
    "approve_refund": "Approve a refund request",
    "reject_refund": "Reject a refund request",
    "request_payout": "Request a payout of what was released",
    "list_payouts": "List payouts",
    "confirm_payout_executed": "Confirm the bank executed a payout",
    "report_payout_failed": "Report a payout the bank could not execute",
    "place_hold": "Place a hold on an institution",
    "list_holds": "List an institution's holds",
    "lift_hold": "Lift a hold",
    "close_institution": "Close an institution and refund every family",
    "list_alerts": "List alerts",
    "acknowledge_alert": "Acknowledge an alert",
    "resolve_alert": "Resolve an alert",
    "get_held_funds": "Report held funds per institution",
    "get_held_funds_aging": "Report held funds by age",
    "list_held_contracts": "Report an institution's contracts and what each held",
    "import_statements": "Import a bank statement file",
    "list_statements": "List bank statements",
    "get_statement": "Get a bank statement with its lines",
    "submit_complaint": "Complain about an institution",
    "list_complaints": "List complaints",
    "get_complaint": "Get a complaint with its thread",
    "assign_complaint": "Assign a complaint to a regulator",
    "reply_to_complaint": "Reply in a complaint's thread",
    "close_complaint": "Close a complaint",
    "evaluate_class": "Evaluate a confirmed class",
    "list_evaluations": "List an institution's evaluations with the average",
    "preview_refund": "Preview what a refund would pay back",
}

# answers a route gives besides its decorator's: a replayed import is a 200 with the same body
REPLAYED_200 = {"import_statements": "every statement in the file had been imported before: nothing changed"}
UNAVAILABLE = "the database is unreachable or restarting; retry after Retry-After seconds (never applied twice)"
CSV_EXAMPLE = (
    "account,date,type,amount,reference,counterparty,memo\n"
    "6222201263163213,2027-03-01,opening,0.00,,,\n"
    "6222201263163213,2027-03-01,credit,6000.00,ICBC20270301-0001,Li Hua,tuition\n"
    "6222201263163213,2027-03-01,closing,6000.00,,,\n"
)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, built once."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes, tags=TAGS)
    for operations in document["paths"].values():
        for operation in operations.values():
            _complete(operation)
    app.openapi_schema = document
    return document


def _complete(operation: dict[str, Any]) -> None:
    name = operation["operationId"]
    operation["summary"] = SUMMARIES.get(name, operation.get("summary", ""))  # a test app's own routes keep theirs
    responses = operation["responses"]
    if name != "get_health":
        responses.setdefault("503", {"description": UNAVAILABLE})
    for response in responses.values():
        content = response.get("content", {})
        if "application/problem+json" in content or response is responses.get("503"):
            response["content"] = {"application/problem+json": PROBLEM}
    if name in REPLAYED_200:
        success = responses["201"]
        responses["200"] = {"description": REPLAYED_200[name], "content": success["content"]}
    body = operation.get("requestBody", {}).get("content", {})
    if "text/csv" in body:
        body["text/csv"]["example"] = CSV_EXAMPLE
        # any media type is read as the file's bytes: generators send those as application/octet-stream
        body["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
