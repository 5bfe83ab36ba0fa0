"""--follow: the task's log printed as it arrives, until the task ends — plain lines, or JSON lines with
--output json (stdout stays one JSON object a line) — and, while it waits in its queue, whether any worker
listens there."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from clearml_task import console, vocabulary

if TYPE_CHECKING:
    from clearml_task.api import Client

# How often a task waiting in its queue has its queue's workers looked up.
WORKERS_EVERY = 10.0


def follow(client: Client, task_id: str, queue_id: str, queue: str, *, as_json: bool) -> int:
    """Print the task's log until it ends: each line as it is (text), or as {"log": line} (JSON), then the
    final status ({"id": ..., "status": ...} in JSON; on stderr in both). Exit code 0 if completed."""

    def write(line: str) -> None:
        print(json.dumps({"log": line}) if as_json else console.visible(line), flush=True)

    status = client.follow_log(task_id, write, queued=_queue_watch(client, queue_id, queue))
    if as_json:
        print(json.dumps({"id": task_id, "status": status}), flush=True)
    print(f"clearml-task: task {task_id} {status}", file=sys.stderr)
    return 0 if status == vocabulary.COMPLETED else 1


def _queue_watch(client: Client, queue_id: str, queue: str) -> Callable[[], None]:
    """Called while the task is queued: says on stderr that it waits for a worker, and whether one
    listens on the queue — once, then again only when that changes (looked up every WORKERS_EVERY s)."""
    said: bool | None = None  # whether a worker listened, as last said
    next_look = 0.0

    def watch() -> None:
        nonlocal next_look, said
        if time.monotonic() < next_look:
            return
        next_look = time.monotonic() + WORKERS_EVERY
        listening = bool(client.queue_workers(queue_id))
        if listening == said:
            return
        said = listening
        line = f"clearml-task: waiting for a worker on queue {queue}"
        if not listening:
            line += f" (none listens on it now: start one with `clearml-launcher daemon --queue {queue}`)"
        print(line, file=sys.stderr, flush=True)

    return watch
