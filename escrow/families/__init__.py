"""What families see and say, on their phone and over the API (on top of the flows, never beside them).

overview.py     my contracts: hours bought, given, confirmed and left; paid, held, refunded; the terms
refunds.py      a refund previewed (changing nothing) and followed from asking to the bank's payment
complaints.py   complaints to the regulator about an institution: submitted -> assigned -> answered -> closed
evaluations.py  1 to 5 stars and a comment on a confirmed class, once; per institution with the average
reminders.py    the job that tells a family a class waits for its word, and reminds it before silence confirms
"""
