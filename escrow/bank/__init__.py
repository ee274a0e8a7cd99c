"""The custody bank's side of the books.

formats.py     statement files (documented CSV, MT940, camt.053) read into one shape
statements.py  a statement imported whole or not at all, once
reconcile.py   statements matched with the ledger's cash movements per institution and day
"""
