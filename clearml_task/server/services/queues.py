"""queues.*: named, ordered lists of task entries; get_next_task pops the head atomically.

get_next_task takes fields ClearML's server does not have (server.info says so with
`get_next_task_max_wait` and `get_next_task_with_task`; without them the call is ClearML's): `wait`,
seconds to wait for an entry when there is none yet (at most MAX_WAIT; no transaction stays open
meanwhile); `then_queues`, more queue ids tried in order after `queue`, so that one call takes by strict
priority from several queues (the answer then names the queue it took from); and `with_task`: the answer
also holds the task's document as tasks.get_by_id gives it (`task`, absent if the task is gone), read in
the same transaction as the pop, which saves a worker a call before it starts the task."""

from __future__ import annotations

from typing import Any

from clearml_task.server import errors, query
from clearml_task.server.endpoints import MAX_WAIT, Call, Handler, endpoint, now
from clearml_task.server.fields import COUNT, FLAG, GET_ALL, ID, NAME, OBJECT, TAGS, Int, Number, Texts
from clearml_task.server.queue_entries import add_entry, create, default, get, remove_entry
from clearml_task.server.task_status import set_status
from clearml_task.vocabulary import CREATED, QUEUED

QUEUE_FIELDS = {"name": NAME, "tags": TAGS, "system_tags": TAGS, "metadata": OBJECT}
ENTRY = {"queue": ID, "task": ID}
MOVE = {**ENTRY, "count": Int(0, 2**31)}
NEXT_TASK = {
    "queue": ID,
    "wait": Number(0, MAX_WAIT, what=f"a number of seconds from 0 to {MAX_WAIT}"),
    "then_queues": Texts(what="a list of queue ids"),
    "with_task": FLAG,
}


def _limited(doc: dict[str, Any], max_entries: int | None) -> dict[str, Any]:
    if max_entries is not None:
        doc["entries"] = doc["entries"][:max_entries]
    return doc


@endpoint("queues.create", fields=QUEUE_FIELDS)
def create_endpoint(call: Call) -> dict[str, Any]:
    queue_id = create(
        call.tx,
        call.text("name", required=True) or "",
        tags=call.items("tags"),
        system_tags=call.items("system_tags"),
        user=call.identity.get("user"),
        company=call.identity.get("company"),
        metadata=call.mapping("metadata"),
    )
    return {"id": queue_id}


@endpoint("queues.get_by_id", write=False, fields={"queue": ID, "max_task_entries": COUNT})
def get_by_id(call: Call) -> dict[str, Any]:
    return {"queue": _limited(get(call.tx, call.id("queue")), call.integer("max_task_entries"))}


@endpoint("queues.get_all", write=False, fields={**GET_ALL, "max_task_entries": COUNT}, closed=True)
def get_all(call: Call) -> dict[str, Any]:
    limit = call.integer("max_task_entries")
    keep, _ = query.filters(call, "queues")
    return {"queues": query.select(call, (_limited(doc, limit) for doc in call.tx.find("queues")), keep)}


@endpoint("queues.get_num_entries", write=False, fields={"queue": ID})
def get_num_entries(call: Call) -> dict[str, Any]:
    return {"num": len(get(call.tx, call.id("queue"))["entries"])}


@endpoint("queues.get_default", write=False, fields={})
def get_default(call: Call) -> dict[str, Any]:
    queue = default(call.tx)
    return {"id": queue["id"], "name": queue["name"]}


@endpoint("queues.update", fields={"queue": ID, **QUEUE_FIELDS})
def update(call: Call) -> dict[str, Any]:
    queue = get(call.tx, call.id("queue"))
    name = call.new_name("queues", queue["name"])
    fields: dict[str, Any] = {"name": name, "display_name": name} if name else {}
    fields.update(call.given_items("tags", "system_tags"))
    if call.mapping("metadata") is not None:
        fields["metadata"] = call.mapping("metadata")
    queue.update(fields, last_update=now())
    call.tx.put("queues", queue)
    return {"updated": 1 if fields else 0, "fields": fields}


@endpoint("queues.delete", fields={"queue": ID, "force": FLAG})
def delete(call: Call) -> dict[str, Any]:
    queue = get(call.tx, call.id("queue"))
    if queue["entries"] and not call.flag("force"):
        raise errors.queue_not_empty(
            "use force=true to delete", queue=queue["id"], entries=len(queue["entries"])
        )
    for entry in queue["entries"]:
        task = call.tx.get("tasks", entry["task"])
        if task is not None and task["status"] == QUEUED:
            reason = f"Queue {queue['id']} was deleted"
            set_status(call.tx, task, task.get("enqueue_status") or CREATED, force=True, reason=reason)
    return {"deleted": call.tx.delete("queues", queue["id"])}


@endpoint("queues.add_task", fields=ENTRY)
def add_task(call: Call) -> dict[str, Any]:
    queue = get(call.tx, call.id("queue"))
    task_id = call.id("task")
    if call.tx.get("tasks", task_id) is None:
        raise errors.invalid_task_id(id=task_id)
    add_entry(call.tx, queue, task_id)
    return {"added": 1}


@endpoint("queues.remove_task", fields=ENTRY)
def remove_task(call: Call) -> dict[str, Any]:
    queue = get(call.tx, call.id("queue"))
    return {"removed": remove_entry(call.tx, queue, call.id("task"))}


@endpoint("queues.get_next_task", fields=NEXT_TASK)
def get_next_task(call: Call) -> dict[str, Any]:
    """Pop the head entry of the first queue that has one. The write transaction (BEGIN IMMEDIATE) makes
    the pop exclusive."""
    more = call.items("then_queues")
    for queue_id in [call.id("queue"), *(more or [])]:
        queue = get(call.tx, queue_id)
        if queue["entries"]:
            entry = queue["entries"].pop(0)
            queue["last_update"] = now()
            call.tx.put("queues", queue)
            found: dict[str, Any] = {"entry": entry}
            if more is not None:
                found["queue"] = queue_id
            task = call.tx.get("tasks", entry["task"]) if call.flag("with_task") else None
            if task is not None:
                found["task"] = task
            return found
    call.wait_for("queues", call.number("wait"))
    return {}


def _mover(where: str) -> Handler:
    """The handler of queues.move_task_<where>: moves the task's entry within its queue."""

    def move(call: Call) -> dict[str, Any]:
        queue = get(call.tx, call.id("queue"))
        task_id = call.id("task")
        entries = queue["entries"]
        index = next((i for i, e in enumerate(entries) if e["task"] == task_id), None)
        if index is None:
            raise errors.task_not_queued(task=task_id, queue=queue["id"])
        count = call.integer("count", 1) or 1
        target = {
            "forward": index - count,
            "backward": index + count,
            "front": 0,
            "back": len(entries) - 1,
        }[where]
        target = min(max(target, 0), len(entries) - 1)
        entries.insert(target, entries.pop(index))
        queue["last_update"] = now()
        call.tx.put("queues", queue)
        return {"position": target}

    return move


move_task_forward = endpoint("queues.move_task_forward", fields=MOVE)(_mover("forward"))
move_task_backward = endpoint("queues.move_task_backward", fields=MOVE)(_mover("backward"))
move_task_to_front = endpoint("queues.move_task_to_front", fields=MOVE)(_mover("front"))
move_task_to_back = endpoint("queues.move_task_to_back", fields=MOVE)(_mover("back"))
