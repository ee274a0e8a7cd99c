"""Who is calling, what they may see, and the record of what they did.

callers.py  Caller (role and scope) and the one scope filter per kind of object
tokens.py   bearer tokens for machines: issued by the command line, stored only as hashes
users.py    people who sign in by name and password; parents.py: parents by phone and a one-time code
messages.py messages to people, written to the outbox and sent by the configured backend
audit.py    the append-only audit trail, hash-chained per institution, and its verification
"""
