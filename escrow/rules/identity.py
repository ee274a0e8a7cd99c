"""Check digits of Chinese identifiers (pure): unified social credit codes and resident ID numbers."""

from __future__ import annotations

CREDIT_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100-2015: no I, O, S, V, Z
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECKS = "10X98765432"  # GB 11643-1999, ISO 7064 MOD 11-2


def credit_code_check_char(first17: str) -> str:
    total = sum(CREDIT_CODE_CHARS.index(c) * w for c, w in zip(first17, CREDIT_CODE_WEIGHTS, strict=True))
    return CREDIT_CODE_CHARS[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """Why `code` is not a valid unified social credit code, or None."""
    if len(code) != 18:
        return f"a unified social credit code has 18 characters, got {len(code)}"
    bad = sorted({c for c in code if c not in CREDIT_CODE_CHARS})
    if bad:
        return f"a unified social credit code uses digits and capitals except I, O, S, V, Z; got {''.join(bad)!r}"
    expected = credit_code_check_char(code[:17])
    if code[17] != expected:
        return f"check digit of credit code {code} should be {expected!r}, not {code[17]!r}: mistyped?"
    return None


def id_number_problem(number: str) -> str | None:
    """Why `number` is not a valid 18-digit resident ID number, or None."""
    if len(number) != 18 or not number[:17].isdigit() or number[17] not in "0123456789X":
        return "a resident ID number is 17 digits and a check digit or X"
    expected = ID_CHECKS[sum(int(d) * w for d, w in zip(number[:17], ID_WEIGHTS, strict=True)) % 11]
    if number[17] != expected:
        return f"check digit of the ID number should be {expected!r}: mistyped?"
    return None


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]


def mask_id_number(number: str) -> str:
    return number[:3] + "*" * 11 + number[-4:]
