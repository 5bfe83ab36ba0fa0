"""A task that uses the clearml SDK, run by our launcher: how long from the process's start to its first line,
and from its last line to its exit, with the SDK reporting from a thread (the launcher's default) and from a
subprocess (ClearML's Linux default, `--sdk-report-subprocess`), in the same run.

    python bench/sdk_task.py [--runs 5]

1. A git repository in a temp dir with `train.py`: argparse, three report_scalar calls through the task's
   logger, a print. clearml-task injects Task.init() and records `clearml` as the task's requirement, so the
   launcher's environment (built once, in the warm-up) has the clearml SDK (from the package registry).
2. Each run creates a task with our clearml-task and runs it with `clearml-launcher execute --id` on the
   embedded default (the launcher serves it on loopback while the task runs); the modes alternate run by run
   after one warm-up each.
3. From the task's log (the launcher stamps each line as it reads it): "running" → the script's first line
   (start-up: interpreter, SDK import, Task.init), the script's last line → "the process exited" (shutdown),
   and the wall time of `clearml-launcher execute`. Every run must end completed with its scalars stored.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, temp_dir

SCRIPT = """import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()
print("first line")
from clearml import Task

task = Task.current_task()
for epoch in range(args.epochs):
    task.get_logger().report_scalar("loss", "train", value=1.0 / (epoch + 1), iteration=epoch)
print("last line")
"""
MODES = {"thread (default)": [], "subprocess (--sdk-report-subprocess)": ["--sdk-report-subprocess"]}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args], cwd=repo,
                   check=True, capture_output=True)  # fmt: skip


def make_repo(tmp: Path) -> Path:
    origin, repo = tmp / "origin.git", tmp / "repo"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    repo.mkdir()
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "bench")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "-u", "origin", "main")
    return repo


def create(repo: Path, env: dict[str, str]) -> str:
    argv = [sys.executable, "-m", "clearml_task", "--project", "bench", "--name", "sdk task",
            "--folder", str(repo), "--script", "train.py", "--output", "json"]  # fmt: skip
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return str(json.loads(done.stdout)["id"])


def run_once(repo: Path, env: dict[str, str], flags: list[str]) -> dict[str, float]:
    task_id = create(repo, env)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "launcher", "execute", "--id", task_id, *flags], env=env,
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the task failed:\n{done.stdout}\n{done.stderr}")
    return {"wall": wall, **phases(task_id, env)}


def phases(task_id: str, env: dict[str, str]) -> dict[str, float]:
    code = (
        "import json, sys; from clearml_task.api import Client; c = Client(); t = sys.argv[1]; "
        "print(json.dumps({'log': c.task_log(t), 'status': c.get_task(t)['status'], "
        "'scalars': c.call('events.scalar_metrics_iter_histogram', {'task': t})}))"
    )
    done = subprocess.run([sys.executable, "-c", code, task_id], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    found = json.loads(done.stdout)
    if found["status"] != "completed" or "loss" not in json.dumps(found["scalars"]):
        raise SystemExit(f"task {task_id}: {found['status']}, scalars {found['scalars']}")
    stamps = {}
    for event in found["log"]:
        message = str(event["msg"])
        for key, text in (("running", "launcher: running "), ("first", "first line"), ("last", "last line"),
                          ("exited", "launcher: the process exited")):  # fmt: skip
            if message.startswith(text):
                stamps.setdefault(key, int(event["timestamp"]) / 1000)
    return {"start-up": stamps["first"] - stamps["running"], "shutdown": stamps["exited"] - stamps["last"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each mode (default 5)")
    options = parser.parse_args()
    with temp_dir("bench-sdk-") as tmp:
        repo = make_repo(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
        env |= {"HOME": str(tmp / "home"), "CLEARML_TASK_HOME": str(tmp / "clearml-task-home")}
        (tmp / "home").mkdir()
        results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for mode, flags in MODES.items():
            print(f"warm-up, {mode}: {run_once(repo, env, flags)['wall']:.2f} s (builds the env once)")
        for index in range(options.runs):
            for mode in list(MODES)[:: 1 if index % 2 == 0 else -1]:
                results[mode].append(run_once(repo, env, MODES[mode]))
                figures = ", ".join(f"{key} {value:.2f} s" for key, value in results[mode][-1].items())
                print(f"  run {index + 1}, {mode}: {figures}")
    version = sys.version.split()[0]
    print(f"\npython {version}, {os.cpu_count()} cpus, {options.runs} runs each; medians (s)\n")
    print(f"{'SDK reports from':38}  {'start-up':>8}  {'shutdown':>8}  {'execute wall':>12}")
    for mode, runs in results.items():
        med = {key: statistics.median(run[key] for run in runs) for key in ("start-up", "shutdown", "wall")}
        print(f"{mode:38}  {med['start-up']:8.2f}  {med['shutdown']:8.2f}  {med['wall']:12.2f}")
    thread, sub = (statistics.median(run["wall"] for run in runs) for runs in results.values())
    print(f"\nexecute wall, subprocess / thread: {sub / thread:.1f}x")


if __name__ == "__main__":
    main()
