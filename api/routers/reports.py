"""Regulator reports: held funds and their age per institution at any instant, the contracts behind them,
as JSON, CSV or XLSX."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from api.auth import Now
from api.deps import ApiRoute, CallerDep, SessionDep
from api.routers import documented
from api.routers.contracts import AsOf
from api.routers.institutions import Cursor, Limit
from api.schemas import HeldContractOut, HeldContractsOut, HeldFundsAgingOut, HeldFundsOut
from escrow.db.paging import DEFAULT_LIMIT
from escrow.supervision import exports, reports
from escrow.supervision.reports import Report

router = APIRouter(prefix="/reports", tags=["reports"], route_class=ApiRoute)


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    XLSX = "xlsx"


Format = Annotated[
    ExportFormat, Query(alias="format", description="json (default), csv (UTF-8 with BOM) or xlsx; fen and yuan")
]
JurisdictionCode = Annotated[str | None, Query(pattern=r"^[0-9]{6}$", description="only this jurisdiction")]
FILES: dict[int | str, dict[str, Any]] = {
    200: {"content": {exports.CSV_MEDIA_TYPE: {}, exports.XLSX_MEDIA_TYPE: {}}},
}


@router.get(
    "/held-funds", operation_id="get_held_funds", response_model=HeldFundsOut, responses={**FILES, **documented(403)}
)
def get_held_funds(
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    as_of: AsOf = None,
    jurisdiction_code: JurisdictionCode = None,
    file_format: Format = ExportFormat.JSON,
) -> HeldFundsOut | Response:
    """Per institution of your jurisdictions: held for families, releasable, payout pending, refund payable and
    custody cash, as of an instant; with totals per jurisdiction and a grand total."""
    report = reports.held_funds(session, caller=caller, as_of=as_of, now=now, jurisdiction_code=jurisdiction_code)
    if file_format is not ExportFormat.JSON:
        return _file(exports.report_table(report, "held funds"), file_format, "held-funds", report.as_of)
    return HeldFundsOut.model_validate(_report_json(report, contracts=True))


@router.get(
    "/held-funds/aging",
    operation_id="get_held_funds_aging",
    response_model=HeldFundsAgingOut,
    responses={**FILES, **documented(403)},
)
def get_held_funds_aging(
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    as_of: AsOf = None,
    jurisdiction_code: JurisdictionCode = None,
    file_format: Format = ExportFormat.JSON,
) -> HeldFundsAgingOut | Response:
    """Held funds by age (0-30, 31-90, over 90 days) as of an instant: refunds and classes use up the oldest
    collections first, so what is held is the newest."""
    report = reports.held_funds_aging(session, caller=caller, as_of=as_of, now=now, jurisdiction_code=jurisdiction_code)
    if file_format is not ExportFormat.JSON:
        return _file(exports.report_table(report, "held funds aging"), file_format, "held-funds-aging", report.as_of)
    return HeldFundsAgingOut.model_validate(_report_json(report, contracts=False))


@router.get(
    "/institutions/{institution_id}/contracts",
    operation_id="list_held_contracts",
    response_model=HeldContractsOut,
    responses={**FILES, **documented(403, 404)},
)
def list_held_contracts(
    institution_id: UUID,
    session: SessionDep,
    caller: CallerDep,
    now: Now,
    as_of: AsOf = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
    file_format: Format = ExportFormat.JSON,
) -> HeldContractsOut | Response:
    """An institution's contracts with what was collected for each and what it held, as of an instant.
    CSV and XLSX hold every contract; cursor and limit page the JSON."""
    instant = as_of or now
    if file_format is not ExportFormat.JSON:
        rows = reports.every_held_contract(session, caller=caller, institution_id=institution_id, as_of=as_of)
        table = exports.contracts_table(rows, instant.isoformat())
        return _file(table, file_format, f"contracts-{institution_id}", instant)
    page = reports.held_contracts(
        session, caller=caller, institution_id=institution_id, as_of=as_of, cursor=cursor, limit=limit
    )
    items = [
        HeldContractOut(
            contract_id=c.contract_id,
            course_id=c.course_id,
            student_name=c.student_name,
            status=c.status,
            signed_at=c.signed_at,
            collected_fen=c.collected_fen,
            held_fen=c.held_fen,
            transactions_path=f"/institutions/{institution_id}/contracts/{c.contract_id}/transactions",
        )
        for c in page.items
    ]
    return HeldContractsOut(institution_id=institution_id, as_of=instant, items=items, next_cursor=page.next_cursor)


def _report_json(report: Report, *, contracts: bool) -> dict[str, Any]:
    def figures(fen: dict[str, int]) -> dict[str, int]:
        return {f"{column}_fen": value for column, value in fen.items()}

    items = [
        {
            "institution_id": row.institution_id,
            "institution_name": row.name,
            "jurisdiction_code": row.jurisdiction_code,
            **figures(row.fen),
            **({"contracts_path": f"/reports/institutions/{row.institution_id}/contracts"} if contracts else {}),
        }
        for row in report.institutions
    ]
    return {
        "as_of": report.as_of,
        "items": items,
        "jurisdictions": [
            {"jurisdiction_code": code, **figures(fen)} for code, fen in report.by_jurisdiction().items()
        ],
        "total": figures(report.total()),
    }


def _file(table: exports.Table, file_format: ExportFormat, name: str, instant: datetime) -> Response:
    stamp = instant.isoformat(timespec="seconds").replace(":", "")
    body, media_type = (
        (exports.to_csv(table), exports.CSV_MEDIA_TYPE + "; charset=utf-8")
        if file_format is ExportFormat.CSV
        else (exports.to_xlsx(table), exports.XLSX_MEDIA_TYPE)
    )
    disposition = f'attachment; filename="{name}-{stamp}.{file_format.value}"'
    return Response(body, media_type=media_type, headers={"Content-Disposition": disposition})
