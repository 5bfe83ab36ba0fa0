"""The daemon: pull tasks from queues and run them one at a time (up to N with --services-mode),
reporting as a ClearML worker.

Strict priority across queues (after each task it starts again from the first), or round-robin with
--order-fairness. Idle polling is one cheap call per queue per interval; a stop (SIGTERM, `--stop`) ends
a running task as stopped — never completed — and unregisters the worker."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task.errors import UserError
from launcher.services import Slots

if TYPE_CHECKING:
    from clearml_task.api import Client
    from launcher.execute import Settings

REPORT_INTERVAL = 30.0


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
    def __init__(self, client: Client, options: Options, settings: Settings) -> None:
        self.client, self.options, self.settings = client, options, settings
        self.stopping = threading.Event()
        embedded = client.session.config.embedded
        # A remote server gets one call per queue a second: a task starts within about a second, at a load a
        # server barely notices (ClearML's agent waits at least 5 s between polls).
        self.interval = options.polling_interval or (0.5 if embedded else 1.0)
        self.queue_ids = [client.queue_id(q, create=options.create_queue) for q in options.queues]
        self.names = dict(zip(self.queue_ids, options.queues, strict=True))
        self._last_report = 0.0
        self.slots = Slots(options.services) if options.services is not None else None

    def run(self) -> int:
        worker = self.settings.worker
        self.client.register_worker(worker, self.queue_ids, timeout=max(600, int(self.interval * 4)))
        print(f"clearml-launcher: worker {worker} polls {', '.join(self.options.queues)}", flush=True)
        ran, start = 0, 0
        try:
            while not self.stopping.is_set():
                if self.slots is not None and not self.slots.wait_free(self.stopping):
                    break
                picked = self._next(start)
                if picked is None:
                    if self.options.once:
                        break
                    self._report()
                    self.stopping.wait(self.interval * random.uniform(0.8, 1.2))  # jitter: fair among peers
                    continue
                index, task_id = picked
                start = (index + 1) % len(self.queue_ids) if self.options.fairness else 0
                if self.slots is None:
                    self._run_one(task_id, self.queue_ids[index])
                else:
                    self.slots.start(self._run_one, task_id, self.queue_ids[index])
                ran += 1
                if self.options.once or (self.options.max_tasks and ran >= self.options.max_tasks):
                    break
        finally:
            if self.slots is not None:
                self.slots.join()
            self.client.unregister_worker(worker)
        return 0

    def _next(self, start: int) -> tuple[int, str] | None:
        count = len(self.queue_ids)
        for offset in range(count):
            index = (start + offset) % count
            task_id = self.client.next_task(self.queue_ids[index])
            if task_id:
                return index, task_id
        return None

    def _run_one(self, task_id: str, queue_id: str) -> None:
        from launcher import execute
        from launcher.logship import LogShipper

        print(f"clearml-launcher: task {task_id} from {self.names[queue_id]}", flush=True)
        try:
            task = execute.take(self.client, task_id, dequeued=True)
        except UserError as e:  # deleted, or no longer runnable since it was enqueued
            print(f"clearml-launcher: skipping task {task_id}: {e.message}", flush=True)
            return
        self.client.status_report(self.settings.worker, task_id=task_id, queue_id=queue_id,
                                  machine_stats=machine_stats())  # fmt: skip
        done = threading.Event()
        reporter = threading.Thread(target=self._report_while, args=(task_id, queue_id, done), daemon=True)
        reporter.start()
        log = LogShipper(self.client, task_id, self.settings.worker, echo=self.settings.echo)
        try:
            status = execute.run(self.client, task, self.settings, log, stop=self.stopping)
        finally:
            log.close()
            done.set()
            reporter.join()
        print(f"clearml-launcher: task {task_id} {status}", flush=True)

    def _report_while(self, task_id: str, queue_id: str, done: threading.Event) -> None:
        """Status reports every REPORT_INTERVAL while the task runs (they keep it "held" by this worker)."""
        while not done.wait(REPORT_INTERVAL):
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


def _gpu_stats() -> dict[str, Any]:
    """GPU utilisation and memory from nvidia-smi, when this machine has it."""
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


# ---- this machine's daemons: worker ids, pid files, --detached, --stop, --status ----------------
def registry(home: Path) -> Path:
    path = home / "daemons"
    path.mkdir(parents=True, exist_ok=True)
    return path


def running(home: Path) -> list[dict[str, Any]]:
    """This machine's live daemons (pid files whose process is alive); stale files are removed."""
    out = []
    for path in sorted(registry(home).glob("*.json")):
        try:
            info = json.loads(path.read_text())
            os.kill(int(info["pid"]), 0)
        except (ValueError, KeyError, OSError):
            path.unlink(missing_ok=True)
            continue
        out.append(info)
    return out


def worker_id(home: Path, gpus: str | None) -> str:
    host = socket.gethostname()
    if gpus:
        return f"{host}:gpu{gpus}"
    taken = {info["worker"] for info in running(home)}
    n = 0
    while f"{host}:{n}" in taken:
        n += 1
    return f"{host}:{n}"


def record(home: Path, worker: str, queues: Sequence[str], log_file: str = "") -> Path:
    path = registry(home) / f"{worker.replace('/', '_').replace(':', '_')}.json"
    info = {"pid": os.getpid(), "worker": worker, "queues": list(queues), "log": log_file,
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    path.write_text(json.dumps(info))
    return path


def detach(argv: list[str], home: Path, worker: str) -> tuple[int, Path]:
    """Start this daemon again in the background (its own session, output to a log file)."""
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"{worker.replace(':', '_')}.log"
    with log_file.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "launcher", *argv], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    return child.pid, log_file


def stop(home: Path, worker: str | None, timeout: float = 60.0) -> list[str]:
    """SIGTERM this machine's daemon(s) — one worker, or all — and wait until they are gone."""
    targets = [info for info in running(home) if worker in (None, info["worker"])]
    if worker and not targets:
        known = ", ".join(info["worker"] for info in running(home)) or "none"
        raise UserError(f"no daemon {worker} runs on this machine (running: {known})")
    for info in targets:
        os.kill(int(info["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for info in targets:
        while time.monotonic() < deadline:
            try:
                os.kill(int(info["pid"]), 0)
            except OSError:
                break
            time.sleep(0.1)
    return [info["worker"] for info in targets]
