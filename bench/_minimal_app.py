"""The least a FastAPI service can do per collection: one sync endpoint, one transaction dependency,
one ledger transfer in SQLAlchemy Core on the baseline's plain tables (no token, no idempotency key,
no audit, no checks). http_collections.py serves it with uvicorn beside escrow, on the same database,
so that what the framework costs can be told from what the service adds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI
from pydantic import BaseModel
from sqlalchemy import Connection, create_engine, text

engine = create_engine(os.environ["BENCH_MINIMAL_URL"], pool_size=10, max_overflow=10, pool_pre_ping=True)
app = FastAPI()


def transaction() -> Iterator[Connection]:
    with engine.begin() as conn:
        yield conn


class Transfer(BaseModel):
    amount_fen: int
    bank_reference: str


@app.post("/pairs/{pair}/transfers", status_code=201)
def transfer(
    pair: int, body: Transfer, conn: Annotated[Connection, Depends(transaction, scope="function")]
) -> dict[str, int]:
    cash, prepaid = 2 * pair + 1, 2 * pair + 2
    move = "UPDATE bench_account SET balance = balance + :amount WHERE id = :id"
    conn.execute(text(move), {"amount": body.amount_fen, "id": cash})
    conn.execute(text(move), {"amount": -body.amount_fen, "id": prepaid})
    txn = conn.execute(text("INSERT INTO bench_txn (kind) VALUES ('collection') RETURNING id")).scalar_one()
    conn.execute(
        text("INSERT INTO bench_posting (txn_id, account_id, amount) VALUES (:t, :a, :x), (:t, :b, :y)"),
        {"t": txn, "a": cash, "x": body.amount_fen, "b": prepaid, "y": -body.amount_fen},
    )
    return {"transaction_id": int(txn)}
