"""This machine's daemons and what their runs leave behind.

- A worker id (`<host>:<n>`, `<host>:gpu0,1:<n>`) is claimed with a file lock the daemon holds for its
  whole life: two daemons never get one id, and a lock nobody holds means its daemon is dead, however it
  died (the kernel releases the lock of a killed process).
- Beside the lock, the daemon's record (JSON): pid, queues, GPUs, log file, and every run it has going
  (one, or up to N in services mode), by task id: its backend (the runner module), process group, the marker
  its processes inherit, work tree, SDK config. A run leaves the record when it ends.
- A daemon that claims the id of a dead one reconciles what it left, run by run: the run's processes are
  ended, what its backend left goes (its runner module's `cleanup`: a container), its task fails ("the worker
  was restarted while it ran"), its work tree and SDK config go.
- Work trees of runs nobody runs any more (each run holds a lock beside its tree) are swept, and what a run
  left beside a tree already gone (its lock, a container run's staging folder)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

from clearml_task import locks
from clearml_task.errors import UserError
from clearml_task.vocabulary import COMPLETED, FAILED, IN_PROGRESS, QUEUED, STOPPED

if TYPE_CHECKING:
    from clearml_task.api import Client

RESTARTED = "the worker was restarted while it ran"
MAX_MESSAGE = 1000  # characters of a status message read back from a record
LOG_FILE_ENV = "CLEARML_LAUNCHER_LOG_FILE"  # a detached daemon's log file, for its record
LOCK_SUFFIX = ".lock"
SWEEP_AGE = 60.0  # seconds: a work tree younger than this may belong to a run that is only starting


def directory(home: Path) -> Path:
    path = home / "daemons"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stem(worker: str) -> str:
    return worker.replace("/", "_").replace(":", "_")


@dataclass
class Claim:
    """A worker id this process holds, and its record."""

    worker: str
    path: Path
    handle: IO[bytes]
    previous: dict[str, Any] | None  # what a dead daemon with this id left
    info: dict[str, Any] = field(default_factory=dict)
    # services mode runs several tasks in threads of one daemon: one writer of the record at a time
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **fields: Any) -> None:
        """Change the record (written whole, then renamed over the old one: readers never see half)."""
        with self.lock:
            self.info.update(fields)
            self._write()

    def _write(self) -> None:
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.info))
        os.replace(partial, self.path)

    def run_started(self, task_id: str, fields: dict[str, Any] | None = None) -> None:
        """A run begins (before its task is taken; `fields`: where it will live): it is in the record until
        it ends."""
        self._change_run(task_id, {"task": task_id, **(fields or {})})

    def run_changed(self, task_id: str, fields: dict[str, Any]) -> None:
        """What a run tells as it goes (work tree, SDK config, process)."""
        self._change_run(task_id, fields)

    def run_ended(self, task_id: str) -> None:
        with self.lock:
            self.info["runs"] = {key: run for key, run in self.runs.items() if key != task_id}
            self._write()

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        return dict(self.info.get("runs") or {})

    def _change_run(self, task_id: str, fields: dict[str, Any]) -> None:
        """The run's entry with these fields; a change that changes nothing is not written."""
        with self.lock:
            runs = self.runs
            changed = {**runs.get(task_id, {}), **fields}
            if runs.get(task_id) == changed:
                return
            runs[task_id] = changed
            self.info["runs"] = runs
            self._write()

    def release(self) -> None:
        """The id is free again. A record that still holds runs (their final status never reached the
        server: it was away when the daemon was stopped) stays, for the next daemon of this id to end."""
        if not self.runs:
            self.path.unlink(missing_ok=True)
        self.handle.close()


def claim(home: Path, gpus: str | None, queues: Sequence[str], log_file: str = "") -> Claim:
    """The first free id for these GPUs on this machine, claimed for as long as this process lives."""
    host = socket.gethostname()
    base = f"{host}:gpu{gpus}" if gpus else host
    folder = directory(home)
    n = 0
    while True:
        worker = f"{base}:{n}"
        handle = locks.hold(folder / f"{_stem(worker)}{LOCK_SUFFIX}")
        if handle is not None:
            break
        n += 1
    path = folder / f"{_stem(worker)}.json"
    previous = _read(path)
    found = Claim(worker, path, handle, previous)
    found.update(pid=os.getpid(), worker=worker, queues=list(queues), gpus=gpus, log=log_file,
                 started=time.strftime("%Y-%m-%d %H:%M:%S"), registered=False,
                 runs=inherited(previous))  # fmt: skip
    return found


def _read(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _alive(record: Path) -> bool:
    """Its daemon holds the lock beside it."""
    handle = locks.hold(record.with_suffix(LOCK_SUFFIX))
    if handle is None:
        return True
    handle.close()
    return False


def running(home: Path) -> list[dict[str, Any]]:
    """This machine's live daemons' records."""
    return [info for path, info in _records(home) if _alive(path)]


def left(home: Path) -> list[dict[str, Any]]:
    """The records of daemons gone that still hold runs (their end never reached the server): the next
    daemon of their id ends them."""
    return [info for path, info in _records(home) if runs_of(info) and not _alive(path)]


def _records(home: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every daemon record on this machine that can be read, with its path."""
    for path in sorted(directory(home).glob("*.json")):
        info = _read(path)
        if info is not None:
            yield path, info


def select(home: Path, worker: str | None, queues: Sequence[str], gpus: str | None) -> list[dict[str, Any]]:
    """The live daemons a --stop names: by worker id, else those started with these --queue / --gpus."""
    found = running(home)
    if worker:
        chosen = [d for d in found if d["worker"] == worker]
    else:
        chosen = [d for d in found if (not queues or d["queues"] == list(queues))
                  and (gpus is None or d.get("gpus") == gpus)]  # fmt: skip
    if (worker or queues or gpus is not None) and not chosen:
        known = ", ".join(f"{d['worker']} ({' '.join(d['queues'])})" for d in found) or "none"
        raise UserError(f"no daemon on this machine matches (running: {known})")
    return chosen


def stop(daemons: list[dict[str, Any]], timeout: float = 60.0) -> list[str]:
    """SIGTERM these daemons and wait until they are gone."""
    for info in daemons:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(info["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for info in daemons:
        while time.monotonic() < deadline:
            try:
                os.kill(int(info["pid"]), 0)
            except OSError:
                break
            time.sleep(0.1)
    return [info["worker"] for info in daemons]


def runs_of(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The runs a daemon's record holds (a record from before services mode kept one, as `run`)."""
    record = record or {}
    runs = record.get("runs")
    found = [run for run in (runs.values() if isinstance(runs, dict) else ()) if isinstance(run, dict)]
    if isinstance(record.get("run"), dict):
        found.append(record["run"])
    return found


def inherited(previous: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The runs of the dead daemon whose id is taken, by task id: the new record holds them until each is
    ended (a daemon stopped or killed before it could end them leaves them to the next one)."""
    return {str(run.get("task") or f"run-{n}"): run for n, run in enumerate(runs_of(previous))}


def reconcile(
    client: Client, previous: dict[str, Any] | None, say: Callable[[str], None],
    ended: Callable[[str], None] | None = None,
) -> None:  # fmt: skip
    """End what the dead daemon whose id we took was running: every run's processes, task and files;
    `ended(key)` after each (its key in `inherited`)."""
    for key, run in inherited(previous).items():
        _reconcile_run(client, run, say)
        if ended is not None:
            ended(key)


def _reconcile_run(client: Client, run: dict[str, Any], say: Callable[[str], None]) -> None:
    from launcher import reaper

    marker = run.get("marker")
    group = run.get("pgid")
    # The group id may be a stranger's by now: it is only ours while one of its processes has our marker.
    if group and not (marker and reaper.leftovers(group, None) & set(reaper.marked(marker))):
        group = None
    ended = reaper.end(group, marker)
    cleaned = _runner_module(run).cleanup(run)  # what the run's backend left besides its processes
    if cleaned:
        say(cleaned)
    for key in ("work_tree", "sdk_config"):  # cleaned up before the task says so: whoever sees it failed
        if run.get(key):  # sees its files gone too
            _remove(Path(run[key]))
    task_id = str(run.get("task") or "")
    found = client.tasks(id=[task_id], only_fields=["status", "execution"]) if task_id else []
    outcome = _outcome(run)
    if found and found[0].get("status") == IN_PROGRESS and outcome is not None:
        client.set_status(task_id, outcome[0], force=True, message=outcome[1])
        say(f"task {task_id} {outcome[0]}: its end, which its daemon could not tell (the server was away), "
            "is told now")  # fmt: skip
    elif found and found[0].get("status") == IN_PROGRESS:
        client.set_status(task_id, FAILED, force=True, message=RESTARTED)
        say(f"task {task_id} failed: {RESTARTED} ({ended} process(es) it left were stopped)")
    elif found and found[0].get("status") == QUEUED:  # taken from its queue, never started: back in line
        queue = (found[0].get("execution") or {}).get("queue")
        if queue:
            client.enqueue(task_id, queue)
            say(f"task {task_id} went back to its queue: {RESTARTED} before it started")


def _outcome(run: dict[str, Any]) -> tuple[str, str] | None:
    """The final status (and its message) a run ended with but could not tell, as its record holds it."""
    outcome = run.get("outcome")
    if not isinstance(outcome, dict):
        return None
    status, message = outcome.get("status"), outcome.get("message")
    if status not in (COMPLETED, FAILED, STOPPED) or not isinstance(message, str):
        return None
    return status, message[:MAX_MESSAGE]


def _runner_module(run: dict[str, Any]) -> ModuleType:
    """The runner module (launcher/backends) the run's record names; a record from before runs named theirs
    (or naming none we know: the record is a file) has a container run's container in it, else it ran on the
    host."""
    import importlib

    from launcher.backends import RUNNERS

    name = run.get("backend")
    if name not in RUNNERS:
        name = "container" if run.get("container") else "local"
    return importlib.import_module(f"launcher.backends.{name}")


def run_lock(work_tree: Path) -> Path:
    """The lock a run holds beside its work tree for as long as it runs."""
    return work_tree.with_name(work_tree.name + LOCK_SUFFIX)


def sweep(work_dir: Path, say: Callable[[str], None]) -> int:
    """Remove the work trees (and SDK configs) of runs that no process runs any more: a run's lock file
    outlives it only when it did not end by itself (a kept work tree has none)."""
    if not work_dir.is_dir():
        return 0
    swept = 0
    for entry in sorted(work_dir.iterdir()):
        if not entry.is_dir() or not run_lock(entry).exists():
            continue  # a file, gone already, or a tree kept on purpose
        if time.time() - entry.stat().st_mtime < SWEEP_AGE:
            continue
        handle = locks.hold(run_lock(entry))
        if handle is None:
            continue  # its run goes on
        try:
            _remove(entry)
            for leftover in work_dir.glob(f"{entry.name}.*"):
                if leftover.suffix != LOCK_SUFFIX:
                    _remove(leftover)
            run_lock(entry).unlink(missing_ok=True)
            swept += 1
        finally:
            handle.close()
    if swept:
        say(f"removed {swept} work tree(s) of runs that ended without cleaning up")
    if left := _sweep_beside(work_dir):
        say(f"removed what {left} run(s) left beside a work tree already gone (a container's staging folder)")
    return swept


def _sweep_beside(work_dir: Path) -> int:
    """What runs whose work tree is gone left beside it (`<tree>.*`), when no process holds their lock: the
    lock itself (a restarted daemon removed a dead run's tree, not its lock: they piled up, one per killed
    run), a container run's staging folder (its env file holds the server's keys), an SDK config. Returns
    how many runs left more than their lock."""
    by_run: dict[str, list[Path]] = {}  # `<tree>.*` entries by their tree's name, from one listing
    for entry in work_dir.iterdir():
        run, dot, _ = entry.name.partition(".")
        if run and dot:
            by_run.setdefault(run, []).append(entry)
    removed = 0
    for run, beside in sorted(by_run.items()):
        tree, lock = work_dir / run, run_lock(work_dir / run)
        try:
            if tree.exists() or tree.is_symlink() or any(_young(path) for path in beside):
                continue
        except OSError:
            continue  # gone meanwhile
        handle = locks.hold(lock)
        if handle is None:
            continue  # a run holds it
        try:
            for path in beside:
                if path != lock:
                    _remove(path)
            lock.unlink(missing_ok=True)
            removed += any(path != lock for path in beside)
        finally:
            handle.close()
    return removed


def _young(path: Path) -> bool:
    """Made or changed less than SWEEP_AGE ago: it may belong to a run that is only starting."""
    return time.time() - path.lstat().st_mtime < SWEEP_AGE


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def detach(argv: list[str], home: Path, timeout: float = 120.0) -> tuple[dict[str, Any], Path]:
    """Start this daemon again in the background (its own session, output to a log file) and wait until
    it registered as a worker; its failure, with the reason its log gives, is a UserError."""
    import subprocess
    import sys

    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_file = logs / f"daemon-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}.log"
    with log_file.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "launcher", *argv], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ, LOG_FILE_ENV: str(log_file)},
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [d for d in running(home) if d.get("pid") == child.pid]
        if mine and mine[0].get("registered"):
            return mine[0], log_file
        if child.poll() is not None:
            lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit code {child.returncode}"
            raise UserError(f"the daemon exited at start: {reason}", f"its log: {log_file}")
        time.sleep(0.1)
    raise UserError(f"the daemon (pid {child.pid}) did not register within {timeout:.0f}s; it goes on trying",
                    f"its log: {log_file}; stop it with `clearml-launcher daemon --stop`")  # fmt: skip
