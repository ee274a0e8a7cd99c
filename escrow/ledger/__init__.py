"""The double-entry ledger.

    JournalTransaction 1--n Posting n--1 Account        (all keyed by institution_id first)
    postings sum to zero per currency; append-only; balances cached on the account by trigger
    an account has a kind (custody_cash, prepaid, releasable, ...) and, if a family's, its contract
    the database's own rules: migrations/sql/ledger.sql

    model.py        account kinds, legs, sides, entries and the rules they obey (pure)
    engine.py       open accounts, post, reverse, balances as of any instant (over a session)
    _accounts.py    the accounts a posting moves, read or locked in id order (private)
    _fused.py       how the engine writes an entry in one statement (private: its speed tricks)
    records.py      the ORM rows of the ledger tables
    idempotency.py  one key, one effect (`run_once`, value and replayed): claimed in the same
                    transaction as the effect

Use cases post values through the engine: `record_entries` (many NewEntry at once, with the domain
rows written with them), `record_entry` (one), `post_transaction` (one, once per idempotency key).
The rows the transaction has waiting (escrow/db/pending.py: its audit notes) go in the same statement.
"""
