"""A task's processes die with the launcher that runs them, however it dies (kill -9 included).

On Linux one small process per launcher, the warden (this module run as a script: `python -I -S tether.py FD`,
stdlib only, nothing from a task's environment on its path), watches the launcher's runs. The launcher tells
it, over a pipe only the launcher can write to, each run's marker before the run starts, its process group
once it has started, and its end. When the launcher dies, however it dies, the kernel closes the pipe: the
warden reads the end of it and ends every run still going — its process group and every process carrying its
marker (launcher.reaper), setsid escapees included, and every process it last saw below the launcher (it
looks every LOOK seconds while a run goes on: an orphan that cleared its environment and left the group is
the launcher's child, as subreaper, until the launcher dies): SIGTERM, then SIGKILL after GRACE. Then it
exits, as it does when the launcher exits by itself (no run is going then). A signal to a run's group while
the launcher lives (an abort) is the launcher's business, not the warden's.

The warden leaves its starter at once (a double fork) and has a session of its own; the launcher is not a
subreaper while it starts one (the daemon starts it before it becomes one), so the warden is not the
launcher's child and a run's end still needs no look beyond the launcher's own children (launcher.reaper). It
ignores SIGTERM, SIGINT and SIGHUP, and holds no terminal and no pipe of the launcher's output. Should it be
gone all the same (killed), the launcher starts another and tells it every run going on.

Elsewhere (macOS, Windows) runs are not watched: a dead launcher's runs are ended when a launcher takes its
worker id again (launcher.registry)."""

from __future__ import annotations

# _signal, not signal: the same functions and numbers without importing enum (this module starts the warden)
import _signal as signal
import os
import sys
from typing import Any

GRACE = 2.0  # seconds between SIGTERM and SIGKILL for what a dead launcher's run left
LOOK = 1.0  # seconds between the warden's looks at the launcher's descendants while a run goes on
MARKER_CHARS = frozenset("0123456789abcdef")

_runs: dict[str, int] = {}  # the runs going on: marker -> process group (0 until started)
_pipe: int | None = None  # the write end; the warden holds the read end
_lock = None  # a threading.Lock, made on first use (threading is not imported by the warden)


def available() -> bool:
    return sys.platform.startswith("linux")


def start() -> None:
    """The warden, started now if it is not running (Linux). The daemon and `execute` call it before they
    become a subreaper; a run starts it too, should it be missing."""
    if not available():
        return
    with _guard():
        if _pipe is None:
            _start()


def watch(marker: str) -> None:
    """A run is about to start: its processes will carry `marker`."""
    _tell(marker, 0, f"+ {marker}\n")


def started(marker: str, pgid: int) -> None:
    """The run's main process has started and leads process group `pgid`."""
    _tell(marker, pgid, f"= {marker} {pgid}\n")


def ended(marker: str) -> None:
    """The run has ended and what it left has been ended (launcher.reaper): nothing for the warden to do."""
    _tell(marker, None, f"- {marker}\n")


def _guard() -> Any:
    global _lock
    if _lock is None:
        import threading

        _lock = threading.Lock()
    return _lock


def _tell(marker: str, pgid: int | None, line: str) -> None:
    """Record the run and tell the warden; a warden that is gone is started again and told every run."""
    if not available():
        return
    with _guard():
        if pgid is None:
            _runs.pop(marker, None)
        else:
            _runs[marker] = pgid
        if _pipe is not None:
            try:
                os.write(_pipe, line.encode())
                return
            except OSError:  # the warden is gone
                os.close(_pipe)
                _forget()
        _start()


def _forget() -> None:
    global _pipe
    _pipe = None


def _start() -> None:
    """A new warden, told the runs going on. Called under the lock."""
    global _pipe
    import subprocess

    from launcher import reaper

    read, write = os.pipe()  # neither end is inherited by anything else this process starts
    try:
        os.write(write, "".join(f"= {m} {g}\n" if g else f"+ {m}\n" for m, g in _runs.items()).encode())
        with reaper.not_subreaper():  # the warden is nobody's child here, whenever it is started
            subprocess.run(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(read)], pass_fds=(read,),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, check=True,
            )  # fmt: skip
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    _pipe = write


# ------------------------------------------------------------------------------------ the warden
def _end(runs: dict[str, int], seen: dict[int, str]) -> None:
    """The launcher is gone: end every run it had going, and every process last seen below it, all at
    once."""
    import threading

    from launcher import reaper

    workers = [
        threading.Thread(target=reaper.end, args=(pgid or None, marker), kwargs={"grace": GRACE})
        for marker, pgid in runs.items()
    ]
    workers.append(threading.Thread(target=reaper.end_seen, args=(seen,), kwargs={"grace": GRACE}))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _read(line: bytes, runs: dict[str, int]) -> None:
    """One line from the launcher: `+ MARKER`, `= MARKER PGID` or `- MARKER`."""
    words = line.decode("ascii", "replace").split()
    if len(words) < 2 or not set(words[1]) <= MARKER_CHARS:
        return
    if words[0] == "-":
        runs.pop(words[1], None)
    elif words[0] == "+":
        runs.setdefault(words[1], 0)
    elif words[0] == "=" and len(words) == 3 and words[2].isdigit():
        runs[words[1]] = int(words[2])


def main(args: list[str]) -> int:
    """The warden: leave the launcher (a double fork), read its runs until the pipe ends, end what is left."""
    descriptor = int(args[0])
    launcher_pid = os.getppid()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    if os.fork() != 0:
        os._exit(0)  # the launcher's child ends at once; this process is not its child
    os.chdir("/")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    import select

    from launcher import reaper  # (now: the code on disk may change while the launcher runs)

    runs: dict[str, int] = {}
    # What runs below the launcher while a run goes on, looked at every LOOK seconds: a process that left
    # the run's group and cleared its environment (so it carries no marker) is found there, as the
    # orphan the launcher (a subreaper) was handed, before the launcher's death hands it to init.
    seen: dict[int, str] = {}
    pending = b""
    while True:
        if runs:
            ready, _, _ = select.select([descriptor], [], [], LOOK)
            if not ready:
                seen = reaper.descendants(launcher_pid)
                continue
        try:
            chunk = os.read(descriptor, 4096)
        except InterruptedError:
            continue
        except OSError:
            break
        if not chunk:
            break  # the launcher has exited, or died
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            _read(line, runs)
    if runs:
        _end(runs, seen)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
