"""Money in and out of escrow: each use case locks, checks, posts through the ledger and returns.

collections.py  families' payments: custody cash up, prepaid up (one set-based path; one is its one-item case)
batches.py      a batch import of collections: its limits and its view of each item
consumption.py  what a confirmed class releases and what a refund returns (shared by the flows)
classes.py      classes recorded, confirmed, disputed or deemed; release follows
class_sessions.py  a class for a group of students at once (each as classes.py records it), all or none
refunds.py      refund requests, answered or deemed approved
payouts.py      releasable money instructed to the institution, executed or failed by the bank;
                a closed institution's final settlement
holds.py        regulator holds (recalling instructions in flight) and closure with its bulk refund
books.py        what the books say, per institution and contract, now or as of an instant
desk.py         what an institution's desk reads: deadlines, what was paid out, its contracts at a glance
"""
