"""Templates in Simplified Chinese first, English by a switch: one Jinja2 environment per language.

Messages are written in English in the templates and translated by the gettext catalogs in locale/
(`pybabel extract -F babel.cfg`, `pybabel compile -d api/web/locale`, see locale/README).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from escrow.rules.calendar import BUSINESS_TZ
from escrow.rules.money import FEN_PER_YUAN

HERE = Path(__file__).parent
LANGUAGES = {"zh_CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"
LANGUAGE_COOKIE = "escrow_lang"


def yuan(fen: int | None) -> str:
    """123456789 fen -> '1,234,567.89' (two decimals, thousands separators; no floats)."""
    if fen is None:
        return ""
    whole, cents = divmod(abs(int(fen)), FEN_PER_YUAN)
    return f"{'-' if fen < 0 else ''}{whole:,}.{cents:02d}"


def beijing(instant: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant shown in Beijing time."""
    return "" if instant is None else instant.astimezone(BUSINESS_TZ).strftime(fmt)


def fen_items(evidence: dict[str, Any] | None) -> list[tuple[str, int]]:
    """The amounts in an alert's evidence (keys ending in _fen), to show in yuan."""
    return [
        (k.removesuffix("_fen"), v) for k, v in (evidence or {}).items() if k.endswith("_fen") and isinstance(v, int)
    ]


@cache
def translations(language: str) -> NullTranslations:
    if language == "en":
        return NullTranslations()  # the messages are written in English
    return Translations.load(str(HERE / "locale"), [language], domain="messages")


@cache
def environment(language: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(yuan=yuan, beijing=beijing, fen_items=fen_items)
    env.globals.update(languages=LANGUAGES)
    return env


def language_of(request: Request) -> str:
    chosen = request.cookies.get(LANGUAGE_COOKIE, DEFAULT_LANGUAGE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def gettext(request: Request, message: str) -> str:
    """A message for the person, in their language (for flashes and errors made in code)."""
    return translations(language_of(request)).gettext(message)


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    language = language_of(request)
    page = environment(language).get_template(template)
    html = page.render(request=request, language=language, html_lang=language.replace("_", "-"), **context)
    return HTMLResponse(html, status_code=status_code)
