"""The contract form read as a person fills it in: each field's value, and what is wrong with it in words.

Reading is the face's job (as the JSON schemas are the API's); the policy's caps come from the core's
`check_terms`, whose problems name their field and figures, said here in the reader's language.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from api.web.desk.common import Translate, to_uuid
from api.web.formats import yuan
from escrow.registry.contracts import GuardianDetails
from escrow.rules.identity import id_number_problem
from escrow.rules.policy import PolicyProblem

FIELDS = (
    "course_id",
    "student_name",
    "guardian_name",
    "guardian_phone",
    "guardian_id_number",
    "hours_bought",
    "bonus_hours",
    "term_start",
    "term_end",
)
OPTIONAL = {"guardian_id_number", "bonus_hours"}
MAX_NAME = 100
MAX_HOURS = 10_000
_PHONE = re.compile(r"^1[3-9][0-9]{9}$")


@dataclass(frozen=True, slots=True)
class Draft:
    """The form's values as typed (for showing again) and as read (None where unreadable or empty)."""

    typed: dict[str, str]
    course_id: UUID | None
    hours_bought: int | None
    bonus_hours: int | None
    term_start: date | None
    term_end: date | None

    def text(self, name: str) -> str:
        return self.typed.get(name, "").strip()

    @property
    def guardian(self) -> GuardianDetails:
        id_number = self.text("guardian_id_number").upper() or None
        return GuardianDetails(name=self.text("guardian_name"), phone=self.text("guardian_phone"), id_number=id_number)

    @property
    def terms_readable(self) -> bool:
        """Enough to judge by the policy: a course and the hours (the term's rules once both dates are given)."""
        return None not in (self.course_id, self.hours_bought, self.bonus_hours)


def read_draft(form: Mapping[str, str], _: Translate, *, complete: bool) -> tuple[Draft, dict[str, str]]:
    """The draft and every field's problem. `complete`: a submit, where a required field left empty is one;
    otherwise (as the form is filled in) only what was typed is judged."""
    typed = {name: str(form.get(name, "")) for name in FIELDS}
    errors: dict[str, str] = {}
    for name in FIELDS:
        if complete and name not in OPTIONAL and not typed[name].strip():
            errors[name] = _("Fill this in.")
    course_id = _course(typed["course_id"], errors, _)
    hours = _whole(typed["hours_bought"], "hours_bought", 1, errors, _)
    bonus = _whole(typed["bonus_hours"] or "0", "bonus_hours", 0, errors, _)
    start, end = _day(typed["term_start"], "term_start", errors, _), _day(typed["term_end"], "term_end", errors, _)
    if start and end and end < start:
        errors["term_end"] = _("The term cannot end before it starts.")
    _text_problems(typed, errors, _)
    return Draft(typed, course_id, hours, bonus, start, end), errors


def _course(text: str, errors: dict[str, str], _: Translate) -> UUID | None:
    if not text.strip():
        return None
    found = to_uuid(text)
    if found is None:
        errors["course_id"] = _("Choose one of your courses.")
    return found


def _whole(text: str, name: str, least: int, errors: dict[str, str], _: Translate) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit() or not least <= int(text) <= MAX_HOURS:
        errors[name] = _("Give a whole number of hours from %(least)s to %(most)s.") % {
            "least": least,
            "most": f"{MAX_HOURS:,}",
        }
        return None
    return int(text)


def _day(text: str, name: str, errors: dict[str, str], _: Translate) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        errors[name] = _("Give a date, for example 2027-03-01.")
        return None


def _text_problems(typed: dict[str, str], errors: dict[str, str], _: Translate) -> None:
    for name in ("student_name", "guardian_name"):
        if len(typed[name].strip()) > MAX_NAME:
            errors[name] = _("A name has at most %(n)s characters.") % {"n": MAX_NAME}
    phone = typed["guardian_phone"].strip()
    if phone and not _PHONE.match(phone):
        errors["guardian_phone"] = _("Give an 11-digit mobile number starting with 1, for example 13812345678.")
    id_number = typed["guardian_id_number"].strip().upper()
    if id_number and id_number_problem(id_number):
        errors["guardian_id_number"] = _(
            "This is not a valid resident ID number: 17 digits and a check digit or X. Check it for a typo."
        )


# the form field a policy problem is shown beside (the price follows from the hours)
FIELD_OF = {"hours": "hours_bought", "amount": "hours_bought", "term_start": "term_start", "term_end": "term_end"}


def policy_messages(problems: list[PolicyProblem], _: Translate) -> dict[str, str]:
    """Each problem in the reader's words, beside its field (two on one field are said one after the other)."""
    messages: dict[str, str] = {}
    for problem in problems:
        values = {k: yuan(v) if k.endswith("_fen") and isinstance(v, int) else v for k, v in problem.values.items()}
        text = _policy_text(problem.code, _) % values
        field = FIELD_OF.get(problem.field, "hours_bought")
        messages[field] = f"{messages[field]} {text}" if field in messages else text
    return messages


def _policy_text(code: str, _: Translate) -> str:
    texts = {
        "hours_over_cap": _(
            "%(hours)s class hours with the bonus are more than the %(max_hours)s hours one collection may cover."
        ),
        "term_over_cap": _("A term may last at most %(max_months)s months: end it on %(latest_end)s at the latest."),
        "amount_over_cap": _(
            "The price, %(amount_fen)s yuan, is above the %(max_fen)s yuan a non-subject course may collect at once:"
            " buy fewer hours."
        ),
        "term_over": _("This term is already over: a term that has ended cannot be signed."),
        "term_started_long_ago": _("A term may have started at most %(max_days)s days ago: on %(earliest)s or later."),
        "term_too_far_ahead": _("A term may start at most %(max_days)s days from today."),
    }
    return texts.get(code, _("This breaks a rule of the policy in force."))
