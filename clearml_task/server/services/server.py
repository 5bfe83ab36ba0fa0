"""server.*: what this server is."""

from __future__ import annotations

from typing import Any

from clearml_task.server.endpoints import Call, endpoint
from clearml_task.vocabulary import API_VERSION, SERVER_VERSION


@endpoint("server.info", write=False, fields={})
def info(call: Call) -> dict[str, Any]:
    found: dict[str, Any] = {"version": SERVER_VERSION, "build": "", "commit": "", "api_version": API_VERSION}
    # Ours (ClearML's server has no such key): queues.get_next_task takes `wait` (up to this many seconds)
    # and `then_queues` here, and a daemon long-polls instead of polling.
    if call.max_wait > 0:
        found["get_next_task_max_wait"] = call.max_wait
    found["get_next_task_with_task"] = True  # and `with_task`: the task's document comes with its entry
    return found
