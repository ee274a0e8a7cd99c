"""The database, as infrastructure.

database.py  engines, sessions and migrations; the caller of a use case owns its transaction
embedded.py  an embedded PostgreSQL for newcomers
orm.py       the declarative base; records.py the ORM rows of the product tables
paging.py    keyset pagination with opaque cursors
pending.py   rows written later in the transaction: with the ledger's next write, or at commit
"""
