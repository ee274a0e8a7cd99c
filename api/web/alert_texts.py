"""What the console says about an alert, in the person's language: its rule's title, its sentence and the
labels of its evidence. The core and the API keep stable English codes (`refund_surge`, `baseline`); the
English here is each message's msgid, translated by the gettext catalogs (locale/).

A sentence is made from the alert's evidence (`%(key)s`, amounts in yuan), so it reads the same figures
the API gives. An alert raised before its rule's evidence carried every figure its sentence needs is shown
in the English it was raised with. tests/web/test_alert_texts.py reads every Finding the core builds and
fails when one of its codes or evidence keys has no words here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from api.web.formats import yuan

Translate = Callable[[str], str]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _(message: str) -> str:
    """Marks a message for the catalogs (pybabel extracts `_`); it is translated when shown."""
    return message


TITLES: dict[str, str] = {
    "money_idle": _("Money idle"),
    "money_idle_long": _("Money idle for long"),
    "refund_surge": _("Refund surge"),
    "collection_surge": _("Collection surge"),
    "complaint_surge": _("Complaint surge"),
    "deemed_confirmations": _("Classes only deemed confirmed"),
    "refund_deadline_missed": _("Refund deadline missed"),
    "reserve_below_collections": _("Reserve below collections"),
    "statement_missing": _("Bank statement missing"),
    "custody_below_owed": _("Custody below what families are owed"),
    "cap_broken": _("Collection cap broken"),
    "calendar_year_missing": _("Official calendar missing"),
    "ledger_unbalanced": _("Ledger unbalanced"),
    "ledger_balance_drift": _("Balance differs from its postings"),
    "ledger_negative_balance": _("Balance below zero"),
    "custody_identity_broken": _("Custody cash differs from what is owed"),
    "audit_chain_broken": _("Audit chain broken"),
    "recon_bank_line_unmatched": _("Bank line not in the ledger"),
    "recon_ledger_unmatched": _("Ledger movement not on the statement"),
    "recon_balance_differs": _("Bank balance differs from the ledger"),
}

# rule (or rule:variant, see _variant) -> its sentence, with the evidence's keys (and the alert's subject)
SENTENCES: dict[str, str] = {
    "money_idle": _("¥%(held_fen)s held for families; no class recorded for %(days)s days"),
    "money_idle_long": _("¥%(held_fen)s held for families; no class recorded for %(days)s days"),
    "money_idle_long:never": _("¥%(held_fen)s held for families; no class ever recorded"),
    "refund_surge": _(
        "%(requests)s refund requests in %(days)s days against %(baseline)s in each such window before;"
        " ¥%(refunded_fen)s refunded, ¥%(held_fen)s still held"
    ),
    "complaint_surge": _(
        "%(complaints)s complaints from %(families)s families in %(days)s days against %(baseline)s in each"
        " such window before"
    ),
    "collection_surge": _("%(last_7_days)s collections in 7 days against %(weekly_baseline)s a week before"),
    "deemed_confirmations": _(
        "%(deemed)s of the %(classes_confirmed)s classes confirmed in the last 60 days were only deemed"
        " confirmed (the parent stayed silent); %(by_parents)s were confirmed by parents"
    ),
    "refund_deadline_missed": _("%(missed)s refund request(s) left unanswered past the deadline in 30 days"),
    "reserve_below_collections": _(
        "The reserve of ¥%(reserve_fen)s is below the ¥%(collected_fen)s collected in %(months)s months"
    ),
    "statement_missing": _(
        "The custody bank's statement for %(statement_date)s was not imported by 09:00 the next day"
    ),
    "custody_below_owed": _(
        "The custody account held ¥%(bank_fen)s on %(statement_date)s, below the ¥%(family_owed_fen)s owed to families"
    ),
    "cap_broken": _(
        "¥%(amount_fen)s came in on %(statement_date)s (ref %(reference)s) outside the ledger, above the"
        " ¥%(cap_fen)s a single collection may be here"
    ),
    "calendar_year_missing": _(
        "There is no official holiday calendar for %(year)s yet: classes and refund requests whose deadlines fall"
        " in %(year)s cannot be recorded; load the State Council's %(year)s holidays and make-up workdays"
    ),
    "ledger_unbalanced": _("Journal transaction %(subject)s has %(postings)s postings and is off by ¥%(off_by_fen)s"),
    "ledger_unbalanced:missing": _("Postings name journal transaction %(subject)s, which does not exist"),
    "ledger_unbalanced:legs": _(
        "Journal transaction %(subject)s says it has %(declared)s postings but has %(postings)s"
    ),
    "ledger_balance_drift": _("Account %(code)s caches ¥%(cached_fen)s but its postings sum to ¥%(postings_fen)s"),
    "ledger_balance_drift:institution": _(
        "The institution's postings do not add up to its accounts' balances and its transactions"
    ),
    "ledger_negative_balance": _("Account %(code)s may not go below zero but holds ¥%(balance_fen)s"),
    "custody_identity_broken": _(
        "Custody cash of ¥%(custody_cash_fen)s is not what the institution owes, ¥%(owed_fen)s"
    ),
    "audit_chain_broken": _("Audit record %(position)s was altered, removed or put out of order"),
    "recon_bank_line_unmatched": _(
        "The bank shows ¥%(amount_fen)s (ref %(reference)s) on %(statement_date)s that the ledger has no movement for"
    ),
    "recon_ledger_unmatched": _(
        "The ledger moved ¥%(amount_fen)s through custody cash on %(statement_date)s (ref %(reference)s) and the"
        " bank's statement does not show it"
    ),
    "recon_balance_differs": _(
        "The bank's closing balance on %(statement_date)s is ¥%(bank_fen)s and the ledger's custody cash"
        " ¥%(ledger_fen)s; the unmatched items explain ¥%(explained_fen)s of the difference"
    ),
}

LABELS: dict[str, str] = {
    "days": _("Days"),
    "held_fen": _("Held for families"),
    "requests": _("Refund requests"),
    "baseline": _("Baseline"),
    "refunded_fen": _("Refunded"),
    "last_7_days": _("Collections in the last 7 days"),
    "weekly_baseline": _("Weekly baseline"),
    "classes_confirmed": _("Classes confirmed"),
    "deemed": _("Deemed confirmed"),
    "by_parents": _("Confirmed by parents"),
    "missed": _("Requests past the deadline"),
    "reserve_fen": _("Reserve"),
    "collected_fen": _("Collected"),
    "months": _("Months"),
    "statement_date": _("Statement date"),
    "bank_fen": _("Bank balance"),
    "family_owed_fen": _("Owed to families"),
    "amount_fen": _("Amount"),
    "cap_fen": _("Cap of one collection"),
    "reference": _("Reference"),
    "year": _("Year"),
    "code": _("Account"),
    "balance_fen": _("Balance"),
    "custody_cash_fen": _("Custody cash"),
    "owed_fen": _("Owed"),
    "postings": _("Postings"),
    "declared": _("Postings declared"),
    "off_by_fen": _("Off by"),
    "cached_fen": _("Cached balance"),
    "postings_fen": _("Sum of postings"),
    "chain": _("Audit chain"),
    "complaints": _("Complaints"),
    "families": _("Families"),
    "position": _("Record"),
    "transaction_id": _("Journal transaction"),
    "ledger_fen": _("Ledger custody cash"),
    "explained_fen": _("Explained by unmatched items"),
}


def title(translate: Translate, rule: str) -> str:
    """The rule's title in the person's language; an unknown rule shows its code."""
    return translate(TITLES[rule]) if rule in TITLES else rule


def sentence(translate: Translate, alert: Mapping[str, Any]) -> str | None:
    """The alert's sentence from its evidence, or None when the evidence lacks a figure it names."""
    message = SENTENCES.get(_variant(alert["rule"], alert.get("evidence") or {}))
    if message is None:
        return None
    values = {key: shown(key, value) for key, value in (alert.get("evidence") or {}).items()}
    try:
        return translate(message) % {"subject": alert.get("subject", ""), **values}
    except KeyError:
        return None


def evidence_items(translate: Translate, alert: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of each figure of the alert's evidence, amounts in yuan, in the order its sentence names
    them (the others after)."""
    evidence = alert.get("evidence") or {}
    named = PLACEHOLDER.findall(SENTENCES.get(_variant(alert["rule"], evidence), ""))
    keys = sorted(evidence, key=lambda k: named.index(k) if k in named else len(named))
    items = []
    for key in keys:
        label = translate(LABELS[key]) if key in LABELS else key
        value = shown(key, evidence[key])
        items.append((label, f"¥ {value}" if key.endswith("_fen") and value != "—" else value))
    return items


def shown(key: str, value: Any) -> str:
    """One evidence value as a person reads it: fen in yuan, 1.0 as 1, nothing as a dash."""
    if value is None or value == "":
        return "—"
    if key.endswith("_fen") and isinstance(value, int):
        return yuan(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _variant(rule: str, evidence: Mapping[str, Any]) -> str:
    """A few rules say different things by what they found."""
    if rule == "money_idle_long" and evidence.get("days") is None:
        return "money_idle_long:never"
    if rule == "ledger_unbalanced" and "declared" in evidence:
        if evidence["declared"] is None:
            return "ledger_unbalanced:missing"
        if evidence["declared"] != evidence.get("postings"):
            return "ledger_unbalanced:legs"
    if rule == "ledger_balance_drift" and not evidence:
        return "ledger_balance_drift:institution"
    return rule
