"""The console's tests: a district in a database of its own, an HTTP client, and one browser per session.

The browser is Debian's Chromium driven by Playwright (its own download is not reachable here); the
session installs chromium and a Chinese font with apt-get when they are missing, so a fresh machine passes.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from api.app import create_app
from api.web.throttle import reset_sign_in_attempts
from tests.factories import fresh_database
from tests.web.district import PASSWORD, District, seed_district
from tests.web.phone_district import PhoneDistrict, seed_phone_district

CHROMIUM = "/usr/bin/chromium"
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def web_engine(database_url: str) -> Iterator[Engine]:
    with fresh_database(database_url, "web") as engine:
        yield engine


@pytest.fixture(scope="session")
def district(web_engine: Engine) -> District:
    with sessionmaker(web_engine).begin() as session:
        return seed_district(session)


@pytest.fixture
def client(web_engine: Engine, district: District) -> Iterator[TestClient]:
    reset_sign_in_attempts()
    with TestClient(create_app(web_engine), follow_redirects=False) as client:
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has a form with its CSRF token"
    return found.group(1)


def routes_of(app: Any) -> list[Any]:
    """Every route of the app, those of included routers too (FastAPI keeps them behind `original_router`)."""
    found, pending = [], list(app.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)
        pending.extend(included.routes if included is not None else [])
        found += [] if included is not None else [route]
    return found


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    page = client.get("/console/sign-in")
    return client.post(
        "/console/sign-in", data={"name": name, "password": password, "csrf_token": csrf_of(page.text), "next": ""}
    )


def _install_browser_packages() -> None:
    if Path(CHROMIUM).exists() and CJK_FONT.exists():
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "chromium", "fonts-wqy-microhei"], check=True, env=env)


@pytest.fixture(scope="session")
def live_server(web_engine: Engine, district: District) -> Iterator[str]:
    """The app served on a free port in a thread, for the browser."""
    with _served(web_engine) as url:
        yield url


@contextmanager
def _served(engine: Engine) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _install_browser_packages()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    reset_sign_in_attempts()
    context = browser.new_context(base_url=live_server, viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    yield page
    context.close()


# The parent's phone (branch h20p): a district of its own, since its tests move money
@pytest.fixture(scope="session")
def phone_engine(database_url: str) -> Iterator[Engine]:
    with fresh_database(database_url, "phone") as engine:
        yield engine


@pytest.fixture(scope="session")
def phone_district(phone_engine: Engine) -> PhoneDistrict:
    with sessionmaker(phone_engine).begin() as session:
        return seed_phone_district(session)


@pytest.fixture
def phone_client(phone_engine: Engine, phone_district: PhoneDistrict) -> Iterator[TestClient]:
    reset_sign_in_attempts()
    with TestClient(create_app(phone_engine), follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="session")
def phone_server(phone_engine: Engine, phone_district: PhoneDistrict) -> Iterator[str]:
    """The app on the phone district, served on a free port in a thread, for the browser."""
    with _served(phone_engine) as url:
        yield url
