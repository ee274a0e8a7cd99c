"""The demo district: not part of the core, built only from its public use cases.

district.py    690 institutions living three months through the use cases (and six bad actors)
copies.py      copies of seeded institutions under identities of their own, to reach the scale
bank_files.py  the statements a truthful custody bank would send for them
"""
