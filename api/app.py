"""The HTTP app. Started by import string (`api.app:serve_app`) so the core never imports `api`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import start_http_server
from sqlalchemy import Engine

from api import health, observability, problems, web
from api.bodies import BodyGuard
from api.observability import metrics_registry
from api.openapi import build_openapi
from api.routers import (
    alerts,
    batches,
    calendar,
    class_sessions,
    complaints,
    consumption,
    contracts,
    institutions,
    jurisdictions,
    payouts,
    reports,
    statements,
)
from api.throttle import Throttle
from escrow.access.messages import sender_for
from escrow.db.database import default_engine, make_sessionmaker
from escrow.logs import configure_logging
from escrow.rules.families import SenderKind
from escrow.settings import Settings, get_settings


def serve_app() -> FastAPI:
    """The app `escrow serve` runs (in each worker): logs configured, /metrics on its port when set."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings=settings, metrics_port=settings.metrics_port, metrics_host=settings.metrics_host)


def create_app(
    engine: Engine | None = None,
    settings: Settings | None = None,
    *,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> FastAPI:
    """Build the app on `engine`, or on the configured database; /metrics on `metrics_port` if given."""
    settings = settings or Settings()  # not the cached one: a test's app must not fix another's database
    engine = engine or default_engine()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = None
        if metrics_port is not None:  # a port of its own: not reachable through the API's
            metrics, _ = start_http_server(metrics_port, metrics_host, registry=metrics_registry(engine))
        yield
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()
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
    app.state.throttle = Throttle(settings.failed_auth_limit)
    app.state.messages = sender_for(settings)
    app.state.dev_outbox = settings.message_sender is SenderKind.DEV_OUTBOX  # the outbox page (never in production)
    problems.install(app)
    app.include_router(health.router)
    routers = (
        jurisdictions,
        institutions,
        contracts,
        batches,
        consumption,
        class_sessions,
        payouts,
        alerts,
        reports,
        statements,
        calendar,
        complaints,
    )
    for module in routers:
        app.include_router(module.router)
    web.install(app)
    # body limits, the token before the body, strict JSON, nothing the route does not use (api/bodies.py)
    app.add_middleware(
        BodyGuard, routes=[route for module in routers for route in module.router.routes] + web.guarded_routes()
    )
    app.add_middleware(observability.RequestLog)  # added last, so outermost: refusals by the guard are logged too
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
