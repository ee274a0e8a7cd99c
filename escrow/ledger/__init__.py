"""The double-entry ledger.

    JournalTransaction 1--n Posting n--1 Account        (all keyed by institution_id first)
    postings sum to zero per currency; append-only; balances cached on the account by trigger
    an account has a kind (custody_cash, prepaid, releasable, ...) and, if a family's, its contract
    the database's own rules: migrations/sql/ledger.sql

    model.py        account kinds, legs, sides, entries and the rules they obey (pure)
    engine.py       open accounts, post, reverse, balances as of any instant (over a session)
    records.py      the ORM rows of the ledger tables
    idempotency.py  one key, one effect: claimed in the same transaction as the postings

Use cases post through `engine.post_transaction`; nothing else writes postings.
"""
