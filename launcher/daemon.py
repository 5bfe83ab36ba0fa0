"""The daemon: pull tasks from queues and run them one at a time (up to N with --services-mode),
reporting as a ClearML worker.

Strict priority across queues (after each task it starts again from the first), or round-robin with
--order-fairness. On our server an idle daemon long-polls: one queues.get_next_task call over all its
queues, in the order of the pass (`then_queues`), that the server holds until an entry comes or LONG_POLL
seconds pass, so a task starts as soon as it is enqueued and the order is the server's atomic pass. On
ClearML's server (server.info does not advertise the `wait` field) it polls: one call per queue per
interval. A stop (SIGTERM, `--stop`) is seen within LONG_POLL seconds when idle; it ends a running task
as stopped — never completed — and unregisters the worker. The daemon's record
(launcher.registry) says what it runs at every moment, so that a daemon taking its id after a crash can
clean up; its client never gives up on the server (an outage of any length is waited out) until it is
stopped: then an unanswered call gets a few more tries, and a run whose end could not be told stays in the
record (kept) for the next daemon of this id to end."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task.errors import UserError
from launcher import threads
from launcher.services import Slots

if TYPE_CHECKING:
    from clearml_task.api import Client
    from launcher.execute import Settings
    from launcher.logship import LogShipper
    from launcher.registry import Claim
    from launcher.reuse import Spares

REPORT_INTERVAL = 30.0
# Seconds one long-poll waits on the server: also the longest an idle daemon takes to see a stop.
LONG_POLL = 2.0
MIN_LONG_POLL = 1.0  # a server that waits less than this is polled


@dataclass
class Options:
    queues: list[str]
    fairness: bool = False
    polling_interval: float | None = None  # None: 0.5 s on the embedded server, 1 s on a remote one
    once: bool = False
    max_tasks: int | None = None
    create_queue: bool = False
    services: int | None = None  # --services-mode: up to N tasks at once (0: no limit); None: one at a time


class Daemon:
    def __init__(self, client: Client, options: Options, settings: Settings, claim: Claim) -> None:
        self.client, self.options, self.settings, self.claim = client, options, settings, claim
        self.stopping = threading.Event()
        embedded = client.session.config.embedded
        # A remote server gets one call per queue a second: a task starts within about a second, at a load a
        # server barely notices (ClearML's agent waits at least 5 s between polls).
        self.interval = options.polling_interval or (0.5 if embedded else 1.0)
        self.queue_ids = [client.queue_id(q, create=options.create_queue) for q in options.queues]
        self.names = dict(zip(self.queue_ids, options.queues, strict=True))
        self._last_report = 0.0
        self.slots = Slots(options.services) if options.services is not None else None
        self.spares = _spares(settings)
        self._closing: dict[str, threads.Work] = {}  # runs whose end is being told, by task id
        self._last_reports: threads.Work | None = None  # the status reports of the run that ended last
        self._closing_lock = threading.Lock()
        self.failure: UserError | None = None  # why it takes no more tasks (its record cannot be written)
        advertised, self.with_task = client.long_poll()  # 0: the server cannot wait (ClearML's): poll it
        self.wait = min(LONG_POLL, advertised) if advertised >= MIN_LONG_POLL else 0.0

    def run(self) -> int:
        from launcher import environment, execute, registry

        worker = self.settings.worker
        registry.reconcile(self.client, self.claim.previous, _say, ended=self.claim.run_ended)
        registry.sweep(self.settings.work_dir, _say)
        environment.sweep_leftovers(self.settings.cache_dir / "envs")
        with execute.server_for_tasks(self.client) as server_env:  # ephemeral mode: served once, not per task
            self.settings = dataclasses.replace(self.settings, server_env=server_env)
            return self._serve(worker)

    def _serve(self, worker: str) -> int:
        """Registered as `worker`, run the queues' tasks until stopped (or --once / --max-tasks)."""
        self.client.register_worker(worker, self.queue_ids, timeout=max(600, int(self.interval * 4)))
        self.claim.update(registered=True)
        how = "waits on" if self.wait else f"polls every {self.interval:g}s"
        print(f"clearml-launcher: worker {worker} {how} {', '.join(self.options.queues)}", flush=True)
        ran, start = 0, 0
        try:
            while not self.stopping.is_set() and self.failure is None:
                if self.slots is not None and not self.slots.wait_free(self.stopping):
                    break
                asked = time.monotonic()
                try:
                    picked = self._next(start)
                except UserError:
                    if self.stopping.is_set():  # stopped while the server is away: nothing was taken
                        break
                    raise
                if picked is None:
                    if self.options.once:
                        break
                    self._report()
                    if self.wait and time.monotonic() - asked >= self.wait / 2:
                        continue  # the server waited: ask again now
                    # Polling, or the server had no room for another waiting call: the interval, with jitter
                    # (fair among peers).
                    self.stopping.wait(self.interval * random.uniform(0.8, 1.2))
                    continue
                index, task_id, task = picked
                if self.stopping.is_set():  # taken while the stop came: first in line again, not stopped
                    self._hand_back(task_id, self.queue_ids[index])
                    break
                start = (index + 1) % len(self.queue_ids) if self.options.fairness else 0
                if self.slots is None:
                    self._run_one(task_id, self.queue_ids[index], task)
                else:
                    self.slots.start(self._run_one, task_id, self.queue_ids[index], task)
                ran += 1
                if self.options.once or (self.options.max_tasks and ran >= self.options.max_tasks):
                    break
        finally:
            if self.slots is not None:
                self.slots.join()
            if self.spares is not None:
                self.spares.close()
            self._wait_for_logs()
            self.client.session.retries = 3  # leaving: a server that is away is not waited for
            with contextlib.suppress(Exception):
                self.client.unregister_worker(worker)
        if self.failure is not None:
            raise self.failure
        return 0

    def _next(self, start: int) -> tuple[int, str, dict[str, Any] | None] | None:
        """(index of the queue, task id, its document when the server gave it) of the next task in a pass
        over the queues from `start`."""
        count = len(self.queue_ids)
        if self.wait:
            order = self.queue_ids[start:] + self.queue_ids[:start]
            wait = 0.0 if self.options.once else self.wait
            found = self.client.take_next(order, wait, with_task=self.with_task)
            if found is None:
                return None
            return self.queue_ids.index(found[0]), found[1], found[2]
        for offset in range(count):
            index = (start + offset) % count
            task_id = self.client.next_task(self.queue_ids[index])
            if task_id:
                return index, task_id, None
        return None

    def _hand_back(self, task_id: str, queue_id: str) -> None:
        """The task taken as the stop came goes back to the front of its queue; in the record until it has
        (should the server be away, the next daemon of this id puts it back)."""
        self.claim.run_started(task_id)
        with contextlib.suppress(Exception):
            self._to_the_front(task_id, queue_id)
            self.claim.run_ended(task_id)

    def _to_the_front(self, task_id: str, queue_id: str) -> None:
        """A task taken but not started goes back to the front of its queue."""
        self.client.call("queues.add_task", {"queue": queue_id, "task": task_id})
        self.client.call("queues.move_task_to_front", {"queue": queue_id, "task": task_id})
        print(f"clearml-launcher: task {task_id} went back to the front of {self.names[queue_id]}",
              flush=True)  # fmt: skip

    def _cannot_record(self, task_id: str, queue_id: str, error: OSError) -> None:
        """The record of a run cannot be written (a full disk, a read-only home): the task taken goes back
        to its queue for a daemon that can keep one (it is not at fault), and this daemon takes no more
        tasks and exits saying why; runs under way (services mode) end as they would."""
        reason = error.strerror or str(error)
        self.failure = UserError(
            f"cannot write the daemon's record {self.claim.path}: {reason}",
            "free space (or make the launcher's home writable) and start the daemon again",
        )
        with contextlib.suppress(OSError):  # out of the record in memory (the file cannot be written)
            self.claim.run_ended(task_id)
        try:
            self._to_the_front(task_id, queue_id)
        except Exception as e:  # the server away too: the task stays off its queue, as the line says
            print(f"clearml-launcher: task {task_id} could not go back to {self.names[queue_id]}: {e}",
                  flush=True)  # fmt: skip

    def _run_one(self, task_id: str, queue_id: str, document: dict[str, Any] | None = None) -> None:
        """Take the task (its document, read with its entry when the server gave it) and run it."""
        from launcher import execute
        from launcher.logship import LogShipper

        print(f"clearml-launcher: task {task_id} from {self.names[queue_id]}", flush=True)
        with self._closing_lock:
            closing = self._closing.get(task_id)
        if closing is not None:  # the task again (re-enqueued) before its last run's end was told: after it
            closing.join()
        where = execute.plan(self.settings, task_id)
        try:
            self.claim.run_started(task_id, where)  # in the record until it ends (services: one of several)
        except OSError as e:
            self._cannot_record(task_id, queue_id, e)
            return
        try:
            task, ready = execute.take_meanwhile(self.client, task_id, document)
        except UserError as e:  # deleted, or no longer runnable since it was enqueued
            if self.stopping.is_set():  # or the server is away and the daemon leaves: the record keeps it
                print(f"clearml-launcher: task {task_id} is left to the next daemon of this id: {e.message}",
                      flush=True)  # fmt: skip
                return
            print(f"clearml-launcher: skipping task {task_id}: {e.message}", flush=True)
            self.claim.run_ended(task_id)
            return
        done = threading.Event()
        reporter = threads.start(self._report_while, task_id, queue_id, done, self._last_reports,
                                 name="status-reports")  # fmt: skip
        log = LogShipper(self.client, task_id, self.settings.worker, echo=self.settings.echo,
                         spill_dir=self.settings.work_dir)  # fmt: skip
        # what the run tells as it goes (work tree, SDK config, process) goes into its entry of the record
        settings = dataclasses.replace(self.settings, on_run=partial(self.claim.run_changed, task_id),
                                       spares=self.spares)  # fmt: skip
        final: list[Callable[[], None]] = []  # the final status, told after the log's lines
        try:
            status = execute.run(self.client, task, settings, log, stop=self.stopping, report=final.append,
                                 where=where, ready=ready)  # fmt: skip
        finally:
            done.set()  # its reports end; the final status waits for them (a short task need not)
            self._last_reports = reporter
            self._close_in_background(task_id, log, final, reporter)
        print(f"clearml-launcher: task {task_id} {status}", flush=True)

    def _close_in_background(
        self, task_id: str, log: LogShipper, final: list[Callable[[], None]], reports: threads.Work
    ) -> None:
        """The run's end told while the next task starts (its process is gone by now): the log's lines, then
        the final status, then the run leaves the record. The final status goes into the record first, and
        the run stays there until the server has it: a daemon killed meanwhile (the server away) leaves it
        for the next daemon of this id to tell (a run that ended without one, on an error of the launcher's
        own, that daemon fails). The daemon waits for every run it closes before it exits (nothing is lost,
        unless it is stopped while the server is away: the log lines not yet sent are then lost)."""

        def close() -> None:
            from launcher.execute import Ending

            told = bool(final)
            for action in final:  # first in the record: a daemon killed while it is told (the server away)
                if isinstance(action, Ending):  # leaves it to the next daemon of this id to tell
                    self.claim.run_changed(
                        task_id, {"outcome": {"status": action.status, "message": action.message}}
                    )
            reports.join()  # a report of the task still on its way lands before its final status
            try:
                for action in final:
                    action()
            except Exception as e:
                told = False
                print(f"clearml-launcher: task {task_id}: its final status could not be reported: {e}",
                      flush=True)  # fmt: skip
            log.close()
            if told:
                self.claim.run_ended(task_id)

        with self._closing_lock:
            self._closing = {key: work for key, work in self._closing.items() if work.is_alive()}
            self._closing[task_id] = threads.start(close, name="run-close")

    def _wait_for_logs(self) -> None:
        with self._closing_lock:
            closing, self._closing = self._closing, {}
        for work in closing.values():
            work.join()

    def _report_while(
        self, task_id: str, queue_id: str, done: threading.Event, after: threads.Work | None
    ) -> None:
        """Status reports, the first at once, then every REPORT_INTERVAL while the task runs (they keep it
        "held" by this worker). In a thread: the task does not wait for them, nor does the next task's
        start; the first waits for `after` (the last run's reports, ending), so that none of them lands
        after it and shows the worker on the task before."""
        if after is not None:
            after.join()
        first = True
        while first or not done.wait(REPORT_INTERVAL):
            first = False
            try:
                self.client.status_report(self.settings.worker, task_id=task_id, queue_id=queue_id,
                                          machine_stats=machine_stats())  # fmt: skip
            except Exception:
                continue

    def _report(self) -> None:
        if time.monotonic() - self._last_report < REPORT_INTERVAL:
            return
        self._last_report = time.monotonic()
        with contextlib.suppress(Exception):
            self.client.status_report(self.settings.worker, machine_stats=machine_stats())


def _spares(settings: Settings) -> Spares | None:
    """A clean work tree kept for the next task of the same code (launcher.reuse): for tasks run on the host
    (a container runner hands the tree to the engine), unless work trees are kept for inspection."""
    from launcher.backends.local import Local
    from launcher.reuse import Spares

    if settings.keep_workspace or not isinstance(settings.runner, Local):
        return None
    return Spares()


def _say(message: str) -> None:
    print(f"clearml-launcher: {message}", flush=True)


def machine_stats() -> dict[str, Any]:
    """CPU load and memory (and GPUs when nvidia-smi answers), in ClearML's machine_stats shape."""
    stats: dict[str, Any] = {}
    cpus = os.cpu_count() or 1
    stats["cpu_usage"] = [round(min(100.0, os.getloadavg()[0] / cpus * 100), 1)]
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        values = {}
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) / 1024 if rest.split() else 0
        stats["memory_free"] = round(values.get("MemAvailable", 0))
        stats["memory_used"] = round(values.get("MemTotal", 0) - values.get("MemAvailable", 0))
    stats.update(_gpu_stats())
    return stats


GPU_STATS_MAX_AGE = 5.0  # seconds: a status report may carry GPU figures this old
_gpu_seen: tuple[float, dict[str, Any]] | None = None  # (monotonic time, figures) of the last nvidia-smi


def _gpu_stats() -> dict[str, Any]:
    """GPU utilisation and memory from nvidia-smi, when this machine has it. Asked at most every
    GPU_STATS_MAX_AGE seconds: a stream of short tasks (a report as each starts) would otherwise start
    nvidia-smi, tens of ms of CPU, for every task."""
    global _gpu_seen
    if _gpu_seen is not None and time.monotonic() - _gpu_seen[0] < GPU_STATS_MAX_AGE:
        return dict(_gpu_seen[1])
    figures = _ask_nvidia_smi()
    _gpu_seen = (time.monotonic(), figures)
    return dict(figures)


def _ask_nvidia_smi() -> dict[str, Any]:
    import shutil

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    query = "--query-gpu=utilization.gpu,memory.used,memory.free,temperature.gpu"
    try:
        out = subprocess.run([smi, query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=5, check=True).stdout  # fmt: skip
        rows = [[float(v) for v in line.split(",")] for line in out.strip().splitlines()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    return {
        "gpu_usage": [r[0] for r in rows],
        "gpu_memory_used": [r[1] for r in rows],
        "gpu_memory_free": [r[2] for r in rows],
        "gpu_temperature": [r[3] for r in rows],
    }
