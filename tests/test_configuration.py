"""Every setting is documented where an operator looks: one README table row with its default, and a line
of `.env.example`; and `.env.example` as shipped is a valid configuration."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from escrow.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def variables() -> dict[str, str]:
    return {f"ESCROW_{name.upper()}": name for name in Settings.model_fields}


def test_the_readme_table_lists_every_setting_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `(ESCROW_[A-Z_]+)` \| ([^|]+) \|", (ROOT / "README.md").read_text(), re.M))
    assert set(rows) == set(variables())
    for variable, name in variables().items():
        field = Settings.model_fields[name]
        if field.default_factory is None and field.default is not None:
            shown = getattr(field.default, "value", field.default)
            assert rows[variable].strip() == f"`{shown}`", variable


def test_the_example_env_names_every_setting_and_is_valid(tmp_path: Path) -> None:
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#? ?(ESCROW_[A-Z_]+)=", example, re.M))
    assert named == set(variables())

    class FromExample(Settings):
        model_config = SettingsConfigDict(env_file=ROOT / ".env.example", env_prefix="ESCROW_")

    assert FromExample().model_dump() == Settings().model_dump()  # it sets the defaults, and reads as valid
