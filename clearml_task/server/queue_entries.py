"""Queue documents and their entries: what queues.* and the task status changes share."""

from __future__ import annotations

import json
from typing import Any

from clearml_task.server import errors
from clearml_task.server.endpoints import new_id, now
from clearml_task.server.store import Tx

DEFAULT_TAG = "default"


def get(tx: Tx, queue_id: str) -> dict[str, Any]:
    return tx.require("queues", queue_id, lambda: errors.invalid_queue_id(queue_id=queue_id))


def by_name(tx: Tx, name: str) -> dict[str, Any] | None:
    found = tx.find("queues", "name = ?", (name,))
    return found[0] if found else None


def create(
    tx: Tx,
    name: str,
    *,
    tags: list[str] | None = None,
    system_tags: list[str] | None = None,
    user: str | None = None,
    company: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    name = name.strip()
    if not name:
        raise errors.validation_error("queue name must not be empty")
    if tx.name_taken("queues", name):
        raise errors.not_unique("a queue with this name exists", name=name)
    stamp = now()
    doc = {
        "id": new_id(),
        "name": name,
        "display_name": name,
        "created": stamp,
        "last_update": stamp,
        "tags": list(tags or []),
        "system_tags": list(system_tags or []),
        "entries": [],
        "metadata": metadata or {},
        "user": user,
        "company": company,
    }
    tx.put("queues", doc)
    return str(doc["id"])


def ensure_default(tx: Tx) -> None:
    if any(DEFAULT_TAG in q.get("system_tags", []) for q in tx.find("queues")):
        return
    existing = by_name(tx, "default")
    if existing is None:
        create(tx, "default", system_tags=[DEFAULT_TAG])
    else:
        existing["system_tags"] = [*existing.get("system_tags", []), DEFAULT_TAG]
        tx.put("queues", existing)


def default(tx: Tx) -> dict[str, Any]:
    found = [q for q in tx.find("queues") if DEFAULT_TAG in q.get("system_tags", [])]
    if not found:
        raise errors.no_default_queue()
    if len(found) > 1:
        raise errors.multiple_default_queues()
    return found[0]


def add_entry(tx: Tx, queue: dict[str, Any], task_id: str) -> None:
    if any(e["task"] == task_id for e in queue["entries"]):
        raise errors.task_already_queued(task=task_id, queue=queue["id"])
    queue["entries"].append({"task": task_id, "added": now()})
    queue["last_update"] = now()
    tx.put("queues", queue)


def remove_entry(tx: Tx, queue: dict[str, Any], task_id: str) -> int:
    kept = [e for e in queue["entries"] if e["task"] != task_id]
    removed = len(queue["entries"]) - len(kept)
    if removed:
        queue["entries"] = kept
        queue["last_update"] = now()
        tx.put("queues", queue)
    return removed


def remove_from_all(tx: Tx, task_id: str) -> int:
    # Entries live inside the queue documents; instr narrows the scan to queues that mention the task (as
    # plain text: a LIKE pattern made of the caller's id could hold wildcards, or be too long for SQLite).
    mentioning = tx.find("queues", "instr(doc, ?) > 0", (json.dumps(task_id),))
    return sum(remove_entry(tx, q, task_id) for q in mentioning)
