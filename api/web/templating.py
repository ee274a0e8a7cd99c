"""Templates in Simplified Chinese first, English by a switch: one Jinja2 environment per language.

Messages are written in English in the templates and translated by the gettext catalogs in locale/
(`pybabel extract -F babel.cfg`, `pybabel compile -d api/web/locale`, see locale/README).
"""

from __future__ import annotations

from functools import cache, partial
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.web import alert_texts
from api.web.formats import beijing, yuan

HERE = Path(__file__).parent
LANGUAGES = {"zh_CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"
LANGUAGE_COOKIE = "escrow_lang"


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
    words = translations(language)
    env.install_gettext_translations(words, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(
        yuan=yuan,
        beijing=beijing,
        rule_title=partial(alert_texts.title, words.gettext),
        alert_sentence=partial(alert_texts.sentence, words.gettext),
        evidence_items=partial(alert_texts.evidence_items, words.gettext),
    )
    env.globals.update(languages=LANGUAGES, rule_titles=alert_texts.TITLES)
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
