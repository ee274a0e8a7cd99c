"""Pure rules: no database, no framework, no I/O; each is a function of its arguments.

money.py     integer fen with a currency, largest-remainder splits, yuan formatting
policy.py    a jurisdiction's numbers (caps, windows, cadence) and the checks they imply
calendar.py  the jurisdiction's local date; working days on official calendar data handed in
identity.py  check digits of unified social credit codes and resident ID numbers
states.py    a StrEnum and a transition table per lifecycle; anything else is a Conflict
"""
