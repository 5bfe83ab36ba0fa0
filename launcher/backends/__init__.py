"""Where a task runs. Each backend is one module with the same few names, so the next one is one more module.

Two shapes, as submitit's executors and pre-commit's languages have one shape each:

- runners run a prepared job on this machine and return how it ended — `local` (a process on the host) and
  `container` (the same run inside a container engine). A runner is an object with `describe() -> str` and
  `run(job: Job) -> Outcome`; the launcher has reproduced the code (`Job.root`) before it is called, and
  reports the task's status from the Outcome after. Each runner module also has `cleanup(record) -> str |
  None`: what a run of it that a dead daemon left on this machine besides its processes (a container) goes,
  as the run's record names it; it says what it removed, or None (`local`: nothing outlives the processes).
  A run's record names its runner module as `backend` (`runner_name`).
- schedulers hand a queued task to a cluster where `clearml-launcher execute --id <task>` runs it —
  `slurm` and `kubernetes`. Each module has `missing() -> str | None` (why it cannot be used here, with the
  install line) and a class with `render(task, context) -> str` (the job: a batch script, a manifest),
  `submit(rendered) -> str` (the scheduler's job id), `state(job_id) -> JobState` and `cancel(job_id)`;
  `launcher.glue` pulls from the queues, tracks the jobs, fails and cancels them for every scheduler alike.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from clearml_task.api import Client
    from clearml_task.arguments import Parser
    from launcher.logship import LogShipper
    from launcher.process import Outcome


RUNNERS = ("local", "container")  # the runner modules, as a run's record names them


def write_private(path: Path, text: str, encoding: str | None = None) -> None:
    """Write a file only its owner may read (it holds the server's keys): mode 0600, also when an earlier
    run left one of that name with another mode."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding=encoding) as out:
        out.write(text)


def runner_name(runner: Runner) -> str:
    """The module under launcher/backends that implements this runner, as a run's record names it."""
    return type(runner).__module__.rpartition(".")[2]


@dataclass
class Job:
    """One run, ready to start: the task, its checkout, its arguments and what the launcher adds."""

    client: Client
    task: dict[str, Any]
    root: Path  # the checkout
    workdir: Path  # where the entry point runs
    entry_point: str
    parser: Parser  # the entry point's command line, read from its source
    extra_env: dict[str, str]  # the server's address and keys, the task's id, the worker, GPUs
    cache_dir: Path
    log: LogShipper
    grace: float = 10.0
    gpus: str | None = None  # "0,1"; "" for none; None: untouched
    stop: threading.Event | None = None
    files: list[Path] = field(default_factory=list)  # host files the run reads besides the checkout
    # told the process once it starts (its pid, and the marker its processes inherit): the daemon's record
    on_start: Callable[[int, str], None] | None = None
    # adds to the daemon's record of the run what a daemon taking its id after a crash must end (a container)
    record: Callable[[dict[str, Any]], None] | None = None

    def arguments(self, sdk_installed: bool = True) -> list[str]:
        """The task's argv from its hyperparams.Args, written to the log. Where the task's environment has no
        clearml SDK, an injected Task.init cannot apply the values, so the command line carries them all."""
        from clearml_task import arguments, records
        from clearml_task.arguments.masking import shown_line
        from clearml_task.errors import UserError
        from launcher.errors import ReproductionError
        from launcher.process import check_word

        parser = self.parser
        if parser.sdk_binds_args and not sdk_installed:
            parser = records.replace(parser, sdk_binds_args=False)
        given = (self.task.get("hyperparams") or {}).get("Args") or {}
        for param in given.values():
            for text in (str(param.get("name") or ""), str(param.get("value") or "")):
                check_word("hyperparams.Args", text)
        try:
            line = arguments.command_line(given, parser)
        except UserError as e:
            raise ReproductionError(e.message, hint=e.hint) from None
        for note in line.problems:
            self.log.write(f"launcher: arguments: {note}", "warning")
        if line.ignored:
            self.log.write(
                f"launcher: arguments: not options of the script: {', '.join(line.ignored)}", "warning"
            )
        self.log.write(f"launcher: arguments ({line.kind}): {shown_line(line.argv)}")
        return line.argv


@dataclass(frozen=True)
class JobState:
    """A scheduler's job as the glue sees it."""

    active: bool  # pending or running
    word: str  # the scheduler's own word (PENDING, RUNNING, COMPLETED, FAILED, ...; UNKNOWN once forgotten)
    unreadable: bool = False  # the scheduler could not be asked now (its API refused): looked at again later
    warning: str = ""  # what could not be read, said once per cause (the job's state itself, or a detail)


class Runner(Protocol):
    def describe(self) -> str: ...

    def run(self, job: Job) -> Outcome: ...
