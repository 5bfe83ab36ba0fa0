"""clearml-task to first line: how long after `clearml-task --queue` is run does the script's first line of
output exist, with a worker already waiting on the queue? Ours (`clearml-launcher daemon`) and ClearML's
(`clearml-agent daemon`, 3.0.3, in pip mode and in uv mode), measured in the same run.

    python bench/launcher.py [--runs 5] [--agent-runs 3] [--venv PATH] [--agent-venv /tmp/agent-venv]
        [--polling-interval 0.5] [--seed 1] [--peers embedded,http,http-poll,agent-pip,agent-uv]

1. Builds a tiny git repository in a temp dir: `train.py` reads the clock, prints "FIRST LINE", then
   "FIRST LINE AT <that clock>", and exits; `requirements.txt` pins one small pure-Python package
   (six==1.16.0), so there is a real environment to build. It commits, pushes to a bare "origin" (a file
   path) and sets the upstream. Every peer runs the same task, made by our clearml-task with
   `--skip-task-init --requirements REPO/requirements.txt`, so the task carries its requirements (which is
   what lets clearml-agent look up its venv cache) and no Task.init() patch.
2. The peers, one after the other, each with its own queue, HOME and caches:
   - `embedded`: our daemon in ephemeral mode (the embedded server over SQLite, no server process), at its
     defaults: it long-polls (another process's enqueue is seen in the shared file);
   - `http`: our daemon against our server over loopback HTTP (bench/common.py `server`), at its defaults:
     it long-polls (queues.get_next_task with `wait`);
   - `http-poll`: our daemon against a second server of ours started with `--max-wait 0`, which does not
     advertise the long-poll: the daemon polls it every 1 s (its default for a remote server), as it polls
     ClearML's server;
   - `agent-pip` and `agent-uv`: `clearml-agent daemon --queue Q --create-queue` against the same server, at
     its default polling interval, 5 s, which is also its minimum. Its HOME holds a clearml.conf with the api
     section, `agent.package_manager.type` (pip, or uv with `uv_replace_pip: true`) and
     `agent.venvs_cache.path`. In uv mode CLEARML_BOOTSTRAP_UV_EXEC names the uv binary our daemon uses.
   The agent's venv (--agent-venv) is made once when missing (`python -m venv` + `pip install
   clearml-agent==3.0.3`).
3. One run: a random pause (0.2 s + uniform(0, 2 x the polling interval), seeded, so that the enqueue lands at
   a random point of the idle worker's polling cycle), then `clearml-task ... --queue Q --output json`. The
   enqueue is finished when that process has exited (wall clock taken right after it is reaped). The bench
   polls the task's status until it is final and waits for the worker to say it is done with it, then reads
   the task's log. Per run it records, from the enqueue:
   - "first line": the stamp of the log event that carries the "FIRST LINE" line (stamped by the worker
     when it read the line from the script's output);
   - "spawn": when clearml-task was started (the enqueue-finished time minus its wall time), so that
     spawn -> first line is the whole wait a user sees, clearml-task's own run included;
   - "taken": the task's `started` time on the server (set when the worker took the task, so that
     first line - taken leaves out the wait for the worker's poll);
   - "printed": the script's own clock when it printed the line (so that printed - taken leaves out the log
     shipping as well);
   - the task's `completed` time on the server.
4. Per peer, one priming run (not counted: it fills the download caches), then cold runs and warm runs
   (--runs each for ours, --agent-runs each for clearml-agent):
   - cold: before each run the worker is stopped (SIGTERM), its caches are emptied except the download
     caches, and it is started again. Ours: $CLEARML_TASK_HOME/launcher/cache goes except `uv-cache`. The
     agent: ~/.clearml/vcs-cache, venvs-cache and venvs-builds go; ~/.cache/pip and
     ~/.clearml/pip-download-cache (uv's cache in uv mode) stay;
   - warm: the same commit and requirements again on the same worker, which has already run the task.
     If the agent's first warm run fails (clearml-agent 3.0.3 in uv mode cannot run a task in a venv it
     kept: it runs `None -u train.py`), the bench says so and removes ~/.clearml/venvs-builds before each
     further warm run, the warmest state in which it works.
5. Prints, per peer and kind, the medians (and min/max) of spawn -> first line, and the medians of
   enqueue -> first line, taken -> first line, taken -> printed and enqueue -> taken; the ratios
   clearml-agent / ours of the medians; the aims (warm median spawn -> first line <= 0.4 s over HTTP, and at
   least 15x faster than clearml-agent, on that figure); and the timeline of the median cold and warm run of
   each peer.

Workers are stopped with SIGTERM (their process group is killed if anything is left) and the temp dirs are
removed at the end, also on failure, SIGTERM or Ctrl-C. Children get HOME=<empty temp dir> and no
CLEARML_*, XDG_* or Python-path variables. Nothing but this machine is contacted, except the package
registry (the agent's one-time install, and the downloads of the priming runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from common import server, table, temp_dir

from clearml_task.api import Client, Session
from clearml_task.config import resolve
from clearml_task.vocabulary import FINAL_STATUSES

PROJECT = "bench"
MARKER = "FIRST LINE"
PRINTED = re.compile(rf"^{MARKER} AT (\d+(?:\.\d+)?)$")
AIM_WARM = 0.4  # seconds, warm clearml-task spawn -> first line, over HTTP
AIM_RATIO = 15.0  # clearml-agent / ours, on that figure
POLL = 0.05  # seconds between looks at the task's status
PAUSE_MIN = 0.2  # seconds; each run first waits PAUSE_MIN + uniform(0, 2 x the polling interval)
TASK_TIMEOUT = 300.0
START_TIMEOUT = 120.0
STEP_PREFIXES = ("workspace:", "environment:", "launcher:")
REMOTE_INTERVAL = 1.0  # our daemon's default for a remote server (launcher/daemon.py)
AGENT_INTERVAL = 5.0  # clearml-agent's default and minimum (`daemon --polling-interval`)
AGENT_VERSION = "3.0.3"
AGENT_PIN = f"clearml-agent=={AGENT_VERSION}"
PEERS = ("embedded", "http", "http-poll", "agent-pip", "agent-uv")
METRICS = {  # name -> what it takes from a run
    "spawn->first": attrgetter("spawn_s"),
    "enqueue->first": attrgetter("latency_s"),
    "taken->first": attrgetter("taken_s"),
    "taken->printed": attrgetter("work_s"),
}

TRAIN_PY = f'import time\n\nt = time.time()\nprint("{MARKER}", flush=True)\nprint(f"{MARKER} AT {{t:.3f}}")\n'
REQUIREMENTS = "six==1.16.0\n"


class BenchError(Exception):
    """Something the benchmark cannot go on with; the message says what (and shows the output involved)."""


class TaskFailed(BenchError):
    """The task ended without printing the marker; `log` is its log."""

    def __init__(self, task_id: str, status: str, log: str) -> None:
        super().__init__(f"task {task_id} ended {status} without printing {MARKER!r}:\n{log[-4000:]}")
        self.task_id, self.status, self.log = task_id, status, log


@dataclass
class Run:
    kind: str
    task_id: str
    enqueue_s: float  # clearml-task's own wall time, spawn to reap
    latency_s: float  # log stamp of the first line - enqueue finished
    started_s: float  # tasks.started on the server - enqueue finished
    printed_s: float  # the script's clock when it printed the line - enqueue finished
    completed_s: float  # tasks.completed on the server - enqueue finished
    steps: list[tuple[float, str]] = field(default_factory=list)  # (seconds after enqueue, line)

    @property
    def spawn_s(self) -> float:  # clearml-task started -> first line
        return self.enqueue_s + self.latency_s

    @property
    def taken_s(self) -> float:  # taken -> first line
        return self.latency_s - self.started_s

    @property
    def work_s(self) -> float:  # taken -> printed
        return self.printed_s - self.started_s


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


# environments -----------------------------------------------------------------------------------------
def base_env(home: Path) -> dict[str, str]:
    """Ours minus CLEARML_*, XDG_* and Python-path variables; an empty HOME; loopback never proxied."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONDA_PREFIX")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLEARML_", "TRAINS_", "XDG_")) and key not in dropped
    }
    home.mkdir(parents=True, exist_ok=True)
    return env | {"HOME": str(home), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def ours_env(home: Path, task_home: Path, url: str | None = None, keys: Mapping[str, str] | None = None
             ) -> dict[str, str]:  # fmt: skip
    """For our daemon and clearml-task: embedded (the SQLite file under task_home) or our server at `url`."""
    env = base_env(home) | {"CLEARML_TASK_HOME": str(task_home)}
    if url and keys:
        env |= {
            "CLEARML_API_HOST": url, "CLEARML_WEB_HOST": url, "CLEARML_FILES_HOST": url,
            "CLEARML_API_ACCESS_KEY": keys["access_key"], "CLEARML_API_SECRET_KEY": keys["secret_key"],
        }  # fmt: skip
    return env


def agent_conf(url: str, keys: Mapping[str, str], manager: str, *, shown: bool = False) -> str:
    """The agent's clearml.conf: where the server is, the package manager, and its venv cache on (`shown`:
    without the keys)."""
    access, secret = ("<access key>", "<secret key>") if shown else (keys["access_key"], keys["secret_key"])
    uv = "\n        uv_replace_pip: true" if manager == "uv" else ""
    return f"""api {{
    api_server: {url}
    web_server: {url}
    files_server: {url}
    credentials {{
        access_key: "{access}"
        secret_key: "{secret}"
    }}
}}
agent {{
    package_manager {{
        type: {manager}{uv}
    }}
    venvs_cache {{
        path: ~/.clearml/venvs-cache
    }}
}}
"""


def install_agent(venv: Path) -> None:
    """ClearML's clearml-agent in a venv of its own (a bench-only peer, never a dependency of ours)."""
    print(f"installing {AGENT_PIN} into {venv} (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", AGENT_PIN], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        shutil.rmtree(venv, ignore_errors=True)
        raise BenchError(f"could not install {AGENT_PIN} into {venv}: {e}") from None


def output_of(argv: Sequence[str], what: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"{what}: {' '.join(argv)} exited with {done.returncode}:\n{done.stderr}")
    return done.stdout.strip()


# the workers ----------------------------------------------------------------------------------------------
class Worker:
    """A worker daemon as a subprocess in a session of its own, its output in a file (shown on failures)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_file: Path, queue: str) -> None:
        self.argv, self.env, self.log_file, self.queue = list(argv), dict(env), log_file, queue
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, client: Client) -> None:
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=self.log_file.parent, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.argv[0]} exited with {self.process.returncode}:\n{self.output()}")
            if self.ready(client):
                return
            time.sleep(0.05)
        raise BenchError(f"{self.argv[0]} was not polling {self.queue} within {START_TIMEOUT:.0f} s:\n"
                         f"{self.output()}")  # fmt: skip

    def ready(self, client: Client) -> bool:
        """Its worker is registered for the queue."""
        with contextlib.suppress(Exception):
            queue = client.queue_id(self.queue)
            workers = client.call("workers.get_all")["workers"]
            return any(q.get("id") == queue for w in workers for q in w.get("queues") or [])
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, and wait for it to unregister and exit (SIGKILL after 60 s); then kill what is left of its
        process group (its session's processes: task processes it may have left behind)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def wait_idle(self, task_id: str) -> None:
        """Until the worker has said it is done with the task (its log shipped, back to polling)."""
        deadline = time.monotonic() + 60
        while not self.done_with(task_id, self.output(whole=True)):
            if time.monotonic() > deadline:
                raise BenchError(f"the worker did not finish task {task_id} within 60 s:\n{self.output()}")
            time.sleep(POLL)

    def done_with(self, task_id: str, output: str) -> bool:
        raise NotImplementedError

    def reset(self) -> None:
        """Empty the caches a cold run must not have (not the download caches)."""
        raise NotImplementedError

    def before_warm(self) -> None:
        """Called before each warm run."""

    def step(self, event: Mapping[str, Any]) -> str | None:
        """What a log event shows in the timeline, or None."""
        raise NotImplementedError

    def output(self, *, whole: bool = False) -> str:
        text = read(self.log_file)
        return text if whole else text[-4000:]


def read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class Ours(Worker):
    """`clearml-launcher daemon`."""

    def __init__(self, binary: Path, env: Mapping[str, str], log_file: Path, queue: str,
                 interval: float | None) -> None:  # fmt: skip
        argv = [str(binary), "daemon", "--queue", queue, "--create-queue"]
        if interval is not None:
            argv += ["--polling-interval", str(interval)]
        super().__init__(argv, env, log_file, queue)
        self.task_home = Path(env["CLEARML_TASK_HOME"])

    def done_with(self, task_id: str, output: str) -> bool:
        return re.search(rf"task {task_id} (completed|failed|stopped)", output) is not None

    def reset(self) -> None:
        """Everything under launcher/cache goes (repository mirrors, envs) except uv's own cache."""
        cache = self.task_home / "launcher" / "cache"
        if not cache.is_dir():
            return
        for entry in cache.iterdir():
            if entry.name == "uv-cache":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def step(self, event: Mapping[str, Any]) -> str | None:
        msg = str(event.get("msg", ""))
        return msg if msg.startswith(STEP_PREFIXES) or msg == MARKER else None


class Agent(Worker):
    """`clearml-agent daemon`; it runs each task in a child `clearml-agent execute` and writes its output to
    a file under $TMPDIR, whose name it prints."""

    CACHES = ("vcs-cache", "venvs-cache", "venvs-builds")
    HITS = {"::: Using Cached environment": "venv cache hit", "Using cached repository": "vcs cache hit"}

    def __init__(self, binary: Path, env: Mapping[str, str], log_file: Path, queue: str) -> None:
        super().__init__([str(binary), "daemon", "--queue", queue, "--create-queue"], env, log_file, queue)
        self.clearml_dir = Path(env["HOME"]) / ".clearml"
        self.rebuild_venv = False  # set when it cannot run a task in the venv it kept

    def output(self, *, whole: bool = False) -> str:
        text = read(self.log_file)
        found = re.findall(r"writing stdout/stderr to (\S+)", text)
        if found:  # the latest start's
            text += read(Path(found[-1]))
        return text if whole else text[-4000:]

    def done_with(self, task_id: str, output: str) -> bool:
        return f"DONE: Running task '{task_id}'" in output

    def reset(self) -> None:
        for name in self.CACHES:
            shutil.rmtree(self.clearml_dir / name, ignore_errors=True)

    def before_warm(self) -> None:
        if self.rebuild_venv:
            shutil.rmtree(self.clearml_dir / "venvs-builds", ignore_errors=True)

    def step(self, event: Mapping[str, Any]) -> str | None:
        msg = str(event.get("msg", ""))
        lines = msg.splitlines() or [""]
        text = lines[0] if len(lines[0]) <= 90 else lines[0][:87] + "..."
        if len(lines) > 1:
            notes = [f"{len(lines) - 1} more lines", *(what for hit, what in self.HITS.items() if hit in msg)]
            if has_marker(event):
                notes.append(f"the {MARKER} among them")
            text += f"  [{', '.join(notes)}]"
        return f"(agent log event) {text}"


# one run ----------------------------------------------------------------------------------------------
@dataclass
class Peer:
    key: str
    label: str
    worker: Worker
    client: Client
    env: dict[str, str]  # clearml-task's
    runs: int
    interval: float
    cold: list[Run] = field(default_factory=list)
    warm: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def enqueue(binary: Path, repo: Path, peer: Peer, cwd: Path) -> tuple[str, float, float]:
    """The task id, clearml-task's wall time, and the wall-clock time when it had exited."""
    argv = [str(binary), "--project", PROJECT, "--name", "bench-run", "--folder", str(repo)]
    argv += ["--script", "train.py", "--skip-task-init", "--requirements", str(repo / "requirements.txt")]
    argv += ["--queue", peer.worker.queue, "--output", "json"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=peer.env, capture_output=True, text=True)
    finished = time.time()
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"clearml-task exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    try:
        return str(json.loads(done.stdout)["id"]), took, finished
    except (ValueError, KeyError):
        raise BenchError(f"clearml-task printed no task id:\n{done.stdout}{done.stderr}") from None


def has_marker(event: Mapping[str, Any]) -> bool:
    return MARKER in (line.rstrip() for line in str(event.get("msg", "")).splitlines())


def stamp_of(task: Mapping[str, Any], key: str) -> float | None:
    value = task.get(key)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() if value else None


def one_run(kind: str, peer: Peer, binary: Path, repo: Path, cwd: Path, pause: float) -> Run:
    client, worker = peer.client, peer.worker
    time.sleep(pause)  # the enqueue lands at a random point of the idle worker's polling cycle
    task_id, took, finished = enqueue(binary, repo, peer, cwd)
    deadline = time.monotonic() + TASK_TIMEOUT
    while (
        status := str(client.tasks(id=[task_id], only_fields=["status"])[0]["status"])
    ) not in FINAL_STATUSES:
        if time.monotonic() > deadline or not worker.alive():
            raise BenchError(f"task {task_id} is still {status}; the worker says:\n{worker.output()}")
        time.sleep(POLL)
    worker.wait_idle(task_id)  # its last lines shipped, back to polling
    events = client.task_log(task_id)
    give_up = time.monotonic() + 10  # a late flush of the log, at most
    while status == "completed" and not any(map(has_marker, events)) and time.monotonic() < give_up:
        time.sleep(POLL)
        events = client.task_log(task_id)
    first = min((e for e in events if has_marker(e)), key=lambda e: int(e["timestamp"]), default=None)
    log = "\n".join(str(e.get("msg", "")) for e in events)
    if first is None or status != "completed":
        raise TaskFailed(task_id, status, log)
    printed = next((float(m[1]) for line in log.splitlines() if (m := PRINTED.match(line.rstrip()))), None)
    task = client.get_task(task_id)
    started, completed = stamp_of(task, "started"), stamp_of(task, "completed")
    if printed is None or started is None or completed is None:
        raise BenchError(f"task {task_id}: no printed time in its log, or no started/completed time:\n{log}")
    steps = [(int(e["timestamp"]) / 1000 - finished, line) for e in events if (line := worker.step(e))]
    steps += [
        (started - finished, "(server: tasks.started) the worker took the task"),
        (printed - finished, f"(the script's clock) it printed {MARKER}"),
        (completed - finished, "(server: tasks.completed) the task is completed"),
    ]
    steps.sort(key=lambda step: step[0])
    latency = int(first["timestamp"]) / 1000 - finished
    return Run(
        kind, task_id, took, latency, started - finished, printed - finished, completed - finished, steps
    )


def failure_line(log: str) -> str:
    """The command the agent ran, and how it ended, from a failed task's log."""
    ran = next((line for line in log.splitlines() if re.match(r"^\[[^\]]*\]\$ ", line)), None)
    ended = next((line for line in log.splitlines() if "exit status" in line or "exit code" in line), None)
    return "; ".join(part for part in (ran and f"it ran `{ran}`", ended) if part) or log.strip()[-300:]


def measure(peer: Peer, binary: Path, repo: Path, cwd: Path, seed: int) -> None:
    rng = random.Random(seed)

    def run(kind: str) -> Run:
        return one_run(kind, peer, binary, repo, cwd, rng.uniform(PAUSE_MIN, PAUSE_MIN + 2 * peer.interval))

    worker = peer.worker
    try:
        worker.start(peer.client)
        print(f"{peer.label}: priming run (not counted) ...", flush=True)
        run("prime")
        for i in range(peer.runs):
            worker.stop()
            worker.reset()
            worker.start(peer.client)
            peer.cold.append(run("cold"))
            print(f"{peer.label}: cold {i + 1}/{peer.runs}: {peer.cold[-1].spawn_s:.3f} s", flush=True)
        for i in range(peer.runs):
            worker.before_warm()
            try:
                peer.warm.append(run("warm"))
            except TaskFailed as e:
                if not isinstance(worker, Agent) or worker.rebuild_venv:
                    raise
                note = (
                    f"the first warm run, in the venv the agent kept, failed (task {e.task_id} {e.status}: "
                    f"{failure_line(e.log)}); so each further warm run starts without "
                    "~/.clearml/venvs-builds (its vcs cache and download cache stay)"
                )
                peer.notes.append(note)
                print(f"{peer.label}: {note}", flush=True)
                worker.rebuild_venv = True
                worker.before_warm()
                peer.warm.append(run("warm"))
            print(f"{peer.label}: warm {i + 1}/{peer.runs}: {peer.warm[-1].spawn_s:.3f} s", flush=True)
    finally:
        worker.stop()


# the whole bench ----------------------------------------------------------------------------------------
@dataclass
class Setup:
    agent_version: str = ""
    uv: str = ""
    uv_version: str = ""
    confs: dict[str, str] = field(default_factory=dict)  # agent peer -> its clearml.conf, secret elided


def bench(args: argparse.Namespace, setup: Setup) -> list[Peer]:
    task_bin, launcher_bin = args.venv / "bin" / "clearml-task", args.venv / "bin" / "clearml-launcher"
    for path in (task_bin, launcher_bin):
        if not os.access(path, os.X_OK):
            raise BenchError(f"no executable {path} (see --venv)")
    agents = [key for key in args.peers if key.startswith("agent-")]
    agent_bin = args.agent_venv / "bin" / "clearml-agent"
    if agents:
        if not agent_bin.exists():
            install_agent(args.agent_venv)
        agent_python = str(args.agent_venv / "bin" / "python")
        script = "from importlib.metadata import version; print(version('clearml-agent'))"
        setup.agent_version = output_of([agent_python, "-c", script], "clearml-agent's version")
        if setup.agent_version != AGENT_VERSION:
            raise BenchError(
                f"{args.agent_venv} has clearml-agent {setup.agent_version}, not {AGENT_VERSION}"
            )
    setup.uv = output_of([str(args.venv / "bin" / "python"), "-c", "import uv; print(uv.find_uv_bin())"],
                         "the launcher's uv")  # fmt: skip
    setup.uv_version = output_of([setup.uv, "--version"], "uv --version").split()[1]
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(temp_dir("bench-launcher-"))
        repo = build_repo(base, base_env(base / "git-home"))
        url, keys = "", {}
        if set(args.peers) - {"embedded"}:
            server_env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
            server_env["CLEARML_TASK_HOME"] = str(base / "server-home")
            url = stack.enter_context(server(base / "server", server_env))
            keys = json.loads((base / "server" / "credentials.json").read_text())
        poll_url, poll_keys = "", {}
        if "http-poll" in args.peers:  # a server that does not advertise the long-poll, as ClearML's
            server_env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
            server_env["CLEARML_TASK_HOME"] = str(base / "poll-server-home")
            poll_url = stack.enter_context(server(base / "poll-server", server_env, ("--max-wait", "0")))
            poll_keys = json.loads((base / "poll-server" / "credentials.json").read_text())
        peers = []
        for key in args.peers:
            where = base / key
            where.mkdir()
            if key.startswith("agent-"):
                manager = key.removeprefix("agent-")
                env = base_env(where / "home") | {"TMPDIR": str(where / "tmp")}
                (where / "tmp").mkdir()
                if manager == "uv":
                    env["CLEARML_BOOTSTRAP_UV_EXEC"] = setup.uv
                (where / "home" / "clearml.conf").write_text(agent_conf(url, keys, manager))
                setup.confs[key] = agent_conf(url, keys, manager, shown=True)
                worker: Worker = Agent(agent_bin, env, where / "agent.log", f"bench-{key}")
                client_env = ours_env(where / "enqueue-home", where / "enqueue-task-home", url, keys)
                label = f"clearml-agent {manager}, poll {AGENT_INTERVAL:g} s"
                runs, interval = args.agent_runs, AGENT_INTERVAL
            else:
                interval = args.polling_interval if key != "http-poll" else REMOTE_INTERVAL
                remote = {"embedded": (None, None), "http": (url, keys), "http-poll": (poll_url, poll_keys)}[
                    key
                ]
                client_env = ours_env(where / "home", where / "task-home", *remote)
                worker = Ours(launcher_bin, client_env, where / "daemon.log", f"bench-{key}", None)
                label = {"embedded": "ours, embedded, long-poll", "http": "ours, HTTP, long-poll",
                         "http-poll": f"ours, HTTP, poll {REMOTE_INTERVAL:g} s"}[key]  # fmt: skip
                runs = args.runs
            client = Client(Session(resolve(client_env)))
            peers.append(Peer(key, label, worker, client, client_env, runs, interval))
        for peer in peers:
            measure(peer, task_bin, repo, base, args.seed)
        return peers


# the report ---------------------------------------------------------------------------------------------
def median_run(runs: Sequence[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.spawn_s)
    return ordered[(len(ordered) - 1) // 2]


def med(runs: Sequence[Run], value: Callable[[Run], float]) -> float:
    return statistics.median(value(r) for r in runs)


def report(peers: list[Peer], setup: Setup) -> str:
    header = ["peer", "kind", "runs", "spawn->first median s", "min s", "max s", "enqueue->first median s",
              "taken->first median s", "taken->printed median s", "enqueue->taken median s",
              "completed median s", "clearml-task median s"]  # fmt: skip
    rows = [header]
    for peer in peers:
        for kind, runs in (("cold", peer.cold), ("warm", peer.warm)):
            lat = [r.spawn_s for r in runs]
            names = ("latency_s", "taken_s", "work_s", "started_s", "completed_s", "enqueue_s")
            medians = [med(runs, attrgetter(name)) for name in names]
            values = (statistics.median(lat), min(lat), max(lat), *medians)
            rows.append([peer.label, kind, str(len(runs)), *(f"{v:.3f}" for v in values)])
    agent = f"clearml-agent {setup.agent_version}; " if setup.agent_version else ""
    out = [
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cpus (load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}); "
        f"{agent}uv {setup.uv_version}",
        "spawn->first = the log stamp of the first line - when clearml-task was started (its run included)",
        "enqueue->first = the log stamp of the first line - when clearml-task exited (enqueue finished)",
        "taken->first = the log stamp of the first line - tasks.started (the worker took the task)",
        "taken->printed = the script's own clock when it printed the first line - tasks.started",
        "",
        table(rows),
    ]
    ours = [p for p in peers if p.key in ("http", "http-poll")]
    agents = [p for p in peers if p.key.startswith("agent-")]
    if ours and agents:
        rows = [["clearml-agent / ours, ratio of the medians", "kind", *METRICS]]
        for peer in agents:
            for o in ours:
                for kind in ("cold", "warm"):
                    theirs, mine = getattr(peer, kind), getattr(o, kind)
                    ratios = (med(theirs, m) / med(mine, m) for m in METRICS.values())
                    rows.append([f"{peer.label} / {o.label}", kind, *(f"{r:.1f}x" for r in ratios)])
        out += ["", table(rows)]
    latency = METRICS["spawn->first"]
    out += ["", f"aim: warm median spawn->first <= {AIM_WARM:.1f} s over HTTP (ours at its defaults)"]
    for peer in peers:
        if not peer.key.startswith("agent-"):
            value = med(peer.warm, latency)
            out.append(f"  {peer.label}: {value:.3f} s, {'met' if value <= AIM_WARM else 'NOT met'}")
    if ours and agents:
        out.append(f"aim: at least {AIM_RATIO:.0f}x faster than clearml-agent (warm medians, spawn->first)")
        for peer in agents:
            for o in ours:
                ratio = med(peer.warm, latency) / med(o.warm, latency)
                met = "met" if ratio >= AIM_RATIO else "NOT met"
                out.append(f"  {peer.label} / {o.label}: {ratio:.1f}x, {met}")
    for peer in peers:
        for note in peer.notes:
            out += ["", f"note, {peer.label}: {note}"]
    for key, conf in setup.confs.items():
        out += ["", f"{key}: ~/clearml.conf", *(f"  {line}" for line in conf.splitlines())]
    for peer in peers:
        out += ["", f"runs (s), {peer.label}:"]
        for kind, runs in (("cold", peer.cold), ("warm", peer.warm)):
            out.append(f"  {kind} spawn->first:   {' '.join(f'{r.spawn_s:.3f}' for r in runs)}")
            out.append(f"  {kind} enqueue->first: {' '.join(f'{r.latency_s:.3f}' for r in runs)}")
            out.append(f"  {kind} taken->first:   {' '.join(f'{r.taken_s:.3f}' for r in runs)}")
    for peer in peers:
        for kind, runs in (("cold", peer.cold), ("warm", peer.warm)):
            run = median_run(runs)
            out += ["", f"{peer.label}, median {kind} run (task {run.task_id}), seconds after the enqueue:"]
            out += [f"  {offset:+7.3f}  {line}" for offset, line in run.steps]
    return "\n".join(out)


def interrupted(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def peer_list(text: str) -> list[str]:
    keys = [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in PEERS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"peers are a comma-separated subset of {','.join(PEERS)}")
    return [key for key in PEERS if key in keys]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="cold and warm runs of ours, each (default 5)")
    parser.add_argument(
        "--agent-runs", type=int, default=3, help="cold and warm runs of clearml-agent, each (default 3)"
    )
    parser.add_argument(
        "--venv", type=Path, default=Path(sys.prefix),
        help="venv with clearml-task and clearml-launcher (default: this interpreter's, %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--agent-venv", type=Path, default=Path("/tmp/agent-venv"),
        help=f"venv with {AGENT_PIN}, made when missing (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--polling-interval", type=float, default=0.5,
        help="the pause before each run of ours is 0.2 s + uniform(0, 2 x this) (default 0.5)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="for the random pauses before the runs")
    parser.add_argument(
        "--peers", type=peer_list, default=list(PEERS), help=f"a subset of {','.join(PEERS)} (default: all)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.agent_runs < 1:
        parser.error("--runs and --agent-runs must be at least 1")
    # SIGTERM (and SIGINT, even where a background shell ignored it) unwind through the cleanup.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, interrupted)
    setup = Setup()
    try:
        peers = bench(args, setup)
    except BenchError as e:
        print(f"bench/launcher.py: {e}", file=sys.stderr)
        return 1
    print()
    print(report(peers, setup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
