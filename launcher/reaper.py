"""No process a task started outlives it: the processes a run left behind, found and ended.

A run's processes are found three ways: its process group; the marker every one of them inherits in its
environment (CLEARML_LAUNCHER_RUN, which survives setsid and double forks); and, once the launcher is a
child subreaper (Linux PR_SET_CHILD_SUBREAPER), the orphans the kernel hands back to it instead of init."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

MARKER = "CLEARML_LAUNCHER_RUN"
PR_SET_CHILD_SUBREAPER = 36
PROC = Path("/proc")

_subreaper = False
_runs: dict[int, str] = {}  # the runs this process has going (services mode: several): pid -> marker
_runs_lock = threading.Lock()


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); False where that is not possible.
    Only a process that runs nothing but tasks should be one (the daemon, `execute`): then every child it
    has once a task ended is something the task left."""
    global _subreaper
    _subreaper = _set_subreaper(1)
    return _subreaper


def _set_subreaper(value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def not_subreaper() -> Iterator[None]:
    """Not the subreaper while the block runs: a helper it starts and leaves (a double fork: the warden,
    launcher.tether) goes to init, never back to this process as a child the next run's end would end."""
    if not _subreaper:
        yield
        return
    _set_subreaper(0)
    try:
        yield
    finally:
        _set_subreaper(1)


def marked(token: str) -> list[int]:
    """Processes whose environment carries this run's marker (readable ones: this user's)."""
    needle = f"{MARKER}={token}".encode()
    return [entry for entry in _pids() if needle in _environ(entry)]


def running(pid: int, token: str) -> None:
    """A run this process started (its main process and marker): another run's end leaves it alone."""
    with _runs_lock:
        _runs[pid] = token


def finished(pid: int) -> None:
    with _runs_lock:
        _runs.pop(pid, None)


def stray_children(token: str | None = None) -> list[int]:
    """This process's children that it did not start (orphans handed to it as subreaper), except those of
    the other runs going on (their main processes, and what carries their marker)."""
    if not _subreaper:
        return []
    me = os.getpid()
    with _runs_lock:
        others = {pid: marker for pid, marker in _runs.items() if marker != token}
    found = [pid for pid in _pids() if _parent(pid) == me and pid not in others]
    if not others:
        return found
    theirs = {f"{MARKER}={marker}".encode() for marker in others.values()}
    return [pid for pid in found if not theirs & set(_environ(pid))]


def _environ(pid: int) -> list[bytes]:
    try:
        return (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return []


def leftovers(pgid: int | None, token: str | None, *, ours: bool = False) -> set[int]:
    """What is left of a run: its group's processes, the marked ones, and the orphans handed to us.
    `ours`: the run was our child, which has ended: then an empty group and no child of ours at all prove
    nothing is left, without reading every process's /proc files (see _nothing_left)."""
    if ours and _nothing_left(pgid):
        return set()
    found: set[int] = set()
    if pgid:
        found.update(pid for pid in _pids() if _group(pid) == pgid)
    if token:
        found.update(marked(token))
    found.update(stray_children(token))
    found.discard(os.getpid())
    return found


def _nothing_left(pgid: int | None) -> bool:
    """As subreaper, every live descendant of a child that ended is a child of ours or below one (an orphan
    is handed to us; a marked process is a descendant): no process in its group and no child of ours at
    all means it left nothing. False whenever that cannot be told so cheaply."""
    if not _subreaper:
        return False
    if pgid:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            pass
        except OSError:
            return False
        else:
            return False
    try:  # WNOWAIT: a child that has exited stays for whoever waits for it
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True  # no child at all, running or exited
    except OSError:
        return False
    return False


def settle(pgid: int | None, token: str | None, seconds: float) -> None:
    """Give what a run left up to `seconds` to end by itself (those handed to us reaped as they end): a
    container engine's monitor outlives the engine's client a moment, to write down the container's exit."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = leftovers(pgid, token, ours=True)
        _reap(found)
        if not any(_alive(pid) for pid in found):
            return
        time.sleep(0.05)


def end(pgid: int | None, token: str | None, grace: float = 2.0, *, ours: bool = False) -> int:
    """SIGTERM what is left of a run, SIGKILL what is still there after `grace` seconds; reap our own.
    Returns how many processes there were. `ours`: as for leftovers."""
    found = leftovers(pgid, token, ours=ours)
    count = len(found)
    if not found:
        return 0
    _signal(found, pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(found)
        found = {pid for pid in found if _alive(pid)}
        if not found:
            return count
        time.sleep(0.05)
    found |= leftovers(pgid, token)
    _signal(found, pgid, signal.SIGKILL)
    time.sleep(0.05)
    _reap(found)
    return count


def descendants(ancestor: int) -> dict[int, str]:
    """Every process below `ancestor` (children, theirs, ...), each with its start time (so that a pid used
    again by another process later is told apart)."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for pid in _pids():
        fields = _stat(pid)
        if len(fields) > 19:
            children.setdefault(int(fields[1]), []).append(pid)
            started[pid] = fields[19]
    found: dict[int, str] = {}
    below = list(children.get(ancestor, []))
    while below:
        pid = below.pop()
        if pid not in found and pid != os.getpid():
            found[pid] = started[pid]
            below.extend(children.get(pid, []))
    return found


def end_seen(seen: dict[int, str], grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, each process of `seen` (pid: start time, as `descendants`
    gives) that still runs (the same process: the same start time)."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        left = {pid for pid, start in seen.items() if _stat(pid)[19:20] == [start] and _alive(pid)}
        _signal(left, None, signum)
        deadline = time.monotonic() + (grace if signum == signal.SIGTERM else 0)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = {pid for pid in left if _alive(pid)}


def _signal(pids: set[int], pgid: int | None, signum: int) -> None:
    if pgid:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signum)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def _reap(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _pids() -> list[int]:
    try:
        return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []


def _stat(pid: int) -> list[str]:
    try:
        return (PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _parent(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 2 else -1


def _group(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[2]) if len(fields) > 2 else -1
