"""workers.*: who is polling which queues, and what each runs; a worker lapses after its timeout."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from clearml_task.server import errors
from clearml_task.server.endpoints import Call, endpoint, now
from clearml_task.server.fields import ID, MATCHING, OBJECT, TAGS, TEXT, Int, Objects
from clearml_task.server.store import Tx

DEFAULT_TIMEOUT = 600
MAX_TIMEOUT = 10 * 365 * 24 * 3600  # seconds


def is_alive(doc: dict[str, Any], at: datetime | None = None) -> bool:
    last = datetime.fromisoformat(doc["last_activity_time"])
    age = ((at or datetime.now(timezone.utc)) - last).total_seconds()
    return age <= float(doc.get("register_timeout") or DEFAULT_TIMEOUT)


def alive(tx: Tx, worker_id: str) -> bool:
    doc = tx.get("workers", worker_id)
    return doc is not None and is_alive(doc)


def live(tx: Tx) -> list[dict[str, Any]]:
    return [doc for doc in tx.find("workers") if is_alive(doc)]


def _queue_refs(tx: Tx, refs: list[Any] | None) -> list[dict[str, Any]]:
    out = []
    for ref in refs or []:
        queue = tx.get("queues", ref) or next(iter(tx.find("queues", "name = ?", (ref,))), None)
        if queue is None:
            raise errors.invalid_queue_id(queue_id=ref)
        out.append({"id": queue["id"], "name": queue["name"], "num_tasks": len(queue["entries"])})
    return out


def _upsert(call: Call, worker_id: str, *, timeout: int | None = None) -> dict[str, Any]:
    doc = call.tx.get("workers", worker_id)
    stamp = now()
    if doc is None or not is_alive(doc):
        doc = {
            "id": worker_id,
            "name": worker_id,
            "user": {"id": call.identity.get("user"), "name": call.identity.get("user_name")},
            "company": {"id": call.identity.get("company"), "name": call.identity.get("company_name")},
            "register_time": stamp,
            "register_timeout": DEFAULT_TIMEOUT,
            "queues": [],
            "tags": [],
            "system_tags": [],
        }
    if timeout:
        doc["register_timeout"] = timeout
    doc["last_activity_time"] = stamp
    return doc


@endpoint(
    "workers.register",
    fields={
        "worker": ID,
        "timeout": Int(0, MAX_TIMEOUT),
        "queues": MATCHING,
        "tags": TAGS,
        "system_tags": TAGS,
    },
)
def register(call: Call) -> dict[str, Any]:
    worker_id = call.id("worker")
    doc = _upsert(call, worker_id, timeout=call.integer("timeout", DEFAULT_TIMEOUT))
    if call.items("queues") is not None:
        doc["queues"] = _queue_refs(call.tx, call.items("queues"))
    doc.update(call.given_items("tags", "system_tags"))
    call.tx.put("workers", doc)
    return {}


@endpoint("workers.unregister", fields={"worker": ID})
def unregister(call: Call) -> dict[str, Any]:
    call.tx.delete("workers", call.id("worker"))  # an unknown worker is tolerated, as ClearML does
    return {}


@endpoint(
    "workers.status_report",
    fields={
        "worker": ID,
        "task": TEXT,
        "queue": TEXT,
        "queues": MATCHING,
        "machine_stats": OBJECT,
        "tags": TAGS,
    },
)
def status_report(call: Call) -> dict[str, Any]:
    worker_id = call.id("worker")
    doc = _upsert(call, worker_id)
    doc["last_report_time"] = now()
    task_id = call.text("task")
    if task_id:
        task = call.tx.get("tasks", task_id)
        if task is None:
            raise errors.invalid_task_id(id=task_id)
        doc["task"] = {"id": task_id, "name": task["name"], "last_iteration": task.get("last_iteration", 0)}
        task["last_worker"] = worker_id
        task["last_worker_report"] = task["last_update"] = doc["last_report_time"]
        call.tx.put("tasks", task)
    else:
        doc.pop("task", None)
    queue_id = call.text("queue")
    doc["queue"] = _queue_refs(call.tx, [queue_id])[0] if queue_id else None
    if call.items("queues") is not None:
        doc["queues"] = _queue_refs(call.tx, call.items("queues"))
    if call.mapping("machine_stats") is not None:
        doc["machine_stats"] = call.mapping("machine_stats")
    if call.items("tags") is not None:
        doc["tags"] = call.items("tags")
    call.tx.put("workers", doc)
    return {}


@endpoint("workers.get_all", write=False, fields={"last_seen": Int(0, MAX_TIMEOUT)})
def get_all(call: Call) -> dict[str, Any]:
    docs = live(call.tx)
    last_seen = call.integer("last_seen", 3600)
    if last_seen:
        current = datetime.now(timezone.utc)
        docs = [
            d
            for d in docs
            if (current - datetime.fromisoformat(d["last_activity_time"])).total_seconds() <= last_seen
        ]
    return {"workers": docs}


@endpoint("workers.get_runtime_properties", write=False, fields={"worker": ID})
def get_runtime_properties(call: Call) -> dict[str, Any]:
    doc = call.tx.get("workers", call.id("worker"))
    return {"runtime_properties": list((doc or {}).get("runtime_properties", []))}


@endpoint(
    "workers.set_runtime_properties",
    fields={"worker": ID, "runtime_properties": Objects({"key": TEXT}, required=("key",))},
)
def set_runtime_properties(call: Call) -> dict[str, Any]:
    """Key/value properties an agent keeps on its worker (ClearML's agent uses them for services mode)."""
    worker_id = call.id("worker")
    given = call.items("runtime_properties") or []  # each an object with a key (its declared kind)
    doc = _upsert(call, worker_id)
    current = {p["key"]: p for p in doc.get("runtime_properties", [])}
    for prop in given:
        current[str(prop["key"])] = {"key": str(prop["key"]), "value": str(prop.get("value", "")),
                                     "expiry": prop.get("expiry")}  # fmt: skip
    doc["runtime_properties"] = list(current.values())
    call.tx.put("workers", doc)
    return {}
