"""Enqueue to first line: how long after `clearml-task --queue` returns does the script's first line of
output exist, with our daemon already polling the queue?

    python bench/launcher.py [--runs N] [--venv PATH] [--polling-interval 0.5]

1. Builds a tiny git repository in a temp dir: `train.py` prints "FIRST LINE" and exits, and
   `requirements.txt` pins one small pure-Python package (six==1.16.0), so there is a real environment to
   build. It commits, pushes to a bare "origin" (a file path) and sets the upstream.
2. Uses a temp CLEARML_TASK_HOME (ephemeral mode: the embedded server over SQLite, no server process); the
   daemon, clearml-task and this script share the SQLite file under it. Starts
   `clearml-launcher daemon --queue bench --create-queue --polling-interval 0.5` in the background and
   waits until its worker is registered.
3. One run: a random pause (0.2 s + uniform(0, 2 x the polling interval), seeded, so that the enqueue lands at
   a random point of the idle daemon's polling cycle), then `clearml-task --project bench --name bench-run
   --folder REPO --script train.py --queue bench --output json`. The enqueue is finished when that process has
   exited (wall clock taken right after it is reaped). The task's log is then polled (events.get_task_log,
   every 20 ms) until "FIRST LINE" is there. The latency is that log event's own timestamp (milliseconds,
   stamped by the daemon's log shipper when it read the line from the script's stdout) minus the
   enqueue-finished time; when the poll saw the line is recorded too (it also waits for the shipper's next
   flush, at most 0.5 s later). Then the run waits for the task to be completed and for the daemon to say so
   on its stdout (its log flushed, back to polling) before the next run.
4. One priming run (not counted) fills uv's download cache. Then `--runs` cold runs and `--runs` warm runs:
   - cold: before each run the daemon is stopped (SIGTERM), $CLEARML_TASK_HOME/launcher/cache is emptied
     except uv's cache (`cache/uv-cache`: downloaded wheels and index responses), and the daemon is
     started again. So a cold run pays a fresh daemon process (its lazy imports), the repository clone
     into an empty mirror cache, and the venv build with uv (`uv venv` + `uv pip install` from uv's warm
     download cache; uv may still revalidate the index entry with the registry);
   - warm: the same commit and requirements again on the same daemon, which has already run a task (the
     repository mirror and the env are cached: no clone, no fetch, no uv).
5. Prints median/min/max for both, the aim (warm <= 1.0 s), and the daemon's own step lines (workspace:,
   environment:, launcher:) of the median cold and the median warm run, each placed in time from the
   enqueue by its log stamp, with the task's `started` and `completed` times from the server.

The daemon is stopped with SIGTERM and the temp dirs are removed at the end, also on failure. Children get
HOME=<empty temp dir> and no CLEARML_* variables. Nothing but this machine is contacted, except the package
registry uv uses for the cold builds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from clearml_task.api import Client, Session
from clearml_task.config import resolve

QUEUE = "bench"
PROJECT = "bench"
MARKER = "FIRST LINE"
AIM_WARM = 1.0  # seconds, warm enqueue -> first line
POLL = 0.02  # seconds between looks at the task's log
PAUSE_MIN = 0.2  # seconds; each run first waits PAUSE_MIN + uniform(0, 2 x the polling interval)
TASK_TIMEOUT = 300.0
STEP_PREFIXES = ("workspace:", "environment:", "launcher:")

TRAIN_PY = f'print("{MARKER}", flush=True)\n'
REQUIREMENTS = "six==1.16.0\n"


class BenchError(Exception):
    """Something the benchmark cannot go on with; the message says what (and shows the output involved)."""


@dataclass
class Run:
    kind: str
    task_id: str
    enqueue_s: float  # clearml-task's own wall time, spawn to reap
    latency_s: float  # log stamp of the first line - enqueue finished
    seen_s: float  # when this script's poll saw it - enqueue finished
    completed_s: float  # when the task was seen completed - enqueue finished
    steps: list[tuple[float, str]] = field(default_factory=list)  # (seconds after enqueue, line)


# the repository ---------------------------------------------------------------------------------------
def git(cwd: Path, *args: str, env: Mapping[str, str]) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=dict(env), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed in {cwd}:\n{done.stderr}")
    return done.stdout


def build_repo(base: Path, env: Mapping[str, str]) -> Path:
    repo, origin = base / "repo", base / "origin.git"
    repo.mkdir()
    (repo / "train.py").write_text(TRAIN_PY)
    (repo / "requirements.txt").write_text(REQUIREMENTS)
    identity = {
        **env,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }
    git(repo, "init", "--quiet", "--initial-branch=main", env=identity)
    git(repo, "add", "-A", env=identity)
    git(repo, "commit", "--quiet", "-m", "bench", env=identity)
    git(base, "init", "--quiet", "--bare", str(origin), env=identity)
    git(repo, "remote", "add", "origin", str(origin), env=identity)
    git(repo, "push", "--quiet", "--set-upstream", "origin", "main", env=identity)
    return repo


# the environment and the daemon -----------------------------------------------------------------------
def child_env(home: Path, task_home: Path) -> dict[str, str]:
    """Ours minus CLEARML_*, XDG_* and Python-path variables; an empty HOME; the temp CLEARML_TASK_HOME."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONDA_PREFIX")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLEARML_", "XDG_")) and key not in dropped
    }
    env |= {"HOME": str(home), "CLEARML_TASK_HOME": str(task_home)}
    return env


class Daemon:
    """`clearml-launcher daemon` as a subprocess, its output in a file (shown when something fails)."""

    def __init__(self, binary: Path, env: Mapping[str, str], log_file: Path, interval: float) -> None:
        self.binary, self.env, self.log_file, self.interval = binary, dict(env), log_file, interval
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, client: Client) -> None:
        argv = [str(self.binary), "daemon", "--queue", QUEUE, "--create-queue"]
        argv += ["--polling-interval", str(self.interval)]
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                argv, cwd=self.log_file.parent, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the daemon exited with {self.process.returncode}:\n{self.output()}")
            if self._registered(client):
                return
            time.sleep(0.05)
        raise BenchError(f"the daemon did not register its worker within 60 s:\n{self.output()}")

    def _registered(self, client: Client) -> bool:
        with contextlib.suppress(Exception):
            queue = client.queue_id(QUEUE)
            workers = client.call("workers.get_all")["workers"]
            return any(q.get("id") == queue for w in workers for q in w.get("queues") or [])
        return False

    def stop(self) -> None:
        """SIGTERM, and wait for it to unregister and exit; SIGKILL only if it does not within 60 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait_idle(self, task_id: str) -> None:
        """Until the daemon has said the task is over (after its log is flushed), as it does on stdout."""
        deadline = time.monotonic() + 60
        while f"task {task_id} completed" not in self.output(whole=True):
            if time.monotonic() > deadline:
                raise BenchError(f"the daemon did not finish task {task_id} within 60 s:\n{self.output()}")
            time.sleep(POLL)

    def output(self, *, whole: bool = False) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
            return text if whole else text[-4000:]
        except OSError:
            return ""


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-launcher-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def empty_launcher_cache(task_home: Path) -> None:
    """Everything under launcher/cache goes (repository mirrors, envs) except uv's own cache."""
    cache = task_home / "launcher" / "cache"
    if not cache.is_dir():
        return
    for entry in cache.iterdir():
        if entry.name == "uv-cache":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# one run ----------------------------------------------------------------------------------------------
def enqueue(binary: Path, repo: Path, env: Mapping[str, str], cwd: Path) -> tuple[str, float, float]:
    """The task id, clearml-task's wall time, and the wall-clock time when it had exited."""
    argv = [str(binary), "--project", PROJECT, "--name", "bench-run", "--folder", str(repo)]
    argv += ["--script", "train.py", "--queue", QUEUE, "--output", "json"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True)
    finished = time.time()
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"clearml-task exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    try:
        return str(json.loads(done.stdout)["id"]), took, finished
    except (ValueError, KeyError):
        raise BenchError(f"clearml-task printed no task id:\n{done.stdout}{done.stderr}") from None


def log_events(client: Client, task_id: str) -> list[dict[str, Any]]:
    request = {"task": task_id, "batch_size": 5000, "navigate_earlier": False}
    events: list[dict[str, Any]] = client.call("events.get_task_log", request)["events"]
    return events


def status_of(client: Client, task_id: str) -> str:
    return str(client.tasks(id=[task_id], only_fields=["status"])[0]["status"])


def one_run(kind: str, client: Client, daemon: Daemon, binary: Path, repo: Path, env: Mapping[str, str],
            cwd: Path, pause: float) -> Run:  # fmt: skip
    time.sleep(pause)  # the enqueue lands at a random point of the idle daemon's polling cycle
    task_id, took, finished = enqueue(binary, repo, env, cwd)
    deadline = time.monotonic() + TASK_TIMEOUT
    first: dict[str, Any] | None = None
    while first is None:
        first = next((e for e in log_events(client, task_id) if e.get("msg") == MARKER), None)
        if first is not None:
            break
        if status_of(client, task_id) in ("failed", "stopped", "completed", "closed"):
            ended = log_text(client, task_id)
            raise BenchError(f"task {task_id} ended without printing {MARKER!r}:\n{ended}")
        if time.monotonic() > deadline or (daemon.process and daemon.process.poll() is not None):
            raise BenchError(f"no {MARKER!r} from task {task_id}; the daemon says:\n{daemon.output()}")
        time.sleep(POLL)
    seen = time.time() - finished
    while (status := status_of(client, task_id)) != "completed":
        if status in ("failed", "stopped", "closed") or time.monotonic() > deadline:
            raise BenchError(f"task {task_id} is {status}, not completed:\n{log_text(client, task_id)}")
        time.sleep(POLL)
    completed = time.time() - finished
    daemon.wait_idle(task_id)  # its last lines shipped, its per-task server down, polling again
    steps = [
        (int(e["timestamp"]) / 1000 - finished, str(e.get("msg", "")))
        for e in client.task_log(task_id)
        if str(e.get("msg", "")).startswith(STEP_PREFIXES) or e.get("msg") == MARKER
    ]
    task = client.get_task(task_id)
    for key, what in (("started", "the daemon took the task"), ("completed", "the task is completed")):
        if task.get(key):
            stamp = datetime.fromisoformat(str(task[key]).replace("Z", "+00:00")).timestamp()
            steps.append((stamp - finished, f"(server: tasks.{key}) {what}"))
    steps.sort(key=lambda step: step[0])
    latency = int(first["timestamp"]) / 1000 - finished
    return Run(kind, task_id, took, latency, seen, completed, steps)


def log_text(client: Client, task_id: str) -> str:
    return "\n".join(str(e.get("msg", "")) for e in client.task_log(task_id))[-4000:]


# the whole bench ----------------------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> tuple[list[Run], list[Run]]:
    task_bin, launcher_bin = args.venv / "bin" / "clearml-task", args.venv / "bin" / "clearml-launcher"
    for path in (task_bin, launcher_bin):
        if not os.access(path, os.X_OK):
            raise BenchError(f"no executable {path} (see --venv)")
    with temp_dir() as base:
        home, task_home = base / "home", base / "clearml-task-home"
        home.mkdir()
        env = child_env(home, task_home)
        repo = build_repo(base, env)
        client = Client(Session(resolve(env)))
        daemon = Daemon(launcher_bin, env, base / "daemon.log", args.polling_interval)
        try:
            daemon.start(client)
            print(f"priming uv's download cache (one run, not counted) in {task_home} ...", flush=True)
            rng = random.Random(args.seed)

            def pause() -> float:
                return rng.uniform(PAUSE_MIN, PAUSE_MIN + 2 * args.polling_interval)

            one_run("prime", client, daemon, task_bin, repo, env, base, pause())
            cold, warm = [], []
            for i in range(args.runs):
                daemon.stop()
                empty_launcher_cache(task_home)
                daemon.start(client)
                cold.append(one_run("cold", client, daemon, task_bin, repo, env, base, pause()))
                print(f"cold {i + 1}/{args.runs}: {cold[-1].latency_s:.3f} s", flush=True)
            for i in range(args.runs):
                warm.append(one_run("warm", client, daemon, task_bin, repo, env, base, pause()))
                print(f"warm {i + 1}/{args.runs}: {warm[-1].latency_s:.3f} s", flush=True)
            return cold, warm
        finally:
            daemon.stop()


# the report ---------------------------------------------------------------------------------------------
def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def median_run(runs: Sequence[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.latency_s)
    return ordered[(len(ordered) - 1) // 2]


def report(cold: list[Run], warm: list[Run], interval: float) -> str:
    def stats(values: Sequence[float]) -> list[str]:
        return [f"{statistics.median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}"]

    header = ["kind", "runs", "median s", "min s", "max s", "poll saw it, median s", "completed, median s",
              "clearml-task, median s"]  # fmt: skip
    rows = [header]
    for kind, runs in (("cold", cold), ("warm", warm)):
        rows.append([kind, str(len(runs)), *stats([r.latency_s for r in runs]),
                     f"{statistics.median(r.seen_s for r in runs):.3f}",
                     f"{statistics.median(r.completed_s for r in runs):.3f}",
                     f"{statistics.median(r.enqueue_s for r in runs):.3f}"])  # fmt: skip
    warm_median = statistics.median(r.latency_s for r in warm)
    met = "met" if warm_median <= AIM_WARM else "NOT met"
    out = [
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cpus; daemon --polling-interval {interval}",
        "latency = the first line's log stamp - the moment clearml-task exited (enqueue finished)",
        "",
        table(rows),
        "",
        f"aim: warm median <= {AIM_WARM:.1f} s: {warm_median:.3f} s, {met}",
        f"runs (s), cold: {' '.join(f'{r.latency_s:.3f}' for r in cold)}",
        f"runs (s), warm: {' '.join(f'{r.latency_s:.3f}' for r in warm)}",
    ]
    for kind, runs in (("cold", cold), ("warm", warm)):
        run = median_run(runs)
        out += ["", f"the daemon's steps, median {kind} run (task {run.task_id}), seconds after the enqueue:"]
        out += [f"  {offset:+7.3f}  {line}" for offset, line in run.steps]
    return "\n".join(out)


def interrupted(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="cold runs and warm runs, each (default 5)")
    parser.add_argument(
        "--venv", type=Path, default=Path(sys.prefix),
        help="venv with clearml-task and clearml-launcher (default: this interpreter's, %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--polling-interval", type=float, default=0.5, help="the daemon's (default 0.5, its own default)"
    )
    parser.add_argument("--seed", type=int, default=1, help="for the random pauses before the runs")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    # SIGTERM (and SIGINT, even where a background shell ignored it) unwind through the cleanup.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, interrupted)
    try:
        cold, warm = bench(args)
    except BenchError as e:
        print(f"bench/launcher.py: {e}", file=sys.stderr)
        return 1
    print()
    print(report(cold, warm, args.polling_interval))
    return 0


if __name__ == "__main__":
    sys.exit(main())
