"""escrow: the ledger and escrow engine behind a tuition supervision platform.

    rules/        pure rules: fen, policy caps, check digits, working days, lifecycles (no database)
    ledger/       the double-entry engine, its rows, and idempotency keys
    access/       who is calling and what they may see; bearer tokens; the hash-chained audit trail
    registry/     jurisdictions and their policy, institutions, courses, contracts
    flows/        money in and out: collections, classes and release, refunds, payouts, holds and closure
    bank/         custody statement files read, imported once, reconciled with the ledger
    families/     what families see and say: their contracts, refunds followed, complaints, evaluations
    supervision/  invariant checks, risk rules, alerts, reports and exports, scheduled jobs
    db/           engines, sessions, migrations, the embedded server, ORM rows, paging
    demo/         the demo district and the copies that bring it to scale (outside the core)
    errors.py     the one error hierarchy; api/ maps it to HTTP
    settings.py   the one Settings class; cli.py the `escrow` command

Imports run downward: supervision -> bank | families -> flows -> registry -> access -> ledger -> db -> rules
(enforced by import-linter, see pyproject.toml). PostgreSQL enforces the money invariants itself
(migrations/); the Python checks give clear errors first.
"""
