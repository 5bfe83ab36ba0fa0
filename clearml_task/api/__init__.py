"""The ClearML REST client: one Session (transport, auth, retries, envelope) and typed calls on top."""

from __future__ import annotations

from clearml_task.api.client import Client
from clearml_task.api.session import Session

__all__ = ["Client", "Session"]
