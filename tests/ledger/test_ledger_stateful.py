"""The engine against a plain Python model of the books (Hypothesis stateful testing).

After every step: the books balance, each cached balance equals the sum of its postings and the
model's balance, and a refused step changed nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID, uuid4

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from escrow.errors import AlreadyReversed, EscrowError, InsufficientFunds, UnbalancedTransaction
from escrow.ledger import engine
from escrow.ledger.model import AccountKind, Leg, NewEntry, Side
from tests.factories import bare_institution
from tests.ledger_helpers import balances, books_problems, key


@dataclass
class ModelAccount:
    code: str
    side: Side
    allow_negative: bool
    balance: int = 0


@dataclass
class Model:
    accounts: dict[UUID, ModelAccount] = field(default_factory=dict)
    transactions: int = 0

    def outcome(self, legs: list[tuple[UUID, int]]) -> type[EscrowError] | None:
        """What the engine must answer, worked out by hand."""
        if len(legs) < 2 or any(amount == 0 for _, amount in legs) or sum(a for _, a in legs) != 0:
            return UnbalancedTransaction
        after = {a: m.balance for a, m in self.accounts.items()}
        for account, amount in legs:
            after[account] += amount if self.accounts[account].side is Side.DEBIT else -amount
        if any(after[a] < 0 and not self.accounts[a].allow_negative for a, _ in legs):
            return InsufficientFunds
        return None

    def apply(self, legs: list[tuple[UUID, int]]) -> None:
        for account, amount in legs:
            m = self.accounts[account]
            m.balance += amount if m.side is Side.DEBIT else -amount
        self.transactions += 1


def test_engine_matches_a_plain_model(db: sessionmaker[Session]) -> None:
    class Books(RuleBasedStateMachine):
        accounts = Bundle("accounts")
        posted = Bundle("posted")

        def __init__(self) -> None:
            super().__init__()
            with db.begin() as s:
                self.institution = bare_institution(s)
            self.model = Model()
            self.requests: list[tuple[str, list[tuple[UUID, int]], UUID]] = []

        def snapshot(self) -> tuple[dict[str, int], int, int, int]:
            with db.begin() as s:
                counts = s.execute(
                    text(
                        "SELECT (SELECT count(*) FROM journal_transaction WHERE institution_id = :i),"
                        " (SELECT count(*) FROM posting WHERE institution_id = :i),"
                        " (SELECT count(*) FROM idempotency_record WHERE institution_id = :i)"
                    ),
                    {"i": self.institution},
                ).one()
            return balances(db, self.institution), counts[0], counts[1], counts[2]

        def expect_refusal(self, expected: type[EscrowError], action: object) -> None:
            before = self.snapshot()
            try:
                with db.begin() as s:
                    action(s)  # type: ignore[operator]
            except expected:
                pass
            else:
                raise AssertionError(f"expected {expected.__name__}")
            assert self.snapshot() == before, "a refused step changed the books"

        @rule(target=accounts, side=st.sampled_from(Side), allow_negative=st.booleans())
        def open_account(self, side: Side, allow_negative: bool) -> UUID:
            code = f"a{len(self.model.accounts)}"
            with db.begin() as s:
                account = engine.open_account(
                    s,
                    institution_id=self.institution,
                    code=code,
                    kind=AccountKind.OTHER,
                    normal_side=side,
                    allow_negative=allow_negative,
                )
            self.model.accounts[account.id] = ModelAccount(code, side, allow_negative)
            return account.id

        @rule(
            target=posted,
            chosen=st.lists(st.tuples(accounts, st.integers(-2_000, 2_000)), min_size=1, max_size=4),
            balance_it=st.booleans(),
        )
        def post(self, chosen: list[tuple[UUID, int]], balance_it: bool) -> UUID | None:
            legs = list(chosen)
            if balance_it and len(legs) >= 2:
                legs[-1] = (legs[-1][0], -sum(a for _, a in legs[:-1]))
            request_key = uuid4().hex
            expected = self.model.outcome(legs)

            def do(s: Session) -> UUID:
                return engine.post_transaction(
                    s,
                    institution_id=self.institution,
                    idempotency=key(request_key),
                    entry=NewEntry(kind="step", legs=[Leg(a, amount) for a, amount in legs]),
                ).value.id

            if expected is not None:
                self.expect_refusal(expected, do)
                return None
            with db.begin() as s:
                txn = do(s)
            self.model.apply(legs)
            self.requests.append((request_key, legs, txn))
            return txn

        @rule(txn=consumes(posted))
        def reverse(self, txn: UUID | None) -> None:
            if txn is None:
                return
            with db.begin() as s:
                entry = engine.get_entry(s, institution_id=self.institution, transaction_id=txn)
            undo = [(p.account_id, -p.amount) for p in entry.postings]
            expected = self.model.outcome(undo)

            def do(s: Session) -> None:
                engine.reverse_transaction(
                    s, institution_id=self.institution, transaction_id=txn, reason="test", idempotency=key()
                )

            if expected is not None:
                self.expect_refusal(expected, do)
                return
            with db.begin() as s:
                do(s)
            self.model.apply(undo)
            self.expect_refusal(AlreadyReversed, do)

        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            if not self.requests:
                return
            request_key, legs, txn = data.draw(st.sampled_from(self.requests))
            before = self.snapshot()
            with db.begin() as s:
                again = engine.post_transaction(
                    s,
                    institution_id=self.institution,
                    idempotency=key(request_key),
                    entry=NewEntry(kind="step", legs=[Leg(a, amount) for a, amount in legs]),
                )
            assert (again.value.id, again.replayed) == (txn, True)
            assert self.snapshot() == before

        @invariant()
        def books_agree_with_the_model(self) -> None:
            assert books_problems(db, self.institution) == []
            assert balances(db, self.institution) == {m.code: m.balance for m in self.model.accounts.values()}
            _, transactions, _, _ = self.snapshot()
            assert transactions == self.model.transactions

    run_state_machine_as_test(
        Books,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
