"""The launcher's work beside a run's main line, on threads that are kept for the next piece of work.

A daemon's run has about six pieces of work going beside it (the `started` call, the status reports, the
log shipper, the output reader, the abort watch, the end told once the process is gone). A new thread for
each made the daemon's main line wait for every one of them to start: the new thread must get the
interpreter's lock before `Thread.start` returns, ~0.5 ms each on a busy daemon, on the path from one task
to the next. `start` hands the work to a kept thread that is idle instead, or starts one when none is, and
returns at once. A kept thread with nothing to do for IDLE_TIMEOUT seconds ends.

The threads are daemon threads: whoever needs a piece of work finished before the process exits joins it
(`Work.join`), as the daemon does for every run's end."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

IDLE_TIMEOUT = 60.0  # seconds a kept thread waits for work before it ends
IDLE_NAME = "launcher-idle"

_jobs: queue.SimpleQueue[tuple[Work, Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
_lock = threading.Lock()
_idle = 0  # kept threads waiting for work, minus the work waiting for a thread


class Work:
    """A piece of work handed to a thread: join it, or ask whether it is still going."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._done = threading.Event()

    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()


def start(target: Callable[..., Any], *args: Any, name: str) -> Work:
    """`target(*args)` on a kept thread (named `name` while it runs), without waiting for it to start.
    What it raises goes to threading.excepthook, as from a thread of its own."""
    global _idle
    work = Work(name)
    with _lock:
        _jobs.put((work, target, args))
        _idle -= 1
        spawn = _idle < 0  # more work waiting than threads waiting for it
    if spawn:
        threading.Thread(target=_serve, name=IDLE_NAME, daemon=True).start()
    return work


def _serve() -> None:
    """A kept thread: work after work, until none comes for IDLE_TIMEOUT seconds (and none waits for a
    thread)."""
    global _idle
    current = threading.current_thread()
    with _lock:
        _idle += 1
    while True:
        try:
            work, target, args = _jobs.get(timeout=IDLE_TIMEOUT)
        except queue.Empty:
            with _lock:
                if _idle > 0:  # the threads still waiting are enough for the work handed over
                    _idle -= 1
                    return
            continue
        current.name = work.name
        try:
            target(*args)
        except BaseException as e:
            with contextlib.suppress(BaseException):  # a hook that fails (stderr gone) ends no thread
                threading.excepthook(threading.ExceptHookArgs((type(e), e, e.__traceback__, current)))
        current.name = IDLE_NAME
        with _lock:  # waiting again before the work is seen done: a start right after a join needs no thread
            _idle += 1
        work._done.set()
