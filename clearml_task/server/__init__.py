"""The embedded ClearML-API server: a WSGI app over SQLite (see app.py for the transport rules)."""

from __future__ import annotations

# The API level we answer with; clients choose their calls by it (ClearML clients need >= 2.14).
API_VERSION = "2.23"
SERVER_VERSION = "1.16.0"
