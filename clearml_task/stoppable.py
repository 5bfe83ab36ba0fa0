"""Commands a run's preparation starts (git's fetch and checkout, uv's install) that a stop can end.

Inside `watching(event)` (the launcher, while it prepares a task), `run` starts the command in a session of
its own and looks at the event while it waits: once the event is set (an abort from the server, the
launcher's own stop), the command's whole process group is ended (SIGTERM, then SIGKILL) and `Stopped`
is raised. A remote that never answers or a download that hangs no longer holds a run past its abort.
Elsewhere `run` is subprocess.run, unchanged (clearml-task's own git calls)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

LOOK = 0.2  # seconds between looks at the event while a command runs
GRACE = 2.0  # seconds between SIGTERM and SIGKILL

_scope = threading.local()


class Stopped(BaseException):
    """A command ended by a stop (a BaseException, as KeyboardInterrupt: no `except Exception` on the way
    turns it into an ordinary failure)."""


@contextlib.contextmanager
def watching(event: threading.Event) -> Iterator[None]:
    """In this block (this thread), the commands `run` starts end as soon as `event` is set."""
    before = getattr(_scope, "event", None)
    _scope.event = event
    try:
        yield
    finally:
        _scope.event = before


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
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text,
        start_new_session=True,
    )  # fmt: skip
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
