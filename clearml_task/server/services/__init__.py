"""One module per ClearML service; importing them registers their endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearml_task.server import queue_entries
from clearml_task.server.services import (
    auth,
    debug,
    events,
    models,
    projects,
    queues,
    server,
    task_objects,
    tasks,
    users,
    workers,
)

if TYPE_CHECKING:
    from clearml_task.server.store import Tx

__all__ = [
    "auth",
    "bootstrap",
    "debug",
    "events",
    "models",
    "projects",
    "queues",
    "server",
    "task_objects",
    "tasks",
    "users",
    "workers",
]


def bootstrap(tx: Tx) -> None:
    """What a fresh database needs: a queue tagged `default` (agents without --queue take it)."""
    queue_entries.ensure_default(tx)
