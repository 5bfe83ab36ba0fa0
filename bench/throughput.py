"""Tasks per second through one warm daemon: N trivial tasks of one commit, end to end.

    python bench/throughput.py [--tasks 200] [--repeats 3] [--mode http|embedded] [--venv PATH]

1. A tiny git repository in a temp dir (`train.py` prints one line; `requirements.txt` pins six==1.16.0,
   so the task has a real, cached environment), pushed to a bare "origin".
2. `--mode http`: our server over loopback (bench/common.py `server`); `embedded`: ephemeral mode, the
   daemon and this bench sharing the SQLite file. One `clearml-launcher daemon --queue bench-throughput`
   runs at its defaults.
3. The template: clearml-task makes the task (`--skip-task-init --requirements ...`) and enqueues it; that
   first run builds the environment and warms the daemon (not counted).
4. Each repeat clones the template N times (tasks.clone, not counted), then enqueues the N clones one after
   the other while the daemon waits, and waits until all are final. The figure is N / (the last
   `completed` - the first `started`, server times): tasks per second from the first start to the last
   completion. Also: the median of each task's own run (started -> completed), of the gap from one
   task's completion to the next one's start, and the daemon's CPU time per task, its own and its
   children's (git, the task's python), and (`--mode http`) the server's, which the machine's load does not
   inflate as much as wall time.
5. The floor, in the same run: the task's own environment's python running the same `train.py`, spawned N
   times one after the other (new session, output read through pipes, as the daemon runs a task) with no
   daemon, server or git involved: the rate the machine allows before the daemon does anything.

The daemon is stopped (SIGTERM) and the temp dir removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from common import server, table, temp_dir

from clearml_task.api import Client, Session
from clearml_task.config import resolve
from clearml_task.vocabulary import FINAL_STATUSES

AIM = 40.0  # tasks per second
QUEUE = "bench-throughput"
TRAIN_PY = 'print("trivial task")\n'
REQUIREMENTS = "six==1.16.0\n"
TIMEOUT = 600.0
POLL = 0.5  # seconds between looks at the tasks not final yet


class BenchError(Exception):
    pass


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {done.stderr}")


def build_repo(base: Path) -> Path:
    repo = base / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(TRAIN_PY)
    (repo / "requirements.txt").write_text(REQUIREMENTS)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "bench")
    git(base, "init", "--quiet", "--bare", str(base / "origin.git"))
    git(repo, "remote", "add", "origin", str(base / "origin.git"))
    git(repo, "push", "--quiet", "--set-upstream", "origin", "main")
    return repo


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system) of a process itself, and of the children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def server_pid(data_dir: Path) -> int | None:
    """The pid of the `launcher server` process serving `data_dir` (bench/common.py `server`)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"server" in argv and str(data_dir).encode() in argv:
            return int(proc.name)
    return None


def stamp(task: dict[str, Any], key: str) -> float:
    return datetime.fromisoformat(str(task[key]).replace("Z", "+00:00")).timestamp()


def wait_final(
    client: Client, ids: list[str], daemon: subprocess.Popen[bytes], log: Path
) -> list[dict[str, Any]]:
    """The tasks once all are final. The figures come from the server's stamps, so the bench asks as
    little as it can of the server being measured: every POLL seconds, only about the last task enqueued
    (one daemon takes them in queue order) until it is final, then about every task not final yet
    (asking about all of them every 0.1 s took ~16% of its CPU in a profile; about those not final yet,
    every 0.5 s, ~8%)."""
    deadline = time.monotonic() + TIMEOUT
    final: dict[str, dict[str, Any]] = {}
    while True:
        waiting = [task_id for task_id in ids if task_id not in final]
        asked = waiting if ids[-1] in final else [ids[-1]]
        for task in client.tasks(id=asked, only_fields=["id", "status", "started", "completed"]):
            if task["status"] in FINAL_STATUSES:
                final[task["id"]] = task
        if len(final) == len(ids):
            return [final[task_id] for task_id in ids]
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"tasks not final; the daemon says:\n{log.read_text()[-3000:]}")
        time.sleep(POLL)


def floor(home: Path, repo: Path, count: int) -> float:
    """Tasks per second of the bare process: the environment's python running train.py, `count` times in a
    row, each in a new session with its output read through pipes (what the daemon's run must at least
    cost)."""
    pythons = sorted((home / "launcher" / "cache" / "envs").glob("*/bin/python"))
    if not pythons:
        raise BenchError("no environment of the task found in the daemon's cache")
    began = time.perf_counter()
    for _ in range(count):
        child = subprocess.Popen(
            [str(pythons[0]), "-u", "train.py"], cwd=repo, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        child.communicate()
        if child.returncode != 0:
            raise BenchError(f"the bare run of train.py ended with code {child.returncode}")
    return count / (time.perf_counter() - began)


def bench(args: argparse.Namespace) -> list[dict[str, float]]:
    task_bin, launcher_bin = args.venv / "bin" / "clearml-task", args.venv / "bin" / "clearml-launcher"
    results = []
    with ExitStack() as stack:
        base = stack.enter_context(temp_dir("bench-throughput-"))
        repo = build_repo(base)
        dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONDA_PREFIX")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CLEARML_", "TRAINS_", "XDG_")) and k not in dropped}  # fmt: skip
        env |= {"HOME": str(base / "home"), "CLEARML_TASK_HOME": str(base / "task-home"),
                "NO_PROXY": "127.0.0.1,localhost"}  # fmt: skip
        (base / "home").mkdir()
        if args.mode == "http":
            url = stack.enter_context(
                server(base / "server", {**env, "CLEARML_TASK_HOME": str(base / "srv")})
            )
            keys = json.loads((base / "server" / "credentials.json").read_text())
            env |= {"CLEARML_API_HOST": url, "CLEARML_API_ACCESS_KEY": keys["access_key"],
                    "CLEARML_API_SECRET_KEY": keys["secret_key"]}  # fmt: skip
        served = server_pid(base / "server") if args.mode == "http" else None
        client = Client(Session(resolve(env)))
        log = base / "daemon.log"
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [str(launcher_bin), "daemon", "--queue", QUEUE, "--create-queue"], env=env, cwd=base,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

        def stop() -> None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()

        stack.callback(stop)
        argv = [str(task_bin), "--project", "bench", "--name", "trivial", "--folder", str(repo), "--script",
                "train.py", "--skip-task-init", "--requirements", str(repo / "requirements.txt"),
                "--queue", QUEUE, "--output", "json"]  # fmt: skip
        done = subprocess.run(argv, cwd=base, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"clearml-task: {done.stdout}{done.stderr}")
        template = json.loads(done.stdout)["id"]
        ended = wait_final(client, [template], daemon, log)[0]["status"]
        if ended != "completed":
            said = "\n".join(str(e.get("msg")) for e in client.task_log(template))
            raise BenchError(f"the template task ended {ended}:\n{said[-3000:]}")
        queue = client.queue_id(QUEUE)
        for repeat in range(args.repeats):
            ids = [
                client.clone_task(template, new_task_name=f"trivial {repeat}-{i}") for i in range(args.tasks)
            ]
            cpu = cpu_seconds(daemon.pid)
            served_cpu = cpu_seconds(served)[0] if served else 0.0
            for task_id in ids:
                client.enqueue(task_id, queue)
            tasks = wait_final(client, ids, daemon, log)
            cpu = tuple(b - a for a, b in zip(cpu, cpu_seconds(daemon.pid), strict=True))
            served_cpu = cpu_seconds(served)[0] - served_cpu if served else 0.0
            failed = [t["id"] for t in tasks if t["status"] != "completed"]
            if failed:
                raise BenchError(f"{len(failed)} tasks did not complete, e.g. {failed[0]}")
            spans = sorted((stamp(t, "started"), stamp(t, "completed")) for t in tasks)
            first, last = spans[0][0], max(end for _, end in spans)
            gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
            results.append({
                "rate": len(tasks) / (last - first), "seconds": last - first,
                "floor": floor(base / "task-home", repo, len(tasks)),
                "run": statistics.median(end - start for start, end in spans), "gap": statistics.median(gaps),
                "cpu": cpu[0] / len(tasks), "children": cpu[1] / len(tasks),
                "server": served_cpu / len(tasks),
            })  # fmt: skip
            print(f"repeat {repeat + 1}: {results[-1]['rate']:.1f} tasks/s (the bare process: "
                  f"{results[-1]['floor']:.1f})", flush=True)  # fmt: skip
            if args.show_log:
                for event in client.task_log(ids[len(ids) // 2]):
                    print(f"  {int(event['timestamp']) / 1000 - spans[0][0]:8.3f}  {event.get('msg')}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks per repeat (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats (default 3)")
    parser.add_argument("--mode", choices=("http", "embedded"), default="http")
    parser.add_argument("--show-log", action="store_true", help="print the log of one task a repeat")
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix), help="venv with our commands")
    args = parser.parse_args()
    if args.tasks < 2 or args.repeats < 1:
        parser.error("--tasks must be at least 2 and --repeats at least 1")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        results = bench(args)
    except BenchError as e:
        print(f"bench/throughput.py: {e}", file=sys.stderr)
        return 1
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    where = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus (load average {load})"
    print(f"\npython {platform.python_version()} on {where}; {args.mode}, {args.tasks} tasks a repeat")
    rows = [
        [
            "repeat",
            "tasks/s",
            "seconds",
            "run median ms",
            "gap median ms",
            "CPU ms/task: daemon",
            "its children",
            "server",
            "bare process tasks/s",
        ]
    ]
    for i, r in enumerate(results, 1):
        ms = [f"{r[key] * 1000:.0f}" for key in ("run", "gap", "cpu", "children", "server")]
        rows.append([str(i), f"{r['rate']:.1f}", f"{r['seconds']:.2f}", *ms, f"{r['floor']:.1f}"])
    print(table(rows))
    rate = statistics.median(r["rate"] for r in results)
    print(f"aim: >= {AIM:.0f} tasks/s: median {rate:.1f} tasks/s, {'met' if rate >= AIM else 'NOT met'}"
          f" ({rate / AIM:.2f} of the aim)")  # fmt: skip
    bare = statistics.median(r["floor"] for r in results)
    left = 1000 / AIM - 1000 / bare
    print(f"the bare process alone: median {bare:.1f} tasks/s ({1000 / bare:.1f} ms each); "
          f"at {AIM:.0f} tasks/s that leaves {left:.1f} ms a task for the daemon and the server (they take "
          f"{1000 / rate - 1000 / bare:.1f} ms now)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
