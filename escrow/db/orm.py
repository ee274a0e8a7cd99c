"""The declarative base shared by every record. Tables are made by migrations, never by create_all."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
