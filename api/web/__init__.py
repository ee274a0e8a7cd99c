"""The web face: server-rendered pages (Jinja2, htmx) in the same app, calling the same use cases.

templating.py  one Jinja2 environment per language (gettext catalogs in locale/), money and time filters
formats.py     amounts in yuan and instants in Beijing time; alert_texts.py: rules, alert sentences and
               evidence labels in the person's language (the API keeps their English codes)
routing.py     PageRoute: every page resolves the signed-in person, checks CSRF on posts, and answers
               404 for what lies outside their scope, in the handler's one thread
sessions.py    the session cookie and the CSRF token; throttle.py: sign-in attempts per client
pages/         the console's pages; desk/: the institution's desk (under /desk)
phone/         the parent's phone (/m), on the same foundation; static/phone: its WeUI-like stylesheet
static/        the console's and the desk's stylesheets and the vendored assets (VERSIONS)
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute

from api.web import phone
from api.web.desk import classes, collections, contracts, home, money, statements
from api.web.desk import complaints as desk_complaints
from api.web.pages import account, actions, alerts, complaints, dashboard, institutions, reports

STATIC = Path(__file__).parent / "static"
STATIC_URL = "/console/static"


DESK = (home, contracts, collections, classes, money, statements, desk_complaints)


def guarded_routes() -> list[BaseRoute]:
    """The pages whose bodies the API's guard limits too (api/bodies.py): the desk's, which take a file."""
    return [route for module in DESK for route in module.router.routes]


def install(app: FastAPI) -> None:
    """Serve the console under /console, the desk under /desk, assets from the app itself, /docs without a CDN."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="console-static")
    app.mount("/m/static", StaticFiles(directory=STATIC / "phone"), name="phone-static")
    for module in (account, dashboard, institutions, alerts, actions, reports, complaints):
        app.include_router(module.router)
    for router in phone.ROUTERS:
        app.include_router(router)
    for module in DESK:
        app.include_router(module.router)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{STATIC_URL}/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/vendor/swagger-ui/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # else it asks validator.swagger.io, off the intranet
        )
