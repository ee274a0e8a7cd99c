"""The institution's desk over HTTP: who may see which page, CSRF, and forms that change nothing when refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from api.app import create_app
from api.web.throttle import reset_sign_in_attempts
from escrow.rules.calendar import local_date
from tests.web.conftest import sign_in
from tests.web.desk.conftest import form_of
from tests.web.desk.district import DESK_PEOPLE, Desk, ask_refund, confirmed_class, family
from tests.web.district import PEOPLE
from tests.web.test_pages import get_pages


def _count(engine: Engine, table: str, desk: Desk) -> int:
    with engine.connect() as conn:
        return conn.scalar(text(f"SELECT count(*) FROM {table} WHERE institution_id = :i"), {"i": desk.institution})


def _audit(engine: Engine, desk: Desk) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM audit_record WHERE chain = :i"), {"i": desk.institution}) or 0


def test_staff_land_on_their_desk_and_the_console_sends_them_there(client: TestClient, desk: Desk) -> None:
    answer = sign_in(client, DESK_PEOPLE["accountant"])
    assert answer.status_code == 303 and answer.headers["location"] == "/desk"
    assert client.get("/console").headers["location"] == "/desk"
    page = client.get("/desk")
    assert page.status_code == 200 and "明德培训" in page.text and 'aria-current="page">工作台' in page.text


def test_signing_in_from_a_desk_page_returns_to_it(client: TestClient, desk: Desk) -> None:
    asked = client.get("/desk/refunds")
    assert asked.status_code == 303 and asked.headers["location"] == "/console/sign-in?next=/desk/refunds"
    page = client.get(asked.headers["location"])
    token = form_of(page.text)["csrf_token"]
    answer = client.post(
        "/console/sign-in",
        data={"name": DESK_PEOPLE["accountant"], "password": "correct-horse-battery", "csrf_token": token,
              "next": "/desk/refunds"},
    )  # fmt: skip
    assert answer.headers["location"] == "/desk/refunds"


def _pages(desk: Desk, engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        statement = conn.scalar(
            text("SELECT id FROM bank_statement WHERE institution_id = :i"), {"i": desk.institution}
        )
    return {
        "desk": "/desk",
        "contracts": "/desk/contracts?q=王",
        "contract_new": "/desk/contracts/new",
        "contract": f"/desk/contracts/{desk.contracts['林小明']}",
        "collections": "/desk/collections",
        "collections_template": "/desk/collections/template.csv",
        "classes": f"/desk/classes?course={desk.piano}",
        "refunds": "/desk/refunds",
        "payouts": "/desk/payouts",
        "statements": "/desk/statements",
        "statement": f"/desk/statements/{statement}",
        "complaints": "/desk/complaints",
        "complaint": f"/desk/complaints/{desk.complaint}",
        "contract_of_b": f"/desk/contracts/{desk.other_contract}",
    }


# page -> status for: nobody signed in, a regulator of the district, D's accountant, B's staff
MATRIX = {
    "desk": (303, 404, 200, 200),  # B's staff see their own desk
    "contracts": (303, 404, 200, 200),
    "contract_new": (303, 404, 200, 200),
    "contract": (303, 404, 200, 404),
    "collections": (303, 404, 200, 200),
    "collections_template": (303, 404, 200, 200),
    "classes": (303, 404, 200, 200),  # D's course id: B's staff are told to choose one of their own
    "refunds": (303, 404, 200, 200),
    "payouts": (303, 404, 200, 200),
    "statements": (303, 404, 200, 200),
    "statement": (303, 404, 200, 404),
    "complaints": (303, 404, 200, 200),
    "complaint": (303, 404, 200, 404),
    "contract_of_b": (303, 404, 404, 200),
}


def test_the_desk_authorization_matrix_covers_every_desk_page(web_engine: Engine, desk: Desk) -> None:
    app = create_app(web_engine)
    paths = {p for p in get_pages(app) if p.startswith("/desk")}
    named = {"/desk", "/desk/contracts", "/desk/contracts/new", "/desk/contracts/{contract_id}", "/desk/collections",
             "/desk/collections/template.csv", "/desk/classes", "/desk/refunds", "/desk/payouts", "/desk/statements",
             "/desk/statements/{statement_id}", "/desk/complaints",
             "/desk/complaints/{complaint_id}"}  # fmt: skip
    assert paths == named, "a desk page the matrix does not name"
    for index, who in enumerate((None, PEOPLE["zhang"], DESK_PEOPLE["accountant"], DESK_PEOPLE["other"])):
        with TestClient(app, follow_redirects=False) as client:
            if who:
                reset_sign_in_attempts()
                assert sign_in(client, who).status_code == 303
            for name, path in _pages(desk, web_engine).items():
                assert client.get(path).status_code == MATRIX[name][index], (who, name)


def test_what_b_sees_of_its_own_desk_names_nothing_of_d(client: TestClient, desk: Desk) -> None:
    sign_in(client, DESK_PEOPLE["other"])
    for path in ("/desk", "/desk/contracts", "/desk/collections", "/desk/refunds", "/desk/payouts"):
        body = client.get(path).text
        assert "明德培训" not in body and "林小明" not in body and "少儿钢琴" not in body, path
    assert "林小明" not in client.get("/desk/collections/template.csv").content.decode("utf-8-sig")


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(
    accountant: TestClient, desk: Desk, web_engine: Engine
) -> None:
    before = _count(web_engine, "collection", desk), _count(web_engine, "payout", desk)
    body = {"contract_id": str(desk.contracts["张小华"]), "amount": "100", "bank_reference": "CSRF-1", "key": "k-1"}
    assert accountant.post("/desk/collections", data=body).status_code == 403
    assert accountant.post("/desk/collections", data=body | {"csrf_token": "forged"}).status_code == 403
    assert accountant.post("/desk/payouts", data={"key": "k-2"}).status_code == 403
    assert (_count(web_engine, "collection", desk), _count(web_engine, "payout", desk)) == before


def test_another_institutions_staff_cannot_act_on_ds_things(client: TestClient, desk: Desk, web_engine: Engine) -> None:
    with sessionmaker(web_engine).begin() as s:
        asked = ask_refund(s, desk, family(s, desk, desk.piano, "周小雨", 5, paid=True, now=datetime.now(UTC)))
    sign_in(client, DESK_PEOPLE["other"])
    token = form_of(client.get("/desk/refunds").text)["csrf_token"]
    answer = client.post(f"/desk/refunds/{asked}/approve", data={"csrf_token": token, "key": "b-approves"})
    assert answer.status_code == 404
    collected = client.post(
        "/desk/collections",
        data={"csrf_token": token, "contract_id": str(desk.contracts["张小华"]), "amount": "1", "bank_reference": "B-1",
              "key": "b-collects"},
    )  # fmt: skip
    assert collected.status_code == 422 and "没有" in collected.text  # none of B's contracts has this number
    with web_engine.connect() as conn:
        assert conn.scalar(text("SELECT status FROM refund_request WHERE id = :r"), {"r": asked}) == "open"
    assert "B-1" not in accountant_view(client, desk)


def accountant_view(client: TestClient, desk: Desk) -> str:
    reset_sign_in_attempts()
    sign_in(client, DESK_PEOPLE["accountant"])
    return client.get(f"/desk/contracts/{desk.contracts['张小华']}").text


def _contract_form(desk: Desk, **changes: str) -> dict[str, str]:
    today = local_date(datetime.now(UTC))
    return {
        "course_id": str(desk.piano),
        "student_name": "孙小美",
        "guardian_name": "孙丽",
        "guardian_phone": "13912345678",
        "guardian_id_number": "",
        "hours_bought": "20",
        "bonus_hours": "0",
        "term_start": today.isoformat(),
        "term_end": (today + timedelta(days=60)).isoformat(),
    } | changes


def test_the_contract_form_is_checked_as_it_is_filled_in(accountant: TestClient, desk: Desk) -> None:
    token = form_of(accountant.get("/desk/contracts/new").text)["csrf_token"]
    check = accountant.post("/desk/contracts/check", data=_contract_form(desk, hours_bought="50", bonus_hours="15"),
                            headers={"X-CSRF-Token": token, "HX-Request": "true"})  # fmt: skip
    assert check.status_code == 200
    assert 'id="msg-hours_bought" hx-swap-oob="true"' in check.text
    assert "65 个课时（含赠送）超过一次收费最多可覆盖的 60 个课时" in check.text  # the hours cap, beside the hours
    assert "超过非学科类课程一次最多可收取的 5,000.00 元" in check.text  # 65 h x 200 yuan: the amount cap too
    long_term = _contract_form(desk, term_end=(local_date(datetime.now(UTC)) + timedelta(days=120)).isoformat())
    check = accountant.post("/desk/contracts/check", data=long_term, headers={"X-CSRF-Token": token})
    assert "学期最长 3 个月" in check.text.split('id="msg-term_end"')[1].split("</div>")[0]
    fine = accountant.post("/desk/contracts/check", data=_contract_form(desk), headers={"X-CSRF-Token": token})
    assert "¥ 4,000.00" in fine.text and "符合现行政策" in fine.text
    partial = accountant.post("/desk/contracts/check", data={"guardian_phone": "123"}, headers={"X-CSRF-Token": token})
    assert "请填写此项" not in partial.text and "11 位手机号" in partial.text  # only what was typed is judged


def test_a_contract_over_the_caps_is_refused_on_submit_and_nothing_is_signed(
    accountant: TestClient, desk: Desk, web_engine: Engine
) -> None:
    before, notes = _count(web_engine, "contract", desk), _audit(web_engine, desk)
    page = accountant.get("/desk/contracts/new")
    refused = accountant.post("/desk/contracts", data=form_of(page.text, **_contract_form(desk, hours_bought="61")))
    assert refused.status_code == 422 and 'id="hours_bought"' in refused.text and 'aria-invalid="true"' in refused.text
    assert "超过一次收费最多可覆盖的 60 个课时" in refused.text and 'value="孙小美"' in refused.text  # kept as typed
    empty = accountant.post("/desk/contracts", data=form_of(page.text, course_id=str(desk.piano)))
    assert empty.status_code == 422 and empty.text.count("请填写此项") >= 6
    assert _count(web_engine, "contract", desk) == before and _audit(web_engine, desk) == notes


def test_a_contract_is_signed_and_its_first_collection_registered_on_its_page(
    accountant: TestClient, desk: Desk, web_engine: Engine
) -> None:
    page = accountant.get("/desk/contracts/new")
    signed = accountant.post("/desk/contracts", data=form_of(page.text, **_contract_form(desk, student_name="吴小杰")))
    assert signed.status_code == 303 and signed.headers["location"].endswith("?done=signed")
    contract = accountant.get(signed.headers["location"])
    assert "吴小杰" in contract.text and "139****5678" in contract.text and "13912345678" not in contract.text
    contract_id = signed.headers["location"].split("/")[3].split("?")[0]
    over = form_of(contract.text, amount="4000.01", bank_reference="WU-1", contract_id=contract_id, back="contract")
    refused = accountant.post("/desk/collections", data=over)
    assert refused.status_code == 422 and "超过此合同待收金额（尚余 4,000.00 元）" in refused.text
    done = accountant.post("/desk/collections", data=over | {"amount": "4,000.00"})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=collected")
    again = accountant.post("/desk/collections", data=over | {"amount": "4,000.00"})
    assert again.status_code == 303  # the same form sent twice: the first result, nothing collected twice
    with web_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM collection WHERE bank_reference = 'WU-1'")) == 1


def _csv(*lines: str) -> bytes:
    return ("contract_id,student,amount,bank_reference,collected_at\n" + "\n".join(lines) + "\n").encode("gb18030")


def _upload(client: TestClient, data: bytes, mode: str) -> Any:
    token = form_of(client.get("/desk/collections").text)["csrf_token"]
    files = {"file": ("bank-day.csv", data, "text/csv")}
    return client.post("/desk/collections/upload", data={"csrf_token": token, "mode": mode}, files=files)


def test_a_file_with_one_bad_line_names_it_and_keeps_nothing(
    accountant: TestClient, desk: Desk, web_engine: Engine
) -> None:
    now = datetime.now(UTC)
    with sessionmaker(web_engine).begin() as s:
        a, b = (family(s, desk, desk.piano, name, 10, paid=False, now=now) for name in ("钱一", "钱二"))
    before, notes = _count(web_engine, "collection", desk), _audit(web_engine, desk)
    bad = _csv(f"{a},钱一,2000,FILE-1,2026-12-01 10:30", f"{b},钱二,2500,FILE-2,")  # 钱二 owes 2,000 only
    refused = _upload(accountant, bad, "register")
    assert refused.status_code == 422 and 'data-result="refused"' in refused.text
    problems = refused.text.split('id="line-problems"')[1]
    assert '<tr data-line="3"><td class="num">3</td><td><code>amount</code></td>' in problems
    assert "超过此合同待收金额（尚余 2,000.00 元）" in problems and 'data-line="2"' not in problems
    assert (_count(web_engine, "collection", desk), _audit(web_engine, desk)) == (before, notes)
    malformed = _upload(accountant, _csv(f"{a},钱二,2000,FILE-1,", "not-a-contract,,x,FILE 3,"), "check")
    rows = malformed.text.split('id="line-problems"')[1]
    assert all(f"<code>{f}</code>" in rows for f in ("student", "contract_id", "amount", "bank_reference"))
    dated = _csv(f"{a},钱一,2000,FILE-1,2026-12-01 10:30", f"{b},钱二,2000,FILE-2,")
    checked = _upload(accountant, dated, "check")
    assert checked.status_code == 200 and 'data-result="checked"' in checked.text
    good = _csv(f"{a},钱一,2000,FILE-1,", f"{b},钱二,2000,FILE-2,")  # kept now: the district's kept figures hold
    assert _count(web_engine, "collection", desk) == before  # a check keeps nothing
    kept = _upload(accountant, good, "register")
    assert 'data-result="registered"' in kept.text and "已登记 2 笔收费，共 4,000.00 元" in kept.text
    assert _count(web_engine, "collection", desk) == before + 2
    again = _upload(accountant, good, "register")
    assert "此文件的每一行之前都已登记" in again.text and _count(web_engine, "collection", desk) == before + 2


def test_a_class_session_is_recorded_for_the_students_ticked_once(
    accountant: TestClient, desk: Desk, web_engine: Engine
) -> None:
    now = datetime.now(UTC)
    with sessionmaker(web_engine).begin() as s:
        kids = [family(s, desk, desk.maths, name, 4, paid=True, now=now) for name in ("郑一", "郑二", "郑三")]
    page = accountant.get(f"/desk/classes?course={desk.maths}&hours=2")
    assert all(f'value="{k}"' in page.text for k in kids)
    body = form_of(page.text.split('id="session-form"')[1], course=str(desk.maths), hours="5",
                   day=local_date(now).isoformat(), contract=[str(k) for k in kids[:2]])  # fmt: skip
    before = _count(web_engine, "class_record", desk)
    refused = accountant.post("/desk/classes", data=body)  # 5 hours: each has only 4
    assert refused.status_code == 422 and refused.text.count("剩余课时不足本次课程所需") == 2
    assert _count(web_engine, "class_record", desk) == before
    done = accountant.post("/desk/classes", data=body | {"hours": "2"})
    assert done.status_code == 303 and "done=2" in done.headers["location"]
    twice = accountant.post("/desk/classes", data=body | {"hours": "2"})
    assert "replayed=1" in twice.headers["location"] and _count(web_engine, "class_record", desk) == before + 2
    shown = accountant.get(twice.headers["location"])
    assert "表单提交了两次" in shown.text and "（当天已有一节课）" in shown.text


def test_a_refund_is_refused_with_a_reason_or_approved(accountant: TestClient, desk: Desk, web_engine: Engine) -> None:
    now = datetime.now(UTC)
    with sessionmaker(web_engine).begin() as s:
        first = ask_refund(s, desk, family(s, desk, desk.piano, "冯一", 10, paid=True, now=now))
        second = ask_refund(s, desk, family(s, desk, desk.piano, "冯二", 10, paid=True, now=now))
    page = accountant.get("/desk/refunds")
    assert f'id="refund-{first}"' in page.text and "2,000.00" in page.text
    token = form_of(page.text)["csrf_token"]
    no_reason = accountant.post(f"/desk/refunds/{first}/reject", data={"csrf_token": token, "key": "f-1"})
    assert no_reason.status_code == 422 and "请告知家长拒绝的理由" in no_reason.text
    refused = accountant.post(f"/desk/refunds/{first}/reject", data={"csrf_token": token, "key": "f-1",
                                                                    "reason": "课程已过半，按合同不退"})  # fmt: skip
    approved = accountant.post(f"/desk/refunds/{second}/approve", data={"csrf_token": token, "key": "f-2"})
    assert refused.status_code == approved.status_code == 303
    with web_engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, status FROM refund_request WHERE id IN (:a, :b)"),
                                     {"a": first, "b": second}).all())  # fmt: skip
    assert statuses == {first: "rejected", second: "approved"}
    late = accountant.post(f"/desk/refunds/{second}/reject", data={"csrf_token": token, "key": "f-3", "reason": "x"})
    assert late.status_code == 422 and "已答复" in late.text


def test_a_payout_is_requested_and_followed(accountant: TestClient, desk: Desk, web_engine: Engine) -> None:
    with sessionmaker(web_engine).begin() as s:
        confirmed_class(s, desk, desk.contracts["刘小强"], 2, now=datetime.now(UTC))
    page = accountant.get("/desk/payouts")
    key = form_of(page.text.split('id="payout-form"')[1])
    requested = accountant.post("/desk/payouts", data=key)
    assert requested.status_code == 303
    shown = accountant.get("/desk/payouts")
    assert 'data-status="instructed"' in shown.text and "银行处理中" in shown.text
    twice = accountant.post("/desk/payouts", data=key)
    assert twice.status_code == 303 and twice.headers["location"] == requested.headers["location"]
    nothing = accountant.post("/desk/payouts", data=form_of(shown.text.split('id="payout-form"')[1]))
    assert nothing.status_code == 422 and "自上次结算以来没有新的可结算款项" in nothing.text


def test_a_file_too_large_is_refused_before_it_is_read(accountant: TestClient, desk: Desk) -> None:
    large = _upload(accountant, b"contract_id,amount,bank_reference\n" + b"x" * 600_000, "check")
    assert large.status_code == 422 and "文件超过 512 KB" in large.text
    huge = _upload(accountant, b"x" * 1_200_000, "check")
    assert huge.status_code == 413  # over the desk's body limit: the guard refuses it unread (api/bodies.py)


def test_english_is_a_switch_away(accountant: TestClient) -> None:
    switched = accountant.get("/console/language/en?next=/desk")
    assert switched.headers["location"] == "/desk"
    page = accountant.get("/desk")
    assert "<h1>Desk</h1>" in page.text and "Refund requests to answer" in page.text
    accountant.get("/console/language/zh_CN?next=/desk")


def test_a_complaint_about_the_institution_is_answered_in_its_thread(
    accountant: TestClient, desk: Desk, web_engine: Engine
) -> None:
    listed = accountant.get("/desk/complaints")
    assert listed.status_code == 200 and f"/desk/complaints/{desk.complaint}" in listed.text
    page = accountant.get(f"/desk/complaints/{desk.complaint}")
    assert "老师连续两次迟到" in page.text
    before = _audit(web_engine, desk)
    blank = accountant.post(f"/desk/complaints/{desk.complaint}/reply", data=form_of(page.text, body="   "))
    assert blank.status_code == 422 and 'id="body-error"' in blank.text
    assert _audit(web_engine, desk) == before  # a blank answer changes nothing
    sent = accountant.post(
        f"/desk/complaints/{desk.complaint}/reply", data=form_of(page.text, body="已与老师谈话，下周起准时")
    )
    assert sent.status_code == 303
    thread = accountant.get(sent.headers["location"]).text
    assert "已与老师谈话，下周起准时" in thread and _audit(web_engine, desk) > before


def _posts(app: Any) -> set[str]:
    paths, routes = set(), list(app.routes)
    while routes:
        route = routes.pop()
        included = getattr(route, "original_router", None)
        if included is not None:
            routes.extend(included.routes)
        elif getattr(route, "path", "").startswith("/desk") and "POST" in getattr(route, "methods", ()):
            paths.add(route.path)
    return paths


def test_every_desk_form_is_for_institution_staff_only(web_engine: Engine, desk: Desk) -> None:
    """Nobody signed in is sent to sign in; a regulator, with a good CSRF token, is told 'not found'. Nothing moves."""
    app = create_app(web_engine)
    with sessionmaker(web_engine).begin() as s:
        asked = ask_refund(s, desk, family(s, desk, desk.piano, "白小雨", 5, paid=True, now=datetime.now(UTC)))
    posts = {
        p.replace("{request_id}", str(asked))
        .replace("{answer}", "approve")
        .replace("{complaint_id}", str(desk.complaint))
        for p in _posts(app)
    }
    assert len(posts) == 8, posts  # check, sign, collect, upload, a class session, answer a refund, payout, reply
    tables = ("contract", "collection", "class_record", "payout")
    before = [_count(web_engine, t, desk) for t in tables], _audit(web_engine, desk)
    with TestClient(app, follow_redirects=False) as nobody:
        assert {nobody.post(p, data={"key": "k"}).status_code for p in posts} == {303}
    with TestClient(app, follow_redirects=False) as regulator:
        reset_sign_in_attempts()
        sign_in(regulator, PEOPLE["zhang"])
        token = form_of(regulator.get("/console/account").text)["csrf_token"]
        body = {"csrf_token": token, "key": "reg", "contract_id": str(desk.contracts["张小华"]), "amount": "1",
                "bank_reference": "REG-1", "course": str(desk.piano), "day": local_date(datetime.now(UTC)).isoformat(),
                "hours": "1", "contract": str(desk.contracts["张小华"]), "reason": "x", "body": "x"}  # fmt: skip
        assert {p: regulator.post(p, data=body).status_code for p in posts} == dict.fromkeys(posts, 404)
    assert ([_count(web_engine, t, desk) for t in tables], _audit(web_engine, desk)) == before
