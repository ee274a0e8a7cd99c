"""The console's pages, one module per part: each router's handlers are PageRoute's (api/web/routing.py)."""
