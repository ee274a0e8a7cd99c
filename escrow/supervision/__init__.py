"""What the regulator watches.

checks.py   the ledger's invariants re-checked from the rows (findings, never fixes)
risks.py    risk rules: each a named function with a code, a severity and policy thresholds
alerts.py   alerts raised once when a condition turns on; acknowledged and resolved by people
reports.py  held funds per institution at any instant, aging; exports.py writes them as CSV and XLSX
jobs.py     the scheduled functions of `now`, each run recorded, never two at once
"""
