"""Helpers for the launcher's tests: tasks made by clearml-task's own code from fixture repositories, and
the launcher run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearml_task.api import Client
from clearml_task.request import Request
from clearml_task.submit import prepare, submit
from testing.servers import ROOT


def create_task(folder: Path, script: str, *, args: list[str] | None = None, queue: str | None = None,
                name: str = "launcher test", **flags: Any) -> str:  # fmt: skip
    request = Request(project="launcher", name=name, folder=str(folder), script=script, args=args or [],
                      queue=queue, **flags)  # fmt: skip
    return submit(request, prepare(request), Client()).task_id


@dataclass(frozen=True)
class Sleepy:
    """A task running fixtures/repos/jobs/sleepy.py: it writes its pid and its grandchild's to `pidfile`, then
    prints `tick N` until it is killed."""

    task_id: str
    pidfile: Path

    def wait_for_tick(self, tick: int) -> None:
        wait_for(lambda: any(line.startswith(f"tick {tick}") for line in log_lines(self.task_id)),
                 about=lambda: story(self.task_id))  # fmt: skip

    def assert_tree_gone(self) -> None:
        """The task's process and its grandchild end (the abort reached the whole process group)."""
        child, grandchild = (int(pid) for pid in self.pidfile.read_text().split())
        wait_for(lambda: not alive(child) and not alive(grandchild), timeout=10)


def sleepy_task(jobs: Path, tmp_path: Path, **flags: Any) -> Sleepy:
    pidfile = tmp_path / "pids"
    return Sleepy(create_task(jobs, "sleepy.py", args=[f"pidfile={pidfile}"], **flags), pidfile)


def launcher(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launcher", *argv], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )  # fmt: skip


def spawn(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """The launcher in the background (its output discarded: a full pipe would stall it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "launcher", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def log_lines(task_id: str) -> list[str]:
    return [str(event["msg"]) for event in Client().task_log(task_id)]


def wait_for(
    predicate: Any, timeout: float = 120, interval: float = 0.1, about: Callable[[], str] | None = None
) -> Any:
    """`predicate()`'s first true value within `timeout` s; else an AssertionError that tells `about()`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    told = f"\n{about()}" if about else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}{told}")


def story(task_id: str, lines: int = 40) -> str:
    """A task's status and the last lines of its log, for a test that waited on it in vain."""
    try:
        task, log = Client().get_task(task_id), log_lines(task_id)[-lines:]
    except Exception as error:  # the server is away: say so instead of hiding the timeout
        return f"task {task_id}: cannot be read: {error!r}"
    return "\n".join([f"task {task_id} is {task['status']} ({task.get('status_message', '')})", *log])


def status(task_id: str) -> str:
    return str(Client().get_task(task_id)["status"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")  # zombies are gone
