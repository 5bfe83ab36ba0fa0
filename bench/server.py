"""How many create -> enqueue -> get_next_task cycles per second the embedded server sustains.

    python bench/server.py [--cycles N] [--http-cycles N] [--repeats 3]

Two modes, measured in the same run:

- inprocess: a Session on the embedded server in this process (ephemeral mode), over a temp data dir;
- http: a Session over loopback HTTP against `python -m launcher server --port 0` in a subprocess.

Each cycle is what a `clearml-task --queue` run and an agent's poll cost the server: tasks.create with a
small realistic task document, tasks.enqueue into a queue, queues.get_next_task on that queue (which must
hand back the task just enqueued). Each mode warms up, then times N cycles with time.perf_counter,
`--repeats` times, and reports the median. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import server, table, temp_dir

from clearml_task.api import Session
from clearml_task.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
AIMS = {"inprocess": 1000.0, "http": 300.0}  # cycles per second
WARMUP = 200


@dataclass
class Result:
    mode: str
    cycles: int
    runs: list[float]  # seconds per run of `cycles` cycles

    @property
    def seconds(self) -> float:
        return statistics.median(self.runs)

    @property
    def rate(self) -> float:
        return self.cycles / self.seconds

    @property
    def aim(self) -> float:
        return AIMS[self.mode]


def task_document(project: str, n: int) -> dict[str, object]:
    """The shape `clearml-task` sends: a script section and a few argparse hyperparams."""
    return {
        "name": f"train resnet #{n}",
        "type": "training",
        "project": project,
        "script": {
            "repository": "https://github.com/example/vision.git",
            "branch": "main",
            "version_num": "3f2c1e9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e",
            "entry_point": "train.py",
            "working_dir": ".",
            "binary": "python3",
            "requirements": {"pip": "torch==2.3.0\ntorchvision==0.18.0\n"},
        },
        "hyperparams": {
            "Args": {
                "lr": {"section": "Args", "name": "lr", "value": "0.001", "type": "float"},
                "epochs": {"section": "Args", "name": "epochs", "value": "10", "type": "int"},
                "batch_size": {"section": "Args", "name": "batch_size", "value": "64", "type": "int"},
                "model": {"section": "Args", "name": "model", "value": "resnet50", "type": "str"},
            }
        },
        "tags": ["bench"],
    }


class Cycler:
    """The create -> enqueue -> get_next_task loop against one Session."""

    def __init__(self, session: Session, label: str) -> None:
        self.session = session
        self.project = session.call("projects.create", {"name": f"bench {label}"})["id"]
        self.queue = session.call("queues.create", {"name": f"bench {label}"})["id"]
        self.count = 0

    def run(self, cycles: int) -> float:
        call, project, queue = self.session.call, self.project, self.queue
        start = time.perf_counter()
        for _ in range(cycles):
            self.count += 1
            task = call("tasks.create", task_document(project, self.count))["id"]
            call("tasks.enqueue", {"task": task, "queue": queue})
            entry = call("queues.get_next_task", {"queue": queue}).get("entry") or {}
            if entry.get("task") != task:
                raise AssertionError(f"get_next_task answered {entry!r}, expected task {task}")
        return time.perf_counter() - start


def measure(mode: str, session: Session, cycles: int, repeats: int) -> Result:
    cycler = Cycler(session, mode)
    cycler.run(WARMUP)
    return Result(mode, cycles, [cycler.run(cycles) for _ in range(repeats)])


# the two modes ----------------------------------------------------------------------------------------


def inprocess(cycles: int, repeats: int) -> Result:
    with temp_dir("bench-inprocess-") as home:
        session = Session(ServerConfig(None, None, None, None, None, "embedded", home))
        return measure("inprocess", session, cycles, repeats)


def server_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
    env["CLEARML_TASK_HOME"] = str(tmp)
    return env


def http(cycles: int, repeats: int) -> Result:
    with temp_dir("bench-http-") as tmp, server(tmp / "server", server_env(tmp)) as url:
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the server is not on loopback: {url}")
        keys = json.loads((tmp / "server" / "credentials.json").read_text())
        session = Session(ServerConfig(url, None, None, keys["access_key"], keys["secret_key"], "bench", tmp))
        return measure("http", session, cycles, repeats)


# the report -------------------------------------------------------------------------------------------
def results_table(results: list[Result]) -> str:
    header = ("mode", "cycles", "seconds", "cycles/s", "aim", "measured/aim", "runs (s)")
    rows = [
        (
            r.mode,
            str(r.cycles),
            f"{r.seconds:.3f}",
            f"{r.rate:,.0f}",
            f">= {r.aim:,.0f}/s",
            f"{r.rate / r.aim:.2f}",
            " ".join(f"{s:.3f}" for s in r.runs),
        )
        for r in results
    ]
    return table([header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=2000, help="timed cycles in process (default 2000)")
    parser.add_argument("--http-cycles", type=int, help="timed cycles over HTTP (default: half of --cycles)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode; the median counts")
    parser.add_argument("--mode", choices=["all", *AIMS], default="all", help="run one mode only")
    args = parser.parse_args(argv)
    http_cycles = args.http_cycles or max(args.cycles // 2, 1)

    print(
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cpus; warm-up {WARMUP} cycles, median of {args.repeats} runs",
        flush=True,
    )
    results = []
    if args.mode in ("all", "inprocess"):
        results.append(inprocess(args.cycles, args.repeats))
    if args.mode in ("all", "http"):
        results.append(http(http_cycles, args.repeats))
    print(results_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
