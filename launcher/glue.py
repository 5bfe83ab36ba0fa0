"""Glue between ClearML queues and a cluster scheduler (Slurm, Kubernetes): tasks are pulled from the queues,
each handed to the scheduler as a job that runs `clearml-launcher execute --id <task> --require-queue`,
and tracked until the job ends.

A task stays `queued` (in no queue) until its job starts and the launcher in it takes it, so a job that never
starts leaves a task nobody else takes: when a job ends and its task still is queued or in progress, the task
is failed with the job's end state. A task aborted on the server gets its job cancelled. sbatch or the API
server refusing the job fails the task with the refusal. `dry_run` writes what would be submitted into a
directory and submits nothing: the tasks stay in their queues.

The jobs a glue tracks are on disk (`Book`: one JSON record per scheduler and set of queues, written whole
and renamed, by the one glue that holds its lock), so a glue started again — after a crash, a kill -9, a
reboot — goes on tracking them: a job still alive is followed to its end, a job gone meanwhile fails its
task (naming the job), and a task aborted meanwhile gets its job cancelled.

The scheduler's errors (an API server that refuses or is away) never end a glue. A job whose state cannot be
read is looked at again at every poll, the reason said once per cause (in the glue's output and the task's
log); a task still queued whose job stays unreadable for `unreadable_limit` (15 min) fails, naming the
reason, and its job is cancelled if the scheduler lets it (a task in progress reports its own end). A job
that cannot be cancelled is asked again at every poll, and left after the same limit (the glue says so).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from clearml_task.errors import APICallError
from clearml_task.vocabulary import CLOSED, CREATED, FAILED, IN_PROGRESS, QUEUED, STOPPED
from launcher import templates
from launcher.backends import JobState, write_private
from launcher.errors import ReproductionError, SchedulerAway

if TYPE_CHECKING:
    from clearml_task.api import Client

# what a recorded task or job id may look like before it reaches squeue/scancel or the Kubernetes API
# (the record is a file: an entry of another shape, an option say, is dropped)
_WORD = r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}"
RECORDED_ID = re.compile(rf"{_WORD}(?:/{_WORD})?")  # a Slurm job id, a task id, a Kubernetes namespace/name
ENDED_GRACE = 5.0  # seconds a task may take to report its end after its job ended
AWAY_PAUSE = 30.0  # seconds without pulling once the scheduler could not be reached
UNREADABLE_LIMIT = 900.0  # seconds a job may stay unreadable (or undeletable) before the glue gives it up


class Scheduler(Protocol):
    name: str

    def render(self, task: dict[str, Any], context: templates.Context) -> str: ...

    def submit(self, rendered: str) -> str: ...

    def state(self, job_id: str) -> JobState: ...

    def cancel(self, job_id: str) -> None: ...


@dataclass
class Options:
    queues: list[str]
    worker: str
    interval: float = 1.0
    once: bool = False  # submit what is queued now, wait for those jobs, exit
    max_jobs: int = 0  # 0: no limit on jobs tracked at once
    dry_run: Path | None = None
    suffix: str = ".sh"  # of the files --dry-run writes
    state_dir: Path | None = None  # where the jobs it tracks are recorded (None: in memory only)
    unreadable_limit: float = UNREADABLE_LIMIT  # a queued task whose job stays unreadable so long fails


@dataclass
class Tracked:
    task_id: str
    job_id: str
    queue: str = ""
    ended_at: float | None = None
    trouble_since: float | None = None  # since when its state cannot be read (or it cannot be deleted)
    told: str = ""  # the last warning about it said (each cause is said once)


class Book:
    """The jobs a glue tracks, on disk: `<scheduler>-<hash of its queues>.json` beside the lock its glue holds
    for its whole life (one writer; the kernel frees the lock of a killed glue)."""

    def __init__(self, state_dir: Path, scheduler: str, queues: list[str]) -> None:
        from clearml_task import locks
        from clearml_task.errors import UserError

        state_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(json.dumps(sorted(queues)).encode()).hexdigest()[:16]
        self.path = state_dir / f"{scheduler}-{digest}.json"
        handle = locks.hold(self.path.with_suffix(".lock"))
        if handle is None:
            raise UserError(f"another {scheduler} glue on this machine pulls from these queues",
                            f"its record: {self.path}")  # fmt: skip
        self.handle: IO[bytes] = handle

    def read(self) -> list[Tracked]:
        """The jobs recorded by the glue before this one (a job id "" when it stopped while submitting)."""
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        jobs = found.get("jobs") if isinstance(found, dict) else None
        found = [
            Tracked(str(task_id), str(job.get("job") or ""), str(job.get("queue") or ""))
            for task_id, job in (jobs.items() if isinstance(jobs, dict) else [])
            if isinstance(job, dict)
        ]
        return [t for t in found if RECORDED_ID.fullmatch(t.task_id) and
                (not t.job_id or RECORDED_ID.fullmatch(t.job_id))]  # fmt: skip

    def write(self, jobs: dict[str, Tracked]) -> None:
        """All tracked jobs, written whole and renamed over the old record: a reader never sees half."""
        record = {"jobs": {t.task_id: {"job": t.job_id, "queue": t.queue} for t in jobs.values()}}
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(record))
        os.replace(partial, self.path)

    def close(self) -> None:
        self.handle.close()


@dataclass
class Glue:
    client: Client
    scheduler: Scheduler
    options: Options
    stopping: threading.Event = field(default_factory=threading.Event)
    jobs: dict[str, Tracked] = field(default_factory=dict)  # task id -> its job
    book: Book | None = None
    requeued: int = 0  # tasks put back in their queue because the scheduler was away
    away_until: float = 0.0  # no pulling before this time.monotonic(): the scheduler was away

    def run(self) -> int:
        """Pull, submit and track until stopped (or, with `once`, until what was queued has ended)."""
        queue_ids = [self.client.queue_id(name) for name in self.options.queues]
        names = dict(zip(queue_ids, self.options.queues, strict=True))
        if self.options.dry_run is not None:
            return self._dry_run(queue_ids, names)
        if self.options.state_dir is not None:
            self.book = Book(self.options.state_dir, self.scheduler.name, self.options.queues)
            self._resume()
        self.client.register_worker(self.options.worker, queue_ids)
        print(f"clearml-launcher: {self.scheduler.name} glue {self.options.worker} polls "
              f"{', '.join(self.options.queues)}", flush=True)  # fmt: skip
        try:
            self._loop(queue_ids, names)
        finally:
            self.client.unregister_worker(self.options.worker)
            if self.book is not None:
                self.book.close()
        return 1 if self.options.once and self.requeued else 0

    def _resume(self) -> None:
        """Track again the jobs the glue before this one submitted (what became of them, track() decides)."""
        assert self.book is not None
        name = self.scheduler.name
        for tracked in self.book.read():
            if not tracked.job_id:  # its glue stopped between recording the task and learning the job's id
                self._fail_unknown_job(tracked.task_id)
                continue
            self.jobs[tracked.task_id] = tracked
            with contextlib.suppress(APICallError):  # a task deleted meanwhile: track() cancels its job
                self._log(tracked.task_id, f"launcher: {name} job {tracked.job_id} tracked again by "
                                           f"{self.options.worker} (its glue was restarted)")  # fmt: skip
        if self.jobs:
            print(f"clearml-launcher: tracking {len(self.jobs)} {name} job(s) submitted before this glue "
                  "started", flush=True)  # fmt: skip

    def _fail_unknown_job(self, task_id: str) -> None:
        """A task whose job may or may not have been submitted: nothing tracks it, so it fails (a job that
        does start finds it no longer queued and runs nothing)."""
        found = self.client.tasks(id=[task_id], only_fields=["id", "status"])
        if found and found[0].get("status") == QUEUED:
            reason = (
                f"the {self.scheduler.name} glue stopped while submitting this task's job; none is tracked"
            )
            with contextlib.suppress(APICallError):
                self._fail(task_id, reason)
        self._save()

    def _forget(self, task_id: str) -> None:
        del self.jobs[task_id]
        self._save()

    def _save(self) -> None:
        if self.book is not None:
            self.book.write(self.jobs)

    def _loop(self, queue_ids: list[str], names: dict[str, str]) -> None:
        pulling = True
        while not self.stopping.is_set():
            self.track()
            room = not self.options.max_jobs or len(self.jobs) < self.options.max_jobs
            if pulling and room and time.monotonic() >= self.away_until:
                pulled = self._pull(queue_ids, names)
                # with --once, the scheduler away ends the pulling (the glue exits, 1 if a task went back)
                pulling = (pulled or not self.options.once) and not (self.options.once and self.away_until)
                if pulled and time.monotonic() >= self.away_until:  # submitted: the next one at once
                    continue
            if self.options.once and not pulling and not self.jobs:
                break
            self.stopping.wait(self.options.interval * random.uniform(0.8, 1.2))

    def _pull(self, queue_ids: list[str], names: dict[str, str]) -> bool:
        for queue_id in queue_ids:
            task_id = self.client.next_task(queue_id)
            if task_id:
                self.hand_over(task_id, queue_id, names[queue_id])
                return True
        return False

    def hand_over(self, task_id: str, queue_id: str, queue_name: str) -> None:
        """Render and submit the task's job; a task the scheduler cannot take fails with the reason — whatever
        the error (one line as its status message, the traceback in its log): a task off its queue is never
        left queued with nothing tracking it."""
        task = self.client.get_task(task_id)
        if task.get("status") != QUEUED:
            return
        context = templates.Context(queue_name, queue_id, self.options.worker, task, {})
        try:
            rendered = self.scheduler.render(task, context)
            self.jobs[task_id] = Tracked(task_id, "", queue_name)
            self._save()  # a glue killed while submitting leaves a trace: the next one fails the task
            job_id = self.scheduler.submit(rendered)
        except SchedulerAway as e:
            self._forget(task_id)
            self._put_back(task_id, queue_id, queue_name, e.reason)
            return
        except Exception as e:
            if task_id in self.jobs:
                self._forget(task_id)
            self._fail(task_id, *_failure(e, f"the {self.scheduler.name} glue could not submit its job"))
            return
        self.jobs[task_id].job_id = job_id
        self._save()  # on disk before anything else: a glue killed from here on still knows the job
        self._log(task_id, f"launcher: {self.scheduler.name} job {job_id} submitted for this task "
                           f"by {self.options.worker}")  # fmt: skip
        self.client.edit_task(task_id, force=True, runtime={f"{self.scheduler.name}_job_id": job_id})
        print(f"clearml-launcher: task {task_id} from {queue_name}: {self.scheduler.name} job {job_id}",
              flush=True)  # fmt: skip

    def _put_back(self, task_id: str, queue_id: str, queue_name: str, reason: str) -> None:
        """The task back at the front of its queue, and no pulling for AWAY_PAUSE: the scheduler did not
        refuse its job, it was not there (or busy), so the task is submitted again once it answers."""
        self.away_until = time.monotonic() + AWAY_PAUSE
        if self.client.get_task(task_id).get("status") != QUEUED:  # stopped meanwhile: nothing to put back
            self._log(task_id, f"launcher: {reason}; the task is no longer queued", level="warning")
            return
        self.client.call("queues.add_task", {"queue": queue_id, "task": task_id})
        self.client.call("queues.move_task_to_front", {"queue": queue_id, "task": task_id})
        self.requeued += 1
        again = "" if self.options.once else f"; trying again in {AWAY_PAUSE:.0f} s"
        self._log(task_id, f"launcher: {reason}: the task is back at the front of {queue_name}{again}",
                  level="warning")  # fmt: skip
        print(f"clearml-launcher: {reason}: task {task_id} is back at the front of {queue_name}{again}",
              flush=True)  # fmt: skip

    def track(self) -> None:
        """Cancel the jobs of aborted tasks; fail the tasks whose job ended without them reporting. The
        scheduler's errors never end the glue: a job whose state cannot be read is looked at again (said once
        per cause), and a queued task whose job stays unreadable for `unreadable_limit` fails."""
        if not self.jobs:
            return
        found = self.client.tasks(id=list(self.jobs), only_fields=["id", "status", "status_message"])
        statuses = {task["id"]: task for task in found}
        for task_id, tracked in list(self.jobs.items()):
            task = statuses.get(task_id)
            status = task.get("status") if task else None
            if (
                task is None
                or status in (STOPPED, CLOSED, CREATED)
                or "stopping" in (task.get("status_message") or "")
            ):
                self._cancel_aborted(tracked)
                continue
            if status not in (QUEUED, IN_PROGRESS):
                self._forget(task_id)  # it reported how it ended
                continue
            state = self._state(tracked)
            if state.unreadable:
                if status == QUEUED and self._troubled_too_long(tracked):
                    self._give_up(tracked, state.warning)
                continue
            tracked.trouble_since = None
            if state.active:
                continue
            tracked.ended_at = tracked.ended_at or time.monotonic()
            if time.monotonic() - tracked.ended_at >= ENDED_GRACE:
                self._fail(task_id, f"{self.scheduler.name} job {tracked.job_id} ended ({state.word}) "
                                    "without the task reporting its end")  # fmt: skip
                self._forget(task_id)

    def _state(self, tracked: Tracked) -> JobState:
        """The job's state; unreadable (never raised) when the scheduler fails, its warning told once."""
        try:
            state = self.scheduler.state(tracked.job_id)
        except Exception as e:  # a scheduler's unforeseen error: the state is unknown this time
            state = JobState(True, "UNKNOWN", unreadable=True, warning=f"its state cannot be read: {_why(e)}")
        self._tell(tracked, state.warning)
        return state

    def _cancel_aborted(self, tracked: Tracked) -> None:
        """Cancel the job of an aborted (or deleted) task; a scheduler that refuses is asked again at the next
        look, until `unreadable_limit` has passed (then the job is left, and the glue says so)."""
        name = self.scheduler.name
        try:
            self.scheduler.cancel(tracked.job_id)
        except Exception as e:
            why = f"it cannot be cancelled: {_why(e)}"
            self._tell(tracked, why)
            if self._troubled_too_long(tracked):
                self._say(tracked.task_id, f"launcher: gave up cancelling {name} job {tracked.job_id} "
                                           f"({why}); cancel it by hand")  # fmt: skip
                self._forget(tracked.task_id)
            return
        with contextlib.suppress(APICallError):  # a task deleted: nobody reads its log
            self._log(tracked.task_id, f"launcher: the task was aborted; {name} job {tracked.job_id} "
                                       "cancelled")  # fmt: skip
        self._forget(tracked.task_id)

    def _troubled_too_long(self, tracked: Tracked) -> bool:
        tracked.trouble_since = tracked.trouble_since or time.monotonic()
        return time.monotonic() - tracked.trouble_since >= self.options.unreadable_limit

    def _give_up(self, tracked: Tracked, warning: str) -> None:
        """A queued task whose job could not be read for `unreadable_limit`: it fails (a job that starts later
        finds it no longer queued and runs nothing), and its job is cancelled if the scheduler lets it."""
        name, limit = self.scheduler.name, self.options.unreadable_limit
        took = f"{limit / 60:g} min" if limit >= 60 else f"{limit:g} s"
        reason = f"{name} job {tracked.job_id} could not be read for {took} ({warning})"
        self._fail(tracked.task_id, reason)
        try:
            self.scheduler.cancel(tracked.job_id)
        except Exception as e:
            self._say(tracked.task_id, f"launcher: {name} job {tracked.job_id} is left: it cannot be "
                                       f"cancelled either: {_why(e)}")  # fmt: skip
        self._forget(tracked.task_id)

    def _tell(self, tracked: Tracked, warning: str) -> None:
        """Say a job's warning (in the glue's output and its task's log) when its cause is new."""
        if warning and warning != tracked.told:
            self._say(tracked.task_id, f"launcher: {self.scheduler.name} job {tracked.job_id}: {warning}")
        tracked.told = warning

    def _say(self, task_id: str, line: str) -> None:
        """A line in the glue's output and in the task's log (a task deleted meanwhile has none)."""
        print(f"clearml-launcher: task {task_id}: {line.removeprefix('launcher: ')}", flush=True)
        with contextlib.suppress(APICallError):
            self._log(task_id, line, level="warning")

    def _dry_run(self, queue_ids: list[str], names: dict[str, str]) -> int:
        """Write each queued task's job into the directory; submit nothing, take nothing off a queue."""
        assert self.options.dry_run is not None
        self.options.dry_run.mkdir(parents=True, exist_ok=True)
        written: set[str] = set()
        while not self.stopping.is_set():
            for queue_id in queue_ids:
                queue = self.client.call("queues.get_by_id", {"queue": queue_id})["queue"]
                for entry in queue["entries"]:
                    task_id = str(entry["task"])
                    if task_id in written:
                        continue
                    task = self.client.get_task(task_id)
                    context = templates.Context(names[queue_id], queue_id, self.options.worker, task, {})
                    try:
                        rendered = self.scheduler.render(task, context)
                    except Exception as e:
                        why = _failure(e, "its job cannot be rendered")[0]
                        print(f"clearml-launcher: task {task_id}: {why}", flush=True)
                        written.add(task_id)
                        continue
                    path = self.options.dry_run / f"{task_id}{self.options.suffix}"
                    write_private(path, rendered)
                    written.add(task_id)
                    print(f"clearml-launcher: task {task_id}: wrote {path} (not submitted)", flush=True)
            if self.options.once:
                break
            self.stopping.wait(self.options.interval)
        return 0

    def _fail(self, task_id: str, reason: str, detail: str = "") -> None:
        lines = [f"launcher: {reason}", *(f"  {line}" for line in detail.strip().splitlines()[-20:])]
        self._log(task_id, *lines, level="error")
        self.client.set_status(task_id, FAILED, force=True, message=reason)
        print(f"clearml-launcher: task {task_id} failed: {reason}", flush=True)

    def _log(self, task_id: str, *lines: str, level: str = "info") -> None:
        self.client.send_log(task_id, [(level, line) for line in lines], worker=self.options.worker)


def _failure(error: Exception, doing: str) -> tuple[str, str]:
    """A task's failure from an error: its reason and detail, or (an unforeseen error) one line naming what
    was being done and the traceback."""
    import traceback

    if isinstance(error, ReproductionError):
        return error.reason, error.detail
    return f"{doing}: {_why(error)}", "".join(traceback.format_exception(error))


def _why(error: Exception) -> str:
    """An error of a scheduler, in one line: its reason when it gives one, else its type and first line."""
    if isinstance(error, ReproductionError):
        return error.reason
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
