"""Who and what is supervised, before any money moves.

jurisdictions.py  region codes and their versioned policy
institutions.py   institutions (credit code checked) and the ledger accounts they open with
courses.py        courses offered, subject courses within their guide price
contracts.py      a guardian buys class hours; the caps of the policy in force are checked at signing
calendar.py       the official calendar kept as data (years loaded), and a jurisdiction's today
"""
