"""The HTTP app. Started by import string (`api.app:create_app`) so the core never imports `api`."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import Engine

from api import health, problems, web
from api.auth import get_caller
from api.routers import (
    alerts,
    batches,
    consumption,
    contracts,
    institutions,
    jurisdictions,
    payouts,
    reports,
    statements,
)
from api.routing import HandlerThreadRoute
from escrow.db.database import default_engine, make_sessionmaker

# Handlers run in a thread pool, and a thread whose database answer is back waits for the GIL until the
# running thread gives it up: by default after 5 ms. A request makes a dozen round trips, each of which
# would queue so behind other requests' Python; at 0.5 ms they do not (bench/http_collections.py).
GIL_SWITCH_INTERVAL_S = 0.0005


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the app on `engine`, or on the configured database."""
    engine = engine or default_engine()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="escrow",
        summary="Ledger and escrow engine for supervised prepaid tuition",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by api/web with the vendored Swagger UI: no CDN
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    problems.install(app)
    app.include_router(health.router)
    for module in (jurisdictions, institutions, contracts, batches, consumption, payouts, alerts, reports, statements):
        app.include_router(module.router)
    web.install(app)
    check_routes(app)
    return app


def check_routes(app: FastAPI) -> None:
    """Only HandlerThreadRoute turns the request's Bearer into the Caller a handler takes."""
    plain = [r for r in app.routes if isinstance(r, APIRoute) and not isinstance(r, HandlerThreadRoute)]
    for route in plain:
        if any(d.call is get_caller for d in route.dependant.dependencies):
            raise TypeError(f"{route.path} takes the caller: its router needs route_class=HandlerThreadRoute")
