"""The institution's desk: its accountant's and front desk's own pages, under /desk, on the console's foundation
(sessions, CSRF, PageRoute, templating, gettext). Every page shows only the signed-in staff member's
institution; anyone else (another institution's staff, a regulator) is told 'not found', as the API does.

common.py       whose desk it is, messages in the reader's language, amounts and times as people type them
home.py         the dashboard (held, releasable, paid out, refunds owed, deadlines) and the complaints page
contracts.py    contracts: the list, one contract, signing with the policy's caps checked as the form is filled in
collections.py  collections one at a time, or a CSV file checked line by line before anything is kept
classes.py      a class session for a group: pick the course and day, tick the students present, one submit
money.py        refund requests answered before their deadline, payouts requested and followed to the bank
statements.py   the custody bank's statements and their lines
"""
