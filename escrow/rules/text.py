"""What text this service stores: any Unicode but control characters and lone surrogates (pure).

PostgreSQL cannot store NUL at all; the other C0 and C1 controls (tab, newline and carriage return
aside) have no place in a name, a reason or a bank reference, and can hide or reorder what a person
reads on a screen or in an export. A lone surrogate is what an unpaired `\\ud800` escape or an
undecodable byte becomes: it cannot be encoded as UTF-8.
"""

from __future__ import annotations

import re

FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def character_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (the first forbidden character), or None."""
    found = FORBIDDEN_CHARACTERS.search(value)
    return None if found is None else f"U+{ord(found.group()):04X} is not allowed in text"
