"""Log throughput through a daemon, and how soon a dead daemon's task is marked.

    python bench/faults.py [--flood 20] [--watchdog 10]

1. flood: a task prints numbered lines as fast as it can for --flood seconds, run by our daemon against our
   server (loopback HTTP); reports lines printed, stored, lost and doubled, lines/s printed and delivered.
2. death: a daemon runs a task that prints a line every 0.2 s and is killed with SIGKILL; reports the
   seconds until the server's watchdog (--non-responsive-timeout --watchdog) stops the task, and the seconds
   until a daemon restarted with the same id fails it ("the worker was restarted while it ran")."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import ROOT, server, table, temp_dir

from clearml_task.api import Client, Session
from clearml_task.config import ServerConfig
from clearml_task.request import Request
from clearml_task.submit import prepare, submit

JOBS = ROOT / "fixtures" / "repos" / "jobs"


def repo(base: Path, env: dict[str, str]) -> Path:
    work, origin = base / "jobs", base / "origin.git"
    shutil.copytree(JOBS, work)
    steps = [
        (["init", "-q", "-b", "main"], work),
        (["add", "-A"], work),
        (["commit", "-qm", "jobs"], work),
        (["init", "-q", "--bare", str(origin)], base),
        (["remote", "add", "origin", str(origin)], work),
        (["push", "-q", "-u", "origin", "main"], work),
    ]
    for argv, cwd in steps:
        subprocess.run(["git", *argv], cwd=cwd, env=env, check=True, capture_output=True)
    return work


def task(client: Client, folder: Path, script: str, args: list[str], queue: str) -> str:
    request = Request(project="bench", name=f"bench {script}", folder=str(folder), script=script, args=args,
                      queue=queue, skip_task_init=True, skip_python_env_install=True)  # fmt: skip
    return submit(request, prepare(request), client).task_id


def daemon(env: dict[str, str], queue: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "launcher", "daemon", "--queue", queue,
                                 "--polling-interval", "0.2", "--grace", "2"], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=ROOT)  # fmt: skip


def wait(predicate: object, timeout: float, interval: float = 0.1) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s")


def status(client: Client, task_id: str) -> str:
    return str(client.get_task(task_id)["status"])


def flood(client: Client, env: dict[str, str], folder: Path, base: Path, seconds: float) -> list[str]:
    queue = client.queue_id("flood", create=True)
    process = daemon(env, queue, base / "daemon-flood.log")
    try:
        task_id = task(client, folder, "chatty.py", [f"seconds={seconds}"], queue)
        wait(lambda: status(client, task_id) in ("completed", "failed", "stopped"), seconds + 600, 0.5)
    finally:
        process.terminate()
        process.wait(60)
    found = client.get_task(task_id)
    lines = [str(e["msg"]) for e in client.task_log(task_id)]
    printed = next(int(m[1]) for line in lines if (m := re.fullmatch(r"printed (\d+) lines", line)))
    numbers = [int(line[5:]) for line in lines if re.fullmatch(r"line \d{7}", line)]
    counts = Counter(numbers)
    lost = sum(1 for n in range(printed) if n not in counts)
    doubled = sum(c - 1 for c in counts.values() if c > 1)
    in_order = numbers == sorted(numbers)
    from datetime import datetime

    took = (
        datetime.fromisoformat(found["completed"]) - datetime.fromisoformat(found["started"])
    ).total_seconds()
    return [found["status"], f"{printed:,}", f"{len(numbers):,}", str(lost), str(doubled), str(in_order),
            f"{printed / seconds:,.0f}", f"{len(numbers) / took:,.0f}"]  # fmt: skip


def death(client: Client, env: dict[str, str], folder: Path, base: Path, restart: bool) -> float:
    queue = client.queue_id(f"death-{restart}", create=True)
    process = daemon(env, queue, base / f"daemon-death-{restart}.log")
    task_id = task(client, folder, "chatty.py", ["lines=100000", "interval=0.2"], queue)
    wait(lambda: len(client.task_log(task_id)) > 10, 300)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = time.monotonic()
    again = daemon(env, queue, base / f"daemon-death-{restart}.log") if restart else None
    try:
        wait(lambda: status(client, task_id) != "in_progress", 3600, 0.1)
        return time.monotonic() - killed
    finally:
        if again is not None:
            again.terminate()
            again.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=float, default=20.0, help="seconds of output (default 20)")
    parser.add_argument("--watchdog", type=float, default=10.0, help="the server's timeout (default 10)")
    args = parser.parse_args()
    with temp_dir("bench-faults-") as base:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
        env |= {"HOME": str(base), "CLEARML_TASK_HOME": str(base / "home"),
                "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
                "CLEARML_TASK_NON_RESPONSIVE_TIMEOUT": str(args.watchdog)}  # fmt: skip
        folder = repo(base, env)
        with server(base / "server", env) as url:
            keys = json.loads((base / "server" / "credentials.json").read_text())
            env |= {"CLEARML_API_HOST": url, "CLEARML_API_ACCESS_KEY": keys["access_key"],
                    "CLEARML_API_SECRET_KEY": keys["secret_key"]}  # fmt: skip
            os.environ.update(env)  # clearml-task's own code reads them (submit captures the repository)
            config = ServerConfig(url, None, None, keys["access_key"], keys["secret_key"], "bench", base)
            client = Client(Session(config))
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; flood {args.flood:g}s, "
                  f"watchdog {args.watchdog:g}s")  # fmt: skip
            header = [
                "status",
                "printed",
                "stored",
                "lost",
                "doubled",
                "in order",
                "printed/s",
                "delivered/s",
            ]
            print(table([header, flood(client, env, folder, base, args.flood)]))
            watched = death(client, env, folder, base, restart=False)
            restarted = death(client, env, folder, base, restart=True)
            print(table([["daemon killed (SIGKILL)", "task marked after (s)"],
                         [f"left dead (watchdog {args.watchdog:g}s)", f"{watched:.1f}"],
                         ["restarted at once", f"{restarted:.1f}"]]))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
