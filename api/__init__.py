"""The HTTP face of escrow.

    request -> router (parse) -> one use case in escrow/ -> response
                          \\-> escrow errors -> problems.py -> RFC 9457 problem+json

Handlers are thin; the session dependency owns the one database transaction of a request.
"""
