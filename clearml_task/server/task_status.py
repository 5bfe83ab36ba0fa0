"""The task status state machine: which changes are allowed and what each change stamps."""

from __future__ import annotations

from typing import Any

from clearml_task.server import errors, queue_entries
from clearml_task.server.endpoints import now
from clearml_task.server.store import Tx
from clearml_task.vocabulary import (
    CLOSED,
    COMPLETED,
    CREATED,
    FAILED,
    FINAL_STATUSES,
    IN_PROGRESS,
    PUBLISHED,
    PUBLISHING,
    QUEUED,
    STOPPED,
)

# Allowed status changes (ClearML's table); the same status is always allowed, `force` skips the check.
TRANSITIONS: dict[str, frozenset[str]] = {
    CREATED: frozenset({QUEUED, IN_PROGRESS}),
    QUEUED: frozenset({CREATED, IN_PROGRESS, STOPPED}),
    IN_PROGRESS: frozenset({STOPPED, FAILED, CREATED, COMPLETED}),
    STOPPED: frozenset({CLOSED, CREATED, FAILED, QUEUED, IN_PROGRESS, PUBLISHED, PUBLISHING, COMPLETED}),
    CLOSED: frozenset({CREATED, FAILED, PUBLISHED, PUBLISHING, STOPPED}),
    FAILED: frozenset({CREATED, STOPPED, PUBLISHED, QUEUED}),
    PUBLISHING: frozenset({PUBLISHED}),
    PUBLISHED: frozenset(),
    COMPLETED: frozenset({PUBLISHED, IN_PROGRESS, CREATED}),
    "unknown": frozenset(),
}


def can_change(old: str, new: str) -> bool:
    return old == new or new in TRANSITIONS.get(old, frozenset())


def set_status(
    tx: Tx,
    task: dict[str, Any],
    new: str,
    *,
    force: bool = False,
    reason: str | None = None,
    message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move `task` to `new` if the table allows it; returns the fields that changed."""
    old = task["status"]
    if not force and not can_change(old, new):
        raise errors.invalid_task_status(
            f"cannot change status from {old} to {new}", current_status=old, new_status=new
        )
    stamp = now()
    fields: dict[str, Any] = {
        "status": new,
        "status_changed": stamp,
        "status_reason": reason or "",
        "status_message": message or "",
        "last_update": stamp,
        "last_change": stamp,
    }
    if new == IN_PROGRESS and old != IN_PROGRESS:
        fields["started"] = stamp
        fields["completed"] = None
    if new in FINAL_STATUSES and old not in FINAL_STATUSES:
        fields["completed"] = stamp
    if old == QUEUED and new != QUEUED:
        queue_entries.remove_from_all(tx, task["id"])
    fields.update(extra or {})
    task.update(fields)
    tx.put("tasks", task)
    return fields
