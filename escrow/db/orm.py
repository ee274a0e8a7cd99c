"""The declarative base shared by every record. Tables are made by migrations, never by create_all."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Enum
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def text_enum(values: type[StrEnum]) -> Enum:
    """A text column holding one of a StrEnum's values, read back as its member; a CHECK made by the
    migrations (not by SQLAlchemy) keeps any other value out of the table."""
    return Enum(
        values,
        native_enum=False,
        create_constraint=False,
        length=None,
        values_callable=lambda members: [m.value for m in members],
    )
