"""The regulator's console timed as a person meets it, for bench/regulator_day.py: `escrow serve` on the books,
a regulator of their jurisdiction signed in through the sign-in form, and the time to first byte of a page
(the request sent until its status line and headers are read), once cold and then `repeat` times more.

Not a bench itself: run_all.py skips modules whose name starts with an underscore.
"""

from __future__ import annotations

import http.client
import re
import secrets
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from _bench import Service, free_port
from sqlalchemy import Engine

from escrow.access.audit import OPERATOR
from escrow.access.callers import Role
from escrow.access.users import create_user
from escrow.db.database import make_sessionmaker

PAGES = ("/console/dashboard", "/console/reports")


def console_ttfb(engine: Engine, url: str, *, jurisdiction: str, now: datetime, repeat: int) -> dict[str, Any]:
    """Each page's time to first byte, in seconds: cold (the service's first request of it) and the warm
    median of `repeat` more, with every sample."""
    name, password = f"bench-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    with make_sessionmaker(engine).begin() as session:
        create_user(session, name=name, role=Role.REGULATOR, password=password, jurisdictions=[jurisdiction],
                    by=OPERATOR, now=now)  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        service = Service(url, workers=1, port=free_port(), log=Path(folder) / "serve.log")
        service.start()
        try:
            cookie = _sign_in(service.port, name, password)
            found: dict[str, Any] = {}
            for path in PAGES:
                samples = [_ttfb(service.port, path, cookie) for _ in range(repeat + 1)]
                found[path] = {
                    "cold_s": round(samples[0], 3),
                    "warm_s": round(statistics.median(samples[1:]), 3) if repeat else None,
                    "samples_s": [round(s, 3) for s in samples],
                }
            return found
        finally:
            service.stop()


def _sign_in(port: int, name: str, password: str) -> str:
    """The session cookie of the person, signed in through the form as a browser would."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("GET", "/console/sign-in")
        form = conn.getresponse()
        html = form.read().decode()
        form_cookie = _cookie(form, "escrow_sign_in")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert csrf, "the sign-in form carries its CSRF token"
        body = urlencode({"name": name, "password": password, "csrf_token": csrf.group(1), "next": ""})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"escrow_sign_in={form_cookie}"}
        conn.request("POST", "/console/sign-in", body=body, headers=headers)
        signed = conn.getresponse()
        signed.read()
        assert signed.status == 303, f"sign-in answered {signed.status}"
        return f"escrow_session={_cookie(signed, 'escrow_session')}"
    finally:
        conn.close()


def _cookie(response: http.client.HTTPResponse, name: str) -> str:
    for header in response.headers.get_all("set-cookie") or []:
        if header.startswith(f"{name}="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie was set")


def _ttfb(port: int, path: str, cookie: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        started = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie})
        response = conn.getresponse()  # the status line and headers have arrived
        first_byte = time.perf_counter() - started
        response.read()
        assert response.status == 200, f"{path} answered {response.status}"
        return first_byte
    finally:
        conn.close()
