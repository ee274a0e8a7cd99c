"""Every rule the core can raise, and every figure its evidence carries, has words on the console's pages,
in Chinese first: a new rule (or a new evidence key) fails here until api/web/alert_texts.py names it and
the catalog translates it. The rules are read from the source (every `Finding(...)` in escrow/) and from
the codes the jobs own, so none is missed for never having fired in a test."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

import escrow
from api.web.alert_texts import LABELS, PLACEHOLDER, SENTENCES, TITLES, evidence_items, sentence, title
from api.web.templating import translations
from escrow.supervision.alerts import Finding, Severity, raise_alerts
from escrow.supervision.checks import LEDGER_RULES
from escrow.supervision.reconcile import RECON_RULES
from escrow.supervision.risks import RULES
from tests.web.conftest import sign_in
from tests.web.district import PEOPLE, District

CORE = Path(escrow.__file__).parent
FINDING_FIELDS = ("rule", "severity", "institution_id", "subject", "detail", "evidence")


def _argument(call: ast.Call, name: str) -> ast.expr | None:
    position = FINDING_FIELDS.index(name)
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == name), None)


def _findings_in_core() -> tuple[dict[str, set[str]], list[str]]:
    """Rule code -> the evidence keys of every Finding built in escrow/; and the calls not written literally."""
    rules: dict[str, set[str]] = {}
    unreadable: list[str] = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Finding"):
                continue
            code, evidence = _argument(node, "rule"), _argument(node, "evidence")
            keys = [] if evidence is None else getattr(evidence, "keys", None)
            readable = isinstance(code, ast.Constant) and isinstance(code.value, str) and keys is not None
            if not readable or not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in keys or []):
                unreadable.append(f"{path.relative_to(CORE.parent)}:{node.lineno}")
                continue
            assert isinstance(code, ast.Constant)
            rules.setdefault(code.value, set()).update(k.value for k in keys or [] if isinstance(k, ast.Constant))
    return rules, unreadable


RAISED, UNREADABLE = _findings_in_core()
OWNED = {code for _, codes in RULES.values() for code in codes} | set(LEDGER_RULES) | set(RECON_RULES)
OWNED.add("audit_chain_broken")  # seal_audit's one rule


def test_every_finding_of_the_core_names_its_rule_and_evidence_keys_literally() -> None:
    """So that this test can read them: `Finding("rule_code", ..., {"key": value, ...})`."""
    assert UNREADABLE == []
    assert len(RAISED) >= 18 and set(RAISED) >= OWNED


def test_every_rule_has_a_title_and_a_sentence() -> None:
    codes = set(RAISED) | OWNED
    assert sorted(codes - set(TITLES)) == [], "add the rule's title to TITLES in api/web/alert_texts.py"
    assert sorted(codes - set(SENTENCES)) == [], "add the rule's sentence to SENTENCES in api/web/alert_texts.py"
    assert sorted(set(TITLES) - codes) == [], "words for a rule the core no longer raises"


def test_every_evidence_key_has_a_label() -> None:
    keys = set().union(*RAISED.values())
    assert sorted(keys - set(LABELS)) == [], "add the evidence key's label to LABELS in api/web/alert_texts.py"


@pytest.mark.parametrize("key", sorted(SENTENCES))
def test_a_sentence_names_only_figures_its_rules_evidence_carries(key: str) -> None:
    rule = key.split(":")[0]
    assert set(PLACEHOLDER.findall(SENTENCES[key])) <= RAISED.get(rule, set()) | {"subject"}


def test_every_title_sentence_and_label_reads_in_chinese_with_the_same_figures() -> None:
    chinese = translations("zh_CN").gettext
    for message in (*TITLES.values(), *SENTENCES.values(), *LABELS.values()):
        said = chinese(message)
        assert said != message and re.search(r"[\u4e00-\u9fff]", said), message
        assert sorted(PLACEHOLDER.findall(said)) == sorted(PLACEHOLDER.findall(message)), message


def test_an_alert_reads_from_its_evidence_and_falls_back_to_its_english_when_a_figure_is_missing() -> None:
    chinese = translations("zh_CN").gettext
    evidence = {"requests": 4, "baseline": 0.5, "refunded_fen": 123_456_78, "held_fen": 50_000_00, "days": 7}
    alert = {"rule": "refund_surge", "subject": "", "evidence": evidence, "detail": "4 refund requests in 7 days"}
    assert title(chinese, "refund_surge") == "退费激增"
    assert sentence(chinese, alert) == (
        "7 天内退费申请 4 笔，此前每个同样长的时段平均 0.5 笔；已退费 ¥123,456.78，仍留存 ¥50,000.00"
    )
    assert evidence_items(chinese, alert) == [
        ("退费申请数", "4"),
        ("天数", "7"),
        ("基线", "0.5"),
        ("退款", "¥ 123,456.78"),
        ("为家长留存", "¥ 50,000.00"),
    ]  # in the order the sentence names them
    assert sentence(chinese, {**alert, "evidence": {"requests": 4}}) is None  # raised before it carried `days`
    never = {"rule": "money_idle_long", "subject": "", "evidence": {"days": None, "held_fen": 100}}
    assert sentence(chinese, never) == "为家长留存 ¥1.00，从未记录过课程"
    assert title(chinese, "no_such_rule") == "no_such_rule"


def _dashboard_with_an_open_alert(client: TestClient, web_engine: Engine, district: District) -> str:
    """The dashboard while B has an open collection surge (cleared after, as the rule's next run would)."""
    finding = Finding(
        "collection_surge",
        Severity.YELLOW,
        district.institutions["B"],
        "",
        "6 collections in 7 days against 1 a week before",
        {"last_7_days": 6, "weekly_baseline": 1.0},
    )
    with sessionmaker(web_engine).begin() as session:
        raise_alerts(session, [finding], rules=[], now=datetime.now(UTC), run_id=None)
    try:
        return client.get("/console/dashboard").text
    finally:
        with sessionmaker(web_engine).begin() as session:
            raise_alerts(session, [], rules=["collection_surge"], now=datetime.now(UTC), run_id=None)


def test_the_alerts_pages_show_rules_sentences_and_evidence_in_chinese_then_english(
    client: TestClient, web_engine: Engine, district: District
) -> None:
    sign_in(client, PEOPLE["zhang"])
    alerts = client.get("/console/alerts?state=").text
    assert "退费激增" in alerts and "退款：¥ 123,456.78" in alerts and "仍留存 ¥50,000.00" in alerts
    assert '<option value="refund_surge">退费激增</option>' in alerts
    institution = client.get(f"/console/institutions/{district.institutions['A']}").text
    assert "退费激增" in institution and "7 天内退费申请 4 笔" in institution
    assert ">收费激增</a>" in _dashboard_with_an_open_alert(client, web_engine, district)
    client.get("/console/language/en?next=/console/alerts")
    english = client.get("/console/alerts?state=").text
    assert (
        "Refund surge" in english and "Refunded: ¥ 123,456.78" in english and "4 refund requests in 7 days" in english
    )
