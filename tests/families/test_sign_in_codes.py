"""A parent signs in with their phone and a one-time code: sent through the outbox, hashed at rest, alive five
minutes and five tries, asked for at most once a minute and five times an hour per phone, and sent to any
mobile number alike, so that nothing tells whether a phone is a guardian's anywhere."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.access.messages import DevOutbox, SmsGateway, outbox_for
from escrow.access.parents import (
    CODE_LIFETIME,
    MAX_TRIES,
    CodeCheck,
    request_code,
    sign_in_with_code,
    sign_out_parent,
    signed_in_parent,
)
from escrow.errors import CodeRequestsExhausted, InvalidRequest, Unauthenticated
from escrow.families.overview import my_contracts
from tests.factories import phone

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
OUTBOX = DevOutbox()


def code_sent(db: sessionmaker[Session], to: str, at: datetime = NOW) -> str:
    """Ask for a code for `to` and read it from the development outbox, as a developer does."""
    with db.begin() as s:
        request_code(s, phone=to, sender=OUTBOX, now=at)
    with db.begin() as s:
        body = _code_message(s, to)
    found = re.search(r"\b(\d{6})\b", body)
    assert found, body
    return found.group(1)


def _code_message(s: Session, to: str) -> str:
    return next(m.body for m in outbox_for(s, recipient=to) if m.kind == "sign_in_code")


def tried(db: sessionmaker[Session], to: str, code: str, at: datetime = NOW) -> CodeCheck:
    with db.begin() as s:
        return sign_in_with_code(s, phone=to, code=code, now=at)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_the_code_reaches_the_outbox_and_is_kept_only_as_a_hash(db: sessionmaker[Session]) -> None:
    to = phone()
    code = code_sent(db, to)
    with db.begin() as s:
        stored = s.execute(text("SELECT row_to_json(c)::text FROM sign_in_code c WHERE phone = :p"), {"p": to}).one()[0]
        sessions = s.scalar(text("SELECT count(*) FROM parent_session WHERE phone = :p"), {"p": to})
    assert code not in stored and '"code_hash":"$argon2id$' in stored
    assert sessions == 0


def test_the_right_code_signs_in_once(db: sessionmaker[Session]) -> None:
    to = phone()
    code = code_sent(db, to)
    signed = tried(db, to, code, NOW + timedelta(minutes=1))
    assert signed.refused is None and signed.secret and signed.person and signed.person.caller.guardian_phone == to
    with db.begin() as s:
        assert signed_in_parent(s, secret=signed.secret, now=NOW + timedelta(days=6)).phone == to
        with pytest.raises(Unauthenticated):
            signed_in_parent(s, secret=signed.secret, now=NOW + timedelta(days=7, minutes=2))  # a week at most
    assert tried(db, to, code, NOW + timedelta(minutes=2)).refused == "expired"  # used: gone


def test_a_code_lives_five_minutes(db: sessionmaker[Session]) -> None:
    to = phone()
    code = code_sent(db, to)
    assert timedelta(minutes=5) == CODE_LIFETIME
    assert tried(db, to, code, NOW + CODE_LIFETIME).refused == "expired"
    assert tried(db, to, code, NOW + CODE_LIFETIME - timedelta(seconds=1)).refused is None


def test_five_wrong_tries_end_the_code(db: sessionmaker[Session]) -> None:
    to = phone()
    code = code_sent(db, to)
    answers = [tried(db, to, wrong(code)) for _ in range(MAX_TRIES)]
    assert [(a.refused, a.tries_left) for a in answers] == [("wrong", 4), ("wrong", 3), ("wrong", 2), ("wrong", 1),
                                                            ("exhausted", 0)]  # fmt: skip
    assert tried(db, to, code).refused == "expired"  # the right code no longer signs in
    with db.begin() as s:
        actions = s.scalars(
            text("SELECT action FROM audit_record WHERE actor = :a"), {"a": f"parent:{to[:3]}****{to[-4:]}"}
        )
        assert sorted(set(actions)) == ["parent.code_exhausted", "parent.code_sent"]


def test_a_malformed_code_counts_as_a_wrong_try(db: sessionmaker[Session]) -> None:
    to = phone()
    code_sent(db, to)
    assert (tried(db, to, "12ab").refused, tried(db, to, "").tries_left) == ("wrong", 3)


def test_codes_are_asked_for_at_most_once_a_minute_and_five_times_an_hour(db: sessionmaker[Session]) -> None:
    to = phone()
    code_sent(db, to)
    with db.begin() as s, pytest.raises(CodeRequestsExhausted) as soon:
        request_code(s, phone=to, sender=OUTBOX, now=NOW + timedelta(seconds=30))
    assert soon.value.retry_after_s == 30
    for minute in (1, 2, 3, 4):
        code_sent(db, to, NOW + timedelta(minutes=minute))
    with db.begin() as s, pytest.raises(CodeRequestsExhausted) as hourly:
        request_code(s, phone=to, sender=OUTBOX, now=NOW + timedelta(minutes=10))
    assert hourly.value.retry_after_s == 50 * 60  # when the first of the five leaves the hour
    code_sent(db, to, NOW + timedelta(hours=1, seconds=1))


def test_a_new_code_ends_the_one_before(db: sessionmaker[Session]) -> None:
    to = phone()
    first = code_sent(db, to)
    second = code_sent(db, to, NOW + timedelta(minutes=1))
    if first != second:
        assert tried(db, to, first, NOW + timedelta(minutes=2)).refused == "wrong"
    assert tried(db, to, second, NOW + timedelta(minutes=2)).refused is None
    with db.begin() as s:
        outcomes = s.scalars(text("SELECT outcome FROM sign_in_code WHERE phone = :p ORDER BY created_at"), {"p": to})
        assert list(outcomes) == ["superseded", "used"]


def test_any_mobile_number_gets_a_code_alike_and_one_without_contracts_sees_none(
    db: sessionmaker[Session], institution: object
) -> None:
    guardian, stranger = _guardian_phone(db), phone()
    answers = {}
    for to in (guardian, stranger):
        with db.begin() as s:
            answers[to] = request_code(s, phone=to, sender=OUTBOX, now=NOW)
        with db.begin() as s:
            answers[to + "body"] = re.sub(r"\d{6}", "CODE", _code_message(s, to))
    assert answers[guardian] == answers[stranger] and answers[guardian + "body"] == answers[stranger + "body"]
    code = code_sent(db, stranger, NOW + timedelta(minutes=2))
    signed = tried(db, stranger, code, NOW + timedelta(minutes=2))
    assert signed.person is not None
    with db.begin() as s:
        assert my_contracts(s, caller=signed.person.caller) == []


def _guardian_phone(db: sessionmaker[Session]) -> str:
    with db.begin() as s:
        known = s.scalar(text("SELECT phone FROM guardian LIMIT 1"))
    return str(known) if known else phone()


def test_a_malformed_phone_is_refused_and_nothing_is_sent(db: sessionmaker[Session]) -> None:
    with db.begin() as s, pytest.raises(InvalidRequest) as refused:
        request_code(s, phone="1234567", sender=OUTBOX, now=NOW)
    assert refused.value.context == {"field": "phone", "reason": "phone_format"}
    with db.begin() as s:
        assert outbox_for(s, recipient="1234567") == []


def test_signing_out_ends_the_session(db: sessionmaker[Session]) -> None:
    to = phone()
    signed = tried(db, to, code_sent(db, to))
    assert signed.secret
    with db.begin() as s:
        sign_out_parent(s, secret=signed.secret, now=NOW + timedelta(minutes=3))
        sign_out_parent(s, secret=signed.secret, now=NOW + timedelta(minutes=4))  # twice is once
    with db.begin() as s, pytest.raises(Unauthenticated):
        signed_in_parent(s, secret=signed.secret, now=NOW + timedelta(minutes=5))


def test_wrong_tries_at_the_same_moment_are_all_counted(db: sessionmaker[Session]) -> None:
    to = phone()
    code = code_sent(db, to)
    barrier = threading.Barrier(4)

    def guess() -> None:
        barrier.wait()
        tried(db, to, wrong(code))

    threads = [threading.Thread(target=guess) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.begin() as s:
        assert s.scalar(text("SELECT attempts FROM sign_in_code WHERE phone = :p"), {"p": to}) == 4


class _Gateway(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_sms_gateway_gets_the_code_after_commit_and_the_outbox_keeps_it_masked(db: sessionmaker[Session]) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gateway = SmsGateway(f"http://127.0.0.1:{server.server_port}/sms")
    to, rolled_back = phone(), phone()
    try:
        s = db()
        request_code(s, phone=rolled_back, sender=gateway, now=NOW)
        s.rollback()  # a change rolled back tells no one
        s.close()
        with db.begin() as s:
            request_code(s, phone=to, sender=gateway, now=NOW)
    finally:
        server.shutdown()
        server.server_close()
    assert [m["phone"] for m in _Gateway.received] == [to]
    code = re.search(r"\d{6}", _Gateway.received[0]["text"])
    assert code
    with db.begin() as s:
        (kept,) = outbox_for(s, recipient=to)
    assert code.group(0) not in kept.body and "******" in kept.body and kept.sent_by == "sms_gateway"
