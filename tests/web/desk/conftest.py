"""The desk's tests: an institution with a desk in the console's test district (tests/web/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from tests.web.conftest import sign_in
from tests.web.desk.district import DESK_PEOPLE, Desk, seed_desk
from tests.web.district import District


@pytest.fixture(scope="session")
def desk(web_engine: Engine, district: District) -> Desk:
    with sessionmaker(web_engine).begin() as session:
        return seed_desk(session, district)


@pytest.fixture
def accountant(client: TestClient, desk: Desk) -> TestClient:
    """The client signed in as D's accountant."""
    assert sign_in(client, DESK_PEOPLE["accountant"]).status_code == 303
    return client


def form_of(html: str, **fields: Any) -> dict[str, Any]:
    """The CSRF token and key of the page's first form, with `fields`."""
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    key = re.search(r'name="key" value="([^"]+)"', html)
    assert token, "the page has a form"
    return {"csrf_token": token.group(1), **({"key": key.group(1)} if key else {}), **fields}
