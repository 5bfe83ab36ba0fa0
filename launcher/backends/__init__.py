"""Where a task runs. Each backend is one module with the same few names, so the next one is one more module.

Two shapes, as submitit's executors and pre-commit's languages have one shape each:

- runners run a prepared job on this machine and return how it ended — `local` (a process on the host) and
  `container` (the same run inside a container engine). A runner is an object with `describe() -> str` and
  `run(job: Job) -> Outcome`; the launcher has reproduced the code (`Job.root`) before it is called, and
  reports the task's status from the Outcome after.
- schedulers hand a queued task to a cluster where `clearml-launcher execute --id <task>` runs it —
  `slurm` and `kubernetes`. Each module has `missing() -> str | None` (why it cannot be used here, with the
  install line) and a class with `render(task, context) -> str` (the job: a batch script, a manifest),
  `submit(rendered) -> str` (the scheduler's job id), `state(job_id) -> JobState` and `cancel(job_id)`;
  `launcher.glue` pulls from the queues, tracks the jobs, fails and cancels them for every scheduler alike.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from clearml_task.api import Client
    from launcher.logship import LogShipper
    from launcher.process import Outcome


@dataclass
class Job:
    """One run, ready to start: the task, its checkout, its arguments and what the launcher adds."""

    client: Client
    task: dict[str, Any]
    root: Path  # the checkout
    workdir: Path  # where the entry point runs
    entry_point: str
    arguments: list[str]  # the task's argv (from hyperparams.Args)
    extra_env: dict[str, str]  # the server's address and keys, the task's id, the worker, GPUs
    cache_dir: Path
    log: LogShipper
    grace: float = 10.0
    gpus: str | None = None  # "0,1"; "" for none; None: untouched
    stop: threading.Event | None = None
    files: list[Path] = field(default_factory=list)  # host files the run reads besides the checkout


@dataclass(frozen=True)
class JobState:
    """A scheduler's job as the glue sees it."""

    active: bool  # pending or running
    word: str  # the scheduler's own word (PENDING, RUNNING, COMPLETED, FAILED, ...; UNKNOWN once forgotten)


class Runner(Protocol):
    def describe(self) -> str: ...

    def run(self, job: Job) -> Outcome: ...
