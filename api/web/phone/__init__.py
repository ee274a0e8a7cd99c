"""The parent's phone (/m): WeUI-like pages at a phone's width, Chinese first, no script needed.

face.py        the parent's cookie, route class (PageRoute's check around every page) and page helper
sign_in.py     sign-in by phone and one-time code, sign-out, the language, the development outbox
contracts.py   home (what waits, my contracts), a contract's hours and money, its terms
classes.py     classes waiting: confirm (with stars and a comment), dispute, evaluate
refunds.py     a refund previewed, asked for, followed to the bank
complaints.py  complaints to the regulator and their threads
"""

from __future__ import annotations

from fastapi import APIRouter

from api.web.phone import classes, complaints, contracts, refunds, sign_in

ROUTERS: list[APIRouter] = [m.router for m in (sign_in, contracts, classes, refunds, complaints)]
