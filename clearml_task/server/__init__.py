"""The embedded ClearML-API server: a WSGI app over SQLite (see app.py for the transport rules)."""
