"""Services mode: up to N tasks at once in one daemon, each in a thread of its own; the run itself (its work
tree, process group, log and abort watch) is the same as for a task run alone."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Slots:
    """At most `limit` runs at a time (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._threads: list[threading.Thread] = []
        self._changed = threading.Condition()

    def wait_free(self, stopping: threading.Event, poll: float = 0.2) -> bool:
        """Wait until a run may start; False when the daemon is stopping first."""
        with self._changed:
            while self.limit and self._alive() >= self.limit:
                if stopping.is_set():
                    return False
                self._changed.wait(poll)
        return not stopping.is_set()

    def start(self, run: Callable[..., None], *args: object) -> None:
        def body() -> None:
            try:
                run(*args)
            finally:
                with self._changed:
                    self._changed.notify_all()

        thread = threading.Thread(target=body, name=f"service-{args[0] if args else ''}", daemon=True)
        with self._changed:
            self._threads.append(thread)
        thread.start()

    def join(self) -> None:
        """Wait for every run (a stopping daemon has told them to stop: they end as stopped)."""
        for thread in list(self._threads):
            thread.join()

    def _alive(self) -> int:
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        return len(self._threads)
