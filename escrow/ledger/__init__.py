"""The double-entry ledger.

    JournalTransaction 1--n Posting n--1 Account        (all keyed by institution_id first)
    postings sum to zero per currency; append-only; balances cached on the account by trigger

Use cases post through `engine.post_transaction`; nothing else writes postings.
"""
