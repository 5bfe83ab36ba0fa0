"""Exclusive locks on files, between processes (and threads): flock on POSIX, msvcrt on Windows."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

WINDOWS_POLL_SECONDS = 0.2  # msvcrt cannot block until a lock is free: it is tried again this often


@contextmanager
def exclusive(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[float | None]:
    """An exclusive lock on `path` (created, with its directory, if missing) while the block runs.
    Yields None when the lock was free at once, else the seconds spent waiting for it; `on_wait` is
    called before the wait begins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        waited: float | None = None
        if not _lock(handle, wait=False):
            if on_wait is not None:
                on_wait()
            start = time.monotonic()
            _lock(handle, wait=True)
            waited = time.monotonic() - start
        try:
            yield waited
        finally:
            _unlock(handle)


def _lock(handle: IO[bytes], *, wait: bool) -> bool:
    """Take the lock; False when `wait` is off and someone holds it."""
    if sys.platform == "win32":
        while True:
            try:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False
                time.sleep(WINDOWS_POLL_SECONDS)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _unlock(handle: IO[bytes]) -> None:
    if sys.platform == "win32":
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def hold(path: Path) -> IO[bytes] | None:
    """The lock on `path` if it is free now, held until the returned file is closed (or the process ends,
    however it ends); None when someone holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+b")
    if _lock(handle, wait=False):
        return handle
    handle.close()
    return None
