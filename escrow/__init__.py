"""escrow: the ledger and escrow engine behind a tuition supervision platform.

    money.py          integer fen, largest-remainder splits (pure)
    ledger/model.py   legs, sides, entries and the rules they obey (pure)
    ledger/engine.py  open accounts, post, reverse, balances as of any instant (over a session)
    idempotency.py    one key, one effect: claimed in the same transaction as the postings
    database.py       engines, sessions, migrations; embedded.py starts a local PostgreSQL
    errors.py         the one error hierarchy; api/ maps it to HTTP

PostgreSQL enforces the money invariants itself (migrations/); the Python checks give clear errors first.
"""
