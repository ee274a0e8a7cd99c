"""Request and response shapes. Requests refuse unknown fields, so ids, statuses and balances
cannot be assigned by a caller; numbers are strict integers with bounds."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    StringConstraints,
)

from escrow.rules.policy import CourseCategory, ReleaseCadence, SupervisionModel

T = TypeVar("T")


def _whole(value: object) -> object:
    """JSON has one number type: 100.0 is the integer 100, 100.5 is not (and strings stay strings)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _not_a_number(value: object) -> object:
    """Instants and dates are ISO 8601 text, never bare numbers read as Unix timestamps."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value.strip())):
        raise ValueError("give an ISO 8601 date or time, such as 2026-01-31 or 2026-01-31T16:00:00+08:00")
    return value


# Bounds go before the validator, as in Annotated[StrictInt, Field(ge=1), WHOLE]: bounds given after a
# before-validator stay out of the integer's schema and reach the OpenAPI as non-standard `ge`/`le`/`gt`
WHOLE = BeforeValidator(_whole)
Whole = Annotated[StrictInt, WHOLE]


def _plausible(value: datetime) -> datetime:
    """Offsets real clocks use (within 14 hours of UTC) and years the books can hold."""
    offset = value.utcoffset()
    if offset is not None and abs(offset.total_seconds()) > 14 * 3600:
        raise ValueError("the time zone offset must be within 14 hours of UTC, such as +08:00")
    if not 1900 <= value.year <= 9998:
        raise ValueError("the year must be between 1900 and 9998")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_plausible)]
Day = Annotated[date, BeforeValidator(_not_a_number)]
MAX_FEN = 10**12  # ten billion yuan: far above any real tuition, far below overflow
Fen = Annotated[StrictInt, Field(gt=0, le=MAX_FEN, description="an amount in fen (1/100 yuan)"), WHOLE]
Hours = Annotated[StrictInt, Field(ge=0, le=10_000), WHOLE]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def example(**fields: JsonValue) -> ConfigDict:
    """A request model's config with one example body (shown in /docs, read by client generators)."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [fields]})


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="stable machine-readable reason")
    problems: list[str | dict[str, str]] | None = Field(
        default=None,
        description="every problem found, not only the first: sentences, or {field, message} for a malformed request",
    )


class PageOf(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class PolicyIn(Request):
    model_config = example(effective_date="2027-01-01", max_months=3, max_hours=60, release_cadence="weekly")

    effective_date: Day
    max_months: Annotated[StrictInt, Field(ge=1, le=36), WHOLE] = 3
    max_hours: Annotated[StrictInt, Field(ge=1, le=1000), WHOLE] = 60
    max_non_subject_fen: Fen = 500_000
    guide_price_margin_bp: Annotated[StrictInt, Field(ge=0, le=10_000), WHOLE] = 1_000
    confirm_after_working_days: Annotated[StrictInt, Field(ge=1, le=100), WHOLE] = 15
    refund_response_working_days: Annotated[StrictInt, Field(ge=1, le=100), WHOLE] = 5
    max_class_backdate_days: Annotated[StrictInt, Field(ge=0, le=90), WHOLE] = 7
    max_term_start_past_days: Annotated[StrictInt, Field(ge=0, le=366), WHOLE] = 30
    release_cadence: ReleaseCadence = ReleaseCadence.PER_CLASS
    release_tranches_pct: list[Annotated[StrictInt, Field(ge=1, le=100), WHOLE]] = Field(
        default_factory=list, max_length=12
    )
    default_supervision_model: SupervisionModel = SupervisionModel.CUSTODY
    alert_thresholds: dict[str, Annotated[StrictInt, Field(ge=0, le=10**9), WHOLE]] = Field(default_factory=dict)


class PolicyOut(Response):
    jurisdiction_code: str
    effective_date: date | None
    max_months: int
    max_hours: int
    max_non_subject_fen: int
    guide_price_margin_bp: int
    confirm_after_working_days: int
    refund_response_working_days: int
    max_class_backdate_days: int = Field(description="how many days back a class may be dated when recorded")
    max_term_start_past_days: int = Field(description="how many days before signing a term may have started")
    release_cadence: ReleaseCadence
    release_tranches_pct: list[int]
    default_supervision_model: SupervisionModel
    alert_thresholds: dict[str, int]


class JurisdictionOut(Response):
    code: str
    name: str


class InstitutionIn(Request):
    model_config = example(
        name="Xuhui Future Education",
        credit_code="52310104B064J2UK7L",
        jurisdiction_code="310104",
        custody_bank="icbc_xuhui",
        custody_account="6222201263163213",
    )

    name: Name
    credit_code: Annotated[str, StringConstraints(min_length=18, max_length=18)]
    jurisdiction_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
    custody_bank: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{2,40}$")]
    custody_account: Annotated[str, StringConstraints(pattern=r"^[0-9]{8,32}$")]
    supervision_model: SupervisionModel | None = None


class InstitutionOut(Response):
    id: UUID
    name: str
    credit_code: str
    jurisdiction_code: str
    supervision_model: SupervisionModel
    custody_bank: str
    custody_account: str
    status: str = Field(
        description="active, on_hold, closing (closure began: every family's refund instructed, not yet all paid)"
        " or closed"
    )
    created_at: datetime


class CourseIn(Request):
    model_config = example(
        name="Grade 5 mathematics", category="subject", unit_price_fen=15_000, guide_price_fen=15_000
    )

    name: Name
    category: CourseCategory
    unit_price_fen: Fen
    guide_price_fen: Fen | None = None


class CourseOut(Response):
    id: UUID
    institution_id: UUID
    name: str
    category: CourseCategory
    unit_price_fen: int
    guide_price_fen: int | None
    created_at: datetime


class GuardianIn(Request):
    model_config = example(name="Li Hua", phone="13812345678", id_number="11010519491231002X")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    phone: Annotated[str, StringConstraints(pattern=r"^1[3-9][0-9]{9}$")]
    id_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9X]$")] | None = None


class ContractIn(Request):
    model_config = example(
        course_id="01a23371-cf6d-7a36-b3ad-2ac2ffe89f7c",
        guardian={"name": "Li Hua", "phone": "13812345678", "id_number": "11010519491231002X"},
        student_name="Li Ming",
        hours_bought=40,
        bonus_hours=2,
        term_start="2027-03-01",
        term_end="2027-05-28",
    )

    course_id: UUID
    guardian: GuardianIn
    student_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    hours_bought: Annotated[StrictInt, Field(ge=1, le=10_000), WHOLE]
    bonus_hours: Hours = 0
    term_start: Day
    term_end: Day


class GuardianOut(BaseModel):
    name: str
    phone: str = Field(description="masked unless you are this guardian or a regulator")
    id_number: str | None = Field(description="masked unless you are this guardian or a regulator")


class ContractOut(BaseModel):
    id: UUID
    institution_id: UUID
    course_id: UUID
    guardian: GuardianOut
    student_name: str
    hours_bought: int
    bonus_hours: int
    unit_price_fen: int
    price_fen: int
    term_start: Day
    term_end: Day
    policy_jurisdiction: str
    policy_effective_date: date | None
    status: str
    signed_at: datetime
    held_fen: int = Field(description="unconsumed prepayment held in escrow for this family")
    collected_fen: int


class CollectionIn(Request):
    model_config = example(
        amount_fen=600_000, bank_reference="ICBC20270301-0001", collected_at="2027-03-01T10:30:00+08:00"
    )

    amount_fen: Fen
    bank_reference: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./:-]{1,64}$")]
    collected_at: Instant | None = Field(default=None, description="when the bank received it; default now")


class CollectionOut(Response):
    id: UUID
    institution_id: UUID
    contract_id: UUID
    amount_fen: int
    bank_reference: str
    collected_at: datetime
    transaction_id: UUID
    created_at: datetime


class InstitutionBalancesOut(BaseModel):
    institution_id: UUID
    as_of: datetime | None
    custody_cash_fen: int
    held_fen: int = Field(description="Σ prepaid: unconsumed prepayments held for families")
    releasable_fen: int
    payout_pending_fen: int
    refund_payable_fen: int
    owed_fen: int = Field(description="everything custody cash must cover")


class ContractBalanceOut(BaseModel):
    contract_id: UUID
    as_of: datetime | None
    held_fen: int


class PostingOut(BaseModel):
    id: int
    account_id: UUID
    amount_fen: int = Field(description="signed: debit positive, credit negative")
    currency: str


class TransactionOut(BaseModel):
    id: UUID
    institution_id: UUID
    kind: str
    effective_at: datetime
    created_at: datetime
    reverses_id: UUID | None
    reversal_reason: str | None
    metadata: dict[str, object]
    postings: list[PostingOut]


Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ClassIn(Request):
    model_config = example(hours=2, given_on="2027-03-06")

    hours: Annotated[StrictInt, Field(ge=1, le=24), WHOLE]
    given_on: Day | None = Field(default=None, description="the day the class was given; default today")


class ClassOut(Response):
    id: UUID
    institution_id: UUID
    contract_id: UUID
    hours: int
    given_on: date
    status: str
    confirmed_how: str | None
    confirm_by: date = Field(description="deemed confirmed if the parent says nothing by this day")
    amount_fen: int | None = Field(description="what the class released; set once released")
    release_transaction_id: UUID | None
    payout_id: UUID | None
    dispute_reason: str | None
    resolution_note: str | None
    recorded_at: datetime
    decided_at: datetime | None


class ReasonIn(Request):
    model_config = example(reason="the teacher did not come; the class was not given")

    reason: Reason


class ResolutionIn(Request):
    model_config = example(outcome="upheld", note="the institution could not show the class was given")

    outcome: Annotated[str, StringConstraints(pattern=r"^(upheld|rejected)$")] = Field(
        description="upheld: the hours return to the family; rejected: the class counts as confirmed"
    )
    note: Reason


class RefundPaymentOut(Response):
    payout_id: UUID
    amount_fen: int
    status: str = Field(description="instructed (sent to the bank), executed (paid), failed or recalled")
    instructed_at: datetime
    executed_at: datetime | None = Field(description="when the bank paid the family, once it has")


class RefundRequestOut(Response):
    id: UUID
    institution_id: UUID
    contract_id: UUID
    reason: str
    status: str
    respond_by: date = Field(description="deemed approved if the institution has not answered by this day")
    amount_fen: int | None
    decision_reason: str | None
    requested_at: datetime
    decided_at: datetime | None
    payments: list[RefundPaymentOut] = Field(
        default_factory=list, description="the payouts to the family, followed to the bank's execution"
    )


class PayoutOut(Response):
    id: UUID
    institution_id: UUID
    kind: str
    contract_id: UUID | None
    amount_fen: int
    status: str
    instructed_at: datetime
    settled_at: datetime | None
    bank_reference: str | None
    failure_reason: str | None


class ExecutionIn(Request):
    model_config = example(bank_reference="ICBC20270310-0042")

    bank_reference: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./:-]{1,64}$")]


class HoldOut(Response):
    id: UUID
    institution_id: UUID
    reason: str
    placed_at: datetime
    lifted_at: datetime | None
    lift_reason: str | None


class AlertOut(BaseModel):
    id: UUID
    rule: str
    severity: str
    institution_id: UUID | None
    subject: str
    detail: str
    evidence: dict[str, object]
    state: str
    raised_at: datetime
    cleared_at: datetime | None = Field(description="when the condition turned off, or the alert was resolved")
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledge_note: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None
    reopens: UUID | None = Field(description="the alert resolved while this condition still held, if any")


class ApprovalIn(Request):
    model_config = example(reason="the family moved away; the unconsumed hours are refunded")

    reason: Reason | None = Field(default=None, description="kept with the decision and on the audit trail")


class NoteIn(Request):
    model_config = example(note="called the institution; the refunds are being paid")

    note: Reason


class HeldFundsFigures(BaseModel):
    held_fen: int = Field(description="Σ prepaid: unconsumed prepayments held for families")
    releasable_fen: int
    payout_pending_fen: int
    refund_payable_fen: int
    custody_cash_fen: int


class InstitutionHeldFundsOut(HeldFundsFigures):
    institution_id: UUID
    institution_name: str
    jurisdiction_code: str
    contracts_path: str = Field(description="its contracts with what each held at the instant (list_held_contracts)")


class JurisdictionHeldFundsOut(HeldFundsFigures):
    jurisdiction_code: str


class HeldFundsOut(BaseModel):
    as_of: datetime
    items: list[InstitutionHeldFundsOut]
    jurisdictions: list[JurisdictionHeldFundsOut] = Field(description="per jurisdiction: the sums of its items")
    total: HeldFundsFigures


class AgingFigures(BaseModel):
    held_fen: int
    days_0_30_fen: int = Field(description="held from collections at most 30 whole days old at the instant")
    days_31_90_fen: int
    days_over_90_fen: int


class InstitutionAgingOut(AgingFigures):
    institution_id: UUID
    institution_name: str
    jurisdiction_code: str


class JurisdictionAgingOut(AgingFigures):
    jurisdiction_code: str


class HeldFundsAgingOut(BaseModel):
    as_of: datetime
    items: list[InstitutionAgingOut]
    jurisdictions: list[JurisdictionAgingOut] = Field(description="per jurisdiction: the sums of its items")
    total: AgingFigures


class HeldContractOut(BaseModel):
    contract_id: UUID
    course_id: UUID
    student_name: str
    status: str
    signed_at: datetime
    collected_fen: int = Field(description="collected by the instant")
    held_fen: int = Field(description="held for the family at the instant")
    transactions_path: str = Field(description="its transactions and their postings (list_contract_transactions)")


class HeldContractsOut(BaseModel):
    institution_id: UUID
    as_of: datetime
    items: list[HeldContractOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")
