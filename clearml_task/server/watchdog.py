"""The non-responsive tasks watchdog, as ClearML's server has one: an `in_progress` task that nothing updated
(no status report, ping or log) for the timeout is stopped with ClearML's status, reason and message.

`clearml-launcher server` runs it in a thread (`--non-responsive-timeout`); in ephemeral mode, where no
server process lives on, every process that opens the store runs one pass
(CLEARML_TASK_NON_RESPONSIVE_TIMEOUT).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from clearml_task.server import queue_entries, task_status
from clearml_task.vocabulary import IN_PROGRESS, STOPPED

if TYPE_CHECKING:
    from clearml_task.server.store import Store, Tx

TIMEOUT_ENV = "CLEARML_TASK_NON_RESPONSIVE_TIMEOUT"
DEFAULT_TIMEOUT = 7200.0  # seconds, ClearML's services.tasks.non_responsive_tasks_watchdog.threshold_sec
MAX_INTERVAL = 900.0  # seconds between passes, ClearML's watch_interval_sec
REASON = "Forced stop (non-responsive)"


def timeout_from(environ: Mapping[str, str] = os.environ) -> float:
    """The timeout the environment sets (CLEARML_TASK_NON_RESPONSIVE_TIMEOUT, seconds; 0 turns it off)."""
    given = environ.get(TIMEOUT_ENV, "").strip()
    if not given:
        return DEFAULT_TIMEOUT
    try:
        value = float(given)
    except ValueError:
        print(f"clearml-task: {TIMEOUT_ENV}={given!r} is not a number of seconds; using {DEFAULT_TIMEOUT:g}",
              file=sys.stderr)  # fmt: skip
        return DEFAULT_TIMEOUT
    return max(0.0, value)


def interval(timeout: float) -> float:
    """Seconds between passes: a quarter of the timeout, at least 0.5 s, at most ClearML's 900 s."""
    return min(MAX_INTERVAL, max(0.5, timeout / 4))


def stop_non_responsive(tx: Tx, timeout: float) -> list[str]:
    """Stop every in_progress task whose last update is older than `timeout` seconds; returns their ids.
    The worker that reported running one no longer does, and no queue still lists it."""
    if timeout <= 0:
        return []
    limit = datetime.now(timezone.utc) - timedelta(seconds=timeout)
    stopped = []
    for task in tx.find("tasks", "status = ?", (IN_PROGRESS,)):
        last = task.get("last_update") or task.get("status_changed") or task.get("created")
        if not last or datetime.fromisoformat(last) >= limit:
            continue
        task_status.set_status(tx, task, STOPPED, force=True, reason=REASON, message=REASON)
        queue_entries.remove_from_all(tx, task["id"])
        for worker in tx.find("workers", "doc LIKE ?", (f"%{task['id']}%",)):
            if (worker.get("task") or {}).get("id") == task["id"]:
                worker.pop("task", None)
                tx.put("workers", worker)
        stopped.append(task["id"])
    return stopped


def run_once(store: Store, timeout: float) -> list[str]:
    if timeout <= 0:
        return []
    with store.transaction(write=True) as tx:
        return stop_non_responsive(tx, timeout)


class Watchdog:
    """A thread that runs a pass every interval(timeout) seconds until stop()."""

    def __init__(self, store: Store, timeout: float) -> None:
        self.store, self.timeout = store, timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="non-responsive-watchdog", daemon=True)

    def start(self) -> Watchdog:
        if self.timeout > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(interval(self.timeout)):
            try:
                for task_id in run_once(self.store, self.timeout):
                    print(f"clearml-task server: task {task_id}: {REASON}", file=sys.stderr, flush=True)
            except Exception as e:  # a locked database or a full disk: the next pass tries again
                print(f"clearml-task server: watchdog: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
