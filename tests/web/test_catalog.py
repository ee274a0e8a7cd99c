"""Every word the console shows has its Chinese translation, and the committed .mo is the .po compiled."""

from __future__ import annotations

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from api.web.templating import HERE

CATALOG = HERE / "locale" / "zh_CN" / "LC_MESSAGES"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def test_every_message_of_the_pages_is_translated_into_chinese() -> None:
    with (CATALOG / "messages.po").open("rb") as po:
        catalog = read_po(po)
    found = {m[2] for m in extract_from_dir(str(HERE), METHODS, keywords={"_": None}, options_map=OPTIONS)}
    untranslated = [m for m in found if isinstance(m, str) and (m not in catalog or not catalog[m].string)]
    assert untranslated == []


def test_the_compiled_catalog_is_up_to_date() -> None:
    with (CATALOG / "messages.po").open("rb") as po, (CATALOG / "messages.mo").open("rb") as mo:
        source, compiled = read_po(po), read_mo(mo)
    assert {m.id: m.string for m in source if m.id} == {m.id: m.string for m in compiled if m.id}
