"""The HTTP app. Started by import string (`api.app:create_app`) so the core never imports `api`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from api import health, problems
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
from escrow.db.database import default_engine, make_sessionmaker


def create_app(engine: Engine | None = None) -> FastAPI:
    """Build the app on `engine`, or on the configured database."""
    engine = engine or default_engine()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="escrow",
        summary="Ledger and escrow engine for supervised prepaid tuition",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    problems.install(app)
    app.include_router(health.router)
    for module in (jurisdictions, institutions, contracts, batches, consumption, payouts, alerts, reports, statements):
        app.include_router(module.router)
    return app
