"""Commands a run's preparation starts (git's fetch and checkout, uv's install) that a stop can end.

Inside `watching(event)` (the launcher, while it prepares a task), `run` starts the command in a session of
its own and looks at the event while it waits: once the event is set (an abort from the server, the
launcher's own stop), the command's whole process group is ended (SIGTERM, then SIGKILL) and `Stopped`
is raised. A remote that never answers or a download that hangs no longer holds a run past its abort.
With a `Tether` (the launcher's warden), each command is told to it as a run is, so that it dies with
the launcher however the launcher dies (kill -9 included). Elsewhere `run` is subprocess.run, unchanged
(clearml-task's own git calls)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from clearml_task.records import record

LOOK = 0.2  # seconds between looks at the event while a command runs
GRACE = 2.0  # seconds between SIGTERM and SIGKILL

_scope = threading.local()


class Stopped(BaseException):
    """A command ended by a stop (a BaseException, as KeyboardInterrupt: no `except Exception` on the way
    turns it into an ordinary failure)."""


@record(frozen=True)
class Tether:
    """Whom to tell of each command (the launcher's warden): before it starts, the marker its processes
    inherit (in the environment variable `variable`); once it runs, its process group; its end."""

    variable: str
    watch: Callable[[str], None]
    started: Callable[[str, int], None]
    ended: Callable[[str], None]


@contextlib.contextmanager
def watching(event: threading.Event, tether: Tether | None = None) -> Iterator[None]:
    """In this block (this thread), the commands `run` starts end as soon as `event` is set (and are told
    to `tether`)."""
    before = getattr(_scope, "event", None), getattr(_scope, "tether", None)
    _scope.event, _scope.tether = event, tether
    try:
        yield
    finally:
        _scope.event, _scope.tether = before


def run(
    argv: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
    input: bytes | str | None = None, text: bool = False,
) -> subprocess.CompletedProcess[Any]:  # fmt: skip
    """subprocess.run(argv, capture_output=True); inside `watching`, ended when its event is set."""
    event: threading.Event | None = getattr(_scope, "event", None)
    if event is None:
        return subprocess.run(argv, cwd=cwd, env=env, input=input, capture_output=True, text=text)
    if event.is_set():
        raise Stopped
    tether: Tether | None = getattr(_scope, "tether", None)
    marker = os.urandom(16).hex()
    if tether is not None:
        env = {**(os.environ if env is None else env), tether.variable: marker}
        tether.watch(marker)
    try:
        return _wait(argv, cwd, env, input, text, event, tether, marker)
    finally:
        if tether is not None:
            tether.ended(marker)


def _wait(
    argv: Sequence[str], cwd: Path | str | None, env: Mapping[str, str] | None, input: bytes | str | None,
    text: bool, event: threading.Event, tether: Tether | None, marker: str,
) -> subprocess.CompletedProcess[Any]:  # fmt: skip
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text,
        start_new_session=True,
    )  # fmt: skip
    if tether is not None:
        tether.started(marker, process.pid)
    try:
        sending = input
        while True:
            try:
                stdout, stderr = process.communicate(sending, timeout=LOOK)
                break
            except subprocess.TimeoutExpired:
                sending = None  # what was given is on its way; communicate takes it once
                if event.is_set():
                    raise Stopped from None
    except BaseException:  # stopped, Ctrl-C, or a failure of ours: the command does not outlive it
        _end(process)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _end(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the command's process group, SIGKILL after GRACE to what is left; reaped."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.communicate(timeout=GRACE)
