"""Our `clearml-task` against ClearML's own (clearml 2.1.12), end to end, on the same repo and server.

    python bench/cli.py [--runs N] [--files 1000] [--clearml-venv PATH] [--venv PATH] [--cold-cache]
                        [--detected-requirements]

1. Builds a realistic git repository of `--files` files in a temp dir (Python package dirs with modules of a
   few dozen lines, tests, data and config files, a `train.py` argparse entry point at the root), commits
   it, pushes it to a bare "origin" (a file path) with upstream set, then edits one file and adds one
   untracked file. It declares its requirements in requirements.txt; with `--detected-requirements` it
   declares none, and both sides detect them from the imports (ours asks the `python3` on PATH where
   packages are installed).
2. Starts our server over loopback HTTP (`python -m launcher server --port 0 --data-dir <tmp>`).
3. Runs both CLIs as subprocesses, in pairs whose order alternates, `--runs` times after one warm-up pair:
   ours:   clearml-task --project bench --name bench-ours --folder REPO --script train.py --args epochs=3
           --queue default --output json
   theirs: clearml-task --project bench --name bench-theirs --folder REPO --cwd . --script train.py
           --args epochs=3 --queue default
   Each run is timed with time.perf_counter around the child (spawn to reap) and must exit 0 and leave
   a task queued on `default` (checked through our API after the clock stops). Peak RSS comes from
   `/usr/bin/time -f %M` wrapped around each child (both sides alike; `--no-rss` leaves it out).
4. Times `clearml-task --help` of both the same way.
5. Prints medians, the median of the paired ratios theirs/ours and the aims (>= 8x, >= 5x with
   --cold-cache; ours' --help <= 0.05 s).

Only 127.0.0.1 is contacted; the children get HOME=<empty temp dir> and no proxy or CLEARML_* variables
beyond the server's address and keys.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import server, table, temp_dir

from clearml_task.api import Session
from clearml_task.config import ServerConfig

ROOT = Path(__file__).resolve().parent.parent
AIM_RATIO = 8.0  # theirs / ours, create + enqueue, our entry-point cache warm
AIM_RATIO_COLD = 5.0  # the same with --cold-cache
AIM_HELP = 0.05  # seconds, ours' --help
QUEUE = "default"
PROJECT = "bench"
MIN_FILES = 40


class BenchError(Exception):
    """Something the benchmark cannot go on with; the message says what and shows the child's output."""


# the repository -----------------------------------------------------------------------------------
PACKAGES = ("models", "data", "losses", "metrics", "ops", "training", "evaluation", "utils", "io", "viz")
STDLIB = ("math", "os", "json", "logging", "itertools", "functools", "dataclasses", "pathlib", "typing")
WORDS = (
    "batch", "weight", "scale", "offset", "step", "sample", "layer", "block", "stage", "feature", "anchor",
    "score", "mask", "label", "token", "frame", "window", "stride", "kernel", "channel", "bias", "decay",
)  # fmt: skip

TRAIN_PY = '''\
"""Train a model from the `vision` package."""

import argparse
import logging

from vision.training import loop


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--data", default="data/train.csv")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    for epoch in range(args.epochs):
        logging.info("epoch %d lr %g model %s", epoch, args.lr, args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''

ROOT_FILES = {
    "train.py": TRAIN_PY,
    "requirements.txt": "numpy>=1.24\nPyYAML>=6\ntqdm\n",
    "README.md": "# vision\n\nA small vision library and its training entry point, `train.py`.\n",
    "pyproject.toml": '[project]\nname = "vision"\nversion = "0.3.1"\nrequires-python = ">=3.10"\n',
    ".gitignore": "__pycache__/\n*.pyc\n/outputs/\n/.venv/\n",
    "setup.cfg": "[flake8]\nmax-line-length = 110\n",
}


def module_text(rng: random.Random, name: str) -> str:
    """A module of a few dozen lines: imports, a constant, two to four functions, sometimes a class."""
    lines = [f'"""{name.replace("_", " ")}: helpers for the {rng.choice(WORDS)} pipeline."""', ""]
    lines += [f"import {mod}" for mod in sorted(rng.sample(STDLIB, rng.randint(1, 3)))]
    lines += ["", f"DEFAULT_{rng.choice(WORDS).upper()} = {rng.randint(1, 512)}", ""]
    for _ in range(rng.randint(2, 4)):
        a, b = rng.sample(WORDS, 2)
        lines += [
            "",
            f"def {a}_{b}_{rng.randint(0, 99)}({a}, {b}=None, *, scale={rng.random():.3f}):",
            f'    """Combine {a} with {b}, scaled."""',
            f"    if {b} is None:",
            f"        {b} = {a}",
            "    out = []",
            f"    for i, value in enumerate({a}):",
            f"        out.append(value * scale + (i % {rng.randint(2, 9)}))",
            "    return out",
        ]
    if rng.random() < 0.5:
        a = rng.choice(WORDS)
        lines += [
            "",
            "",
            f"class {a.capitalize()}{rng.randint(0, 999)}:",
            f"    def __init__(self, {a}, depth={rng.randint(1, 8)}):",
            f"        self.{a} = {a}",
            "        self.depth = depth",
            "",
            "    def __call__(self, x):",
            "        for _ in range(self.depth):",
            f"            x = x + self.{a}",
            "        return x",
        ]
    return "\n".join(lines) + "\n"


def data_text(rng: random.Random, suffix: str) -> str:
    if suffix == ".csv":
        rows = ["id,label,score,width,height"]
        rows += [
            f"{i},{rng.choice(WORDS)},{rng.random():.4f},{rng.randint(32, 1024)},{rng.randint(32, 1024)}"
            for i in range(rng.randint(20, 60))
        ]
        return "\n".join(rows) + "\n"
    if suffix == ".json":
        doc = {
            w: {"mean": round(rng.random(), 4), "std": round(rng.random(), 4)} for w in rng.sample(WORDS, 8)
        }
        return json.dumps(doc, indent=2) + "\n"
    keys = rng.sample(WORDS, 10)  # .yaml
    return "".join(f"{k}: {rng.randint(1, 100)}\n" for k in keys)


def repo_files(count: int, seed: int = 1, *, detected: bool = False) -> dict[str, str]:
    """`count` relative paths -> text, deterministic; about 80% Python, the rest data, config and docs.
    `detected`: no requirements.txt and a pyproject.toml that configures tools only, so that both sides
    detect the requirements from the imports."""
    rng = random.Random(seed)
    files = dict(ROOT_FILES)
    if detected:
        del files["requirements.txt"]
        files["NOTES.md"] = "# Notes\n\nInstall numpy, PyYAML and tqdm first.\n"
        files["pyproject.toml"] = "[tool.ruff]\nline-length = 110\n"
    rest = count - len(files)
    n_data, n_conf, n_docs, n_tests = rest * 6 // 100, rest * 3 // 100, rest * 2 // 100, rest * 8 // 100
    for i in range(n_data):
        suffix = (".csv", ".json")[i % 2]
        files[f"data/{PACKAGES[i % len(PACKAGES)]}/part_{i:04d}{suffix}"] = data_text(rng, suffix)
    for i in range(n_conf):
        files[f"configs/{PACKAGES[i % len(PACKAGES)]}/exp_{i:03d}.yaml"] = data_text(rng, ".yaml")
    for i in range(n_docs):
        files[f"docs/page_{i:03d}.md"] = f"# Page {i}\n\n" + " ".join(rng.sample(WORDS, 12)) + ".\n"
    for i in range(n_tests):
        files[f"tests/test_{i:04d}.py"] = module_text(rng, f"test_{i}")
    n_py = count - len(files)  # the package: vision/<pkg>/<sub>/ dirs of ~20 modules, each with __init__
    dirs = [f"vision/{p}/{s}" for p in PACKAGES for s in ("core", "extra", "legacy", "experimental")]
    dirs = ["vision", *(f"vision/{p}" for p in PACKAGES), *dirs]
    per_dir = max(n_py // len(dirs), 2)
    made = 0
    for d in dirs:
        if made >= n_py:
            break
        files[f"{d}/__init__.py"] = f'"""{d.replace("/", ".")}."""\n'
        made += 1
        for j in range(min(per_dir - 1, n_py - made)):
            stem = "loop" if (d, j) == ("vision/training", 0) else f"{rng.choice(WORDS)}_{j:03d}"
            files[f"{d}/{stem}.py"] = module_text(rng, f"{d}_{j}")
            made += 1
    j = 0
    while made < n_py:  # the rounding remainder goes to vision/utils
        files[f"vision/utils/more_{j:03d}.py"] = module_text(rng, f"more_{j}")
        made += 1
        j += 1
    if len(files) != count or "vision/training/loop.py" not in files:  # loop: what train.py imports
        raise AssertionError(f"generated {len(files)} files, wanted {count}")
    return files


def git(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=dict(env), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def build_repo(base: Path, count: int, env: Mapping[str, str], *, detected: bool = False) -> Path:
    """A committed and pushed repo at base/repo (origin: base/origin.git), plus one edit and one new file."""
    repo, origin = base / "repo", base / "origin.git"
    files = repo_files(count, detected=detected)
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(["init", "-q", "-b", "main", str(repo)], base, env)
    git(["add", "-A"], repo, env)
    git(["commit", "-q", "-m", "vision 0.3.1"], repo, env)
    git(["init", "-q", "--bare", "-b", "main", str(origin)], base, env)
    git(["remote", "add", "origin", str(origin)], repo, env)
    git(["push", "-q", "-u", "origin", "main"], repo, env)
    tracked = int(git(["ls-files"], repo, env).count("\n"))
    if tracked != count:
        raise BenchError(f"the repo tracks {tracked} files, expected {count}")
    with (repo / "vision/training/loop.py").open("a") as f:  # the local change
        f.write("\n\ndef warmup_steps(total):\n    return max(total // 20, 1)\n")
    (repo / "vision/utils/scratch.py").write_text('"""Not committed yet."""\n\nSCRATCH = True\n')
    return repo


# the server ---------------------------------------------------------------------------------------


# running one child --------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    rss_kib: int | None
    returncode: int
    stdout: str
    stderr: str


def run_child(argv: Sequence[str], env: Mapping[str, str], cwd: Path, time_bin: str | None) -> Run:
    """Spawn and wait; wall time from spawn to reap. With `time_bin` (GNU time), the child runs under
    `time -f %M` for its peak RSS. (os.wait4 on the child itself is no substitute: the child is forked
    from this process, and Linux counts the parent's RSS it had before exec into the child's maxrss.)"""
    with ExitStack() as stack:
        out = stack.enter_context(tempfile.TemporaryFile())
        err = stack.enter_context(tempfile.TemporaryFile())
        rss_file = Path(stack.enter_context(temp_dir("bench-rss-"))) / "rss" if time_bin else None
        command = [time_bin, "-o", str(rss_file), "-f", "%M", *argv] if time_bin else list(argv)
        start = time.perf_counter()
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env), cwd=cwd
        )
        seconds = time.perf_counter() - start
        rss = None
        if rss_file is not None and rss_file.is_file():  # "Command exited with ..." may come first
            last = (rss_file.read_text().strip().splitlines() or [""])[-1]
            rss = int(last) if last.isdigit() else None
        out.seek(0)
        err.seek(0)
        return Run(seconds, rss, done.returncode, out.read().decode(errors="replace"),
                   err.read().decode(errors="replace"))  # fmt: skip


def gnu_time(path: str = "/usr/bin/time") -> tuple[str | None, str]:
    """GNU time if it is there and takes -f %M: (path, its own wall overhead) or (None, why not)."""
    if not os.access(path, os.X_OK):
        return None, f"{path} is missing (psutil polling would disturb the timings, so it is not tried)"
    with temp_dir("bench-rss-") as tmp:
        probe = subprocess.run([path, "-o", str(tmp / "rss"), "-f", "%M", "true"], capture_output=True)
        if probe.returncode != 0 or not (tmp / "rss").read_text().strip().isdigit():
            return None, f"{path} is not GNU time (no -f %M)"

    def median_of(argv: list[str]) -> float:
        times = []
        for _ in range(9):
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    overhead = median_of([path, "-f", "%M", "true"]) - median_of(["true"])
    return path, f"the wrapper adds about {overhead * 1000:.1f} ms to each run, both sides alike"


def checked(run: Run, who: str, argv: Sequence[str]) -> Run:
    if run.returncode != 0:
        raise BenchError(
            f"clearml-task ({who}) exited {run.returncode}: {' '.join(argv)}\n"
            f"--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"
        )
    return run


THEIR_ID = re.compile(r"Task id=([0-9a-f]+) sent for execution on queue (\S+)")


def task_id(who: str, run: Run) -> str:
    """The task the run reports: our JSON output, or clearml's 'Task id=... sent for execution' line."""
    if who == "ours":
        try:
            return str(json.loads(run.stdout.strip().splitlines()[-1])["id"])
        except (ValueError, KeyError, IndexError):
            raise BenchError(f"ours printed no JSON result:\n{run.stdout}\n{run.stderr}") from None
    found = THEIR_ID.search(run.stdout + run.stderr)
    if not found:
        raise BenchError(f"theirs reported no enqueued task:\n{run.stdout}\n{run.stderr}")
    return found[1]


# the benchmark ------------------------------------------------------------------------------------
@dataclass
class Side:
    who: str
    command: list[str]  # create + enqueue
    help: list[str]
    runs: list[Run] = field(default_factory=list)
    help_runs: list[Run] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def help_seconds(self) -> float:
        return statistics.median(r.seconds for r in self.help_runs)


def peak_rss(runs: Sequence[Run]) -> float | None:
    """Median peak RSS in MiB, or None when it was not measured."""
    values = [r.rss_kib for r in runs if r.rss_kib is not None]
    return statistics.median(values) / 1024 if values else None


class Checker:
    """Our API, to check that each run left its task queued on `default`."""

    def __init__(self, url: str, keys: Mapping[str, str], home: Path) -> None:
        config = ServerConfig(url, None, None, keys["access_key"], keys["secret_key"], "bench", home)
        self.session = Session(config)
        found = self.session.call("queues.get_all", {"name": f"^{QUEUE}$"})["queues"]
        if found:
            self.queue = str(found[0]["id"])
        else:
            self.queue = str(self.session.call("queues.create", {"name": QUEUE})["id"])

    def queued_entries(self) -> int:
        return len(self.session.call("queues.get_by_id", {"queue": self.queue})["queue"].get("entries", []))

    def check(self, who: str, task: str, name: str) -> None:
        doc: dict[str, Any] = self.session.call("tasks.get_by_id", {"task": task})["task"]
        problems = []
        if doc.get("name") != name:
            problems.append(f"name {doc.get('name')!r}")
        if doc.get("status") != "queued":
            problems.append(f"status {doc.get('status')!r}")
        if (doc.get("execution") or {}).get("queue") != self.queue:
            problems.append(f"execution.queue {(doc.get('execution') or {}).get('queue')!r}")
        if problems:
            raise BenchError(f"the task {task} ({who}) is not queued on {QUEUE}: {', '.join(problems)}")


def child_env(url: str, keys: Mapping[str, str], home: Path) -> dict[str, str]:
    drop = ("CLEARML_", "TRAINS_", "XDG_", "PYTHON", "VIRTUAL_ENV")
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k.lower() not in proxies}
    env.update(
        HOME=str(home),
        CLEARML_API_HOST=url,
        CLEARML_WEB_HOST=url,
        CLEARML_FILES_HOST=url,
        CLEARML_API_ACCESS_KEY=keys["access_key"],
        CLEARML_API_SECRET_KEY=keys["secret_key"],
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


CLEARML_PIN = "clearml==2.1.12"


def install_clearml(venv: Path) -> None:
    """ClearML's clearml-task in a venv of its own (a bench-only peer, never a dependency of ours)."""
    print(f"installing {CLEARML_PIN} into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", CLEARML_PIN], check=True)


def bench(args: argparse.Namespace, time_bin: str | None) -> tuple[Side, Side, list[float], int]:
    ours_bin = args.venv / "bin" / "clearml-task"
    theirs_bin = args.clearml_venv / "bin" / "clearml-task"
    if not theirs_bin.exists():
        install_clearml(args.clearml_venv)
    for path in (ours_bin, theirs_bin):
        if not os.access(path, os.X_OK):
            raise BenchError(f"no executable {path} (see --venv / --clearml-venv)")
    with ExitStack() as stack:
        tmp = stack.enter_context(temp_dir("bench-cli-"))
        home = tmp / "home"
        home.mkdir()
        git_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        git_env.update(
            HOME=str(tmp / "git-home"), GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
            GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
        )  # fmt: skip
        (tmp / "git-home").mkdir()
        repo = build_repo(tmp, args.files, git_env, detected=args.detected_requirements)
        server_env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_")}
        server_env["CLEARML_TASK_HOME"] = str(tmp / "server-home")
        url = stack.enter_context(server(tmp / "server", server_env))
        keys = json.loads((tmp / "server" / "credentials.json").read_text())
        checker = Checker(url, keys, tmp / "checker")
        env = child_env(url, keys, home)
        ours = Side(
            "ours",
            [str(ours_bin), "--project", PROJECT, "--name", "bench-ours", "--folder", str(repo),
             "--script", "train.py", "--args", "epochs=3", "--queue", QUEUE, "--output", "json"],
            [str(ours_bin), "--help"],
        )  # fmt: skip
        theirs = Side(
            "theirs",
            [str(theirs_bin), "--project", PROJECT, "--name", "bench-theirs", "--folder", str(repo),
             "--cwd", ".", "--script", "train.py", "--args", "epochs=3", "--queue", QUEUE],
            [str(theirs_bin), "--help"],
        )  # fmt: skip
        cwd = tmp  # neither runs from inside the repo: --folder says where it is
        before = checker.queued_entries()
        queued = 0

        def once(side: Side) -> Run:
            nonlocal queued
            if args.cold_cache and side is ours:  # every run parses the entry point again
                shutil.rmtree(home / ".local" / "share" / "clearml-task" / "cache", ignore_errors=True)
            run = checked(run_child(side.command, env, cwd, time_bin), side.who, side.command)
            checker.check(side.who, task_id(side.who, run), f"bench-{side.who}")
            queued += 1
            return run

        print(f"warm-up pair (not counted) on a {args.files}-file repo ...", flush=True)
        for side in (ours, theirs):
            once(side)
            checked(run_child(side.help, env, cwd, time_bin), side.who, side.help)
        ratios = []
        for i in range(args.runs):
            pair = (ours, theirs) if i % 2 == 0 else (theirs, ours)
            for side in pair:
                side.runs.append(once(side))
            ratios.append(theirs.runs[-1].seconds / ours.runs[-1].seconds)
            print(
                f"  pair {i + 1}/{args.runs}: ours {ours.runs[-1].seconds:.3f} s, "
                f"theirs {theirs.runs[-1].seconds:.3f} s, ratio {ratios[-1]:.2f}",
                flush=True,
            )
        for i in range(args.runs):
            pair = (ours, theirs) if i % 2 == 0 else (theirs, ours)
            for side in pair:
                side.help_runs.append(checked(run_child(side.help, env, cwd, time_bin), side.who, side.help))
        grew = checker.queued_entries() - before
        if grew != queued:
            raise BenchError(f"the {QUEUE} queue grew by {grew}, but {queued} runs reported an enqueued task")
        return ours, theirs, ratios, grew


# the report ---------------------------------------------------------------------------------------
def report(ours: Side, theirs: Side, ratios: list[float], rss_note: str, *, cold: bool = False) -> str:
    ratio = statistics.median(ratios)
    aim = AIM_RATIO_COLD if cold else AIM_RATIO
    help_ratio = theirs.help_seconds / ours.help_seconds
    rows = [
        ("what", "ours", "theirs", "theirs/ours", "aim", "met"),
        (
            "create + enqueue, median s",
            f"{ours.seconds:.3f}",
            f"{theirs.seconds:.3f}",
            f"{ratio:.2f}x",
            f">= {aim:g}x",
            "yes" if ratio >= aim else "NO",
        ),
        (
            "--help, median s",
            f"{ours.help_seconds:.3f}",
            f"{theirs.help_seconds:.3f}",
            f"{help_ratio:.2f}x",
            f"ours <= {AIM_HELP:g} s",
            "yes" if ours.help_seconds <= AIM_HELP else "NO",
        ),
    ]
    for label, a, b in (
        ("create + enqueue, peak RSS MiB", peak_rss(ours.runs), peak_rss(theirs.runs)),
        ("--help, peak RSS MiB", peak_rss(ours.help_runs), peak_rss(theirs.help_runs)),
    ):
        if a is not None and b is not None:
            rows.append((label, f"{a:.1f}", f"{b:.1f}", f"{b / a:.2f}x", "", ""))
    lines = [
        table(rows),
        "",
        "create + enqueue ratio is the median of the per-pair ratios; the others are ratios of medians.",
        "runs (s), ours:   " + " ".join(f"{r.seconds:.3f}" for r in ours.runs),
        "runs (s), theirs: " + " ".join(f"{r.seconds:.3f}" for r in theirs.runs),
        "pair ratios:      " + " ".join(f"{x:.2f}" for x in ratios),
        "--help (s), ours:   " + " ".join(f"{r.seconds:.3f}" for r in ours.help_runs),
        "--help (s), theirs: " + " ".join(f"{r.seconds:.3f}" for r in theirs.help_runs),
    ]
    if peak_rss(ours.runs) is None:
        lines.append(f"peak RSS not measured: {rss_note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="timed pairs (default 7), after one warm-up")
    parser.add_argument("--files", type=int, default=1000, help="files in the generated repo (default 1000)")
    parser.add_argument(
        "--clearml-venv", type=Path, default=Path("/tmp/clearml-venv"),
        help="venv with ClearML's clearml-task (default /tmp/clearml-venv)",
    )  # fmt: skip
    parser.add_argument(
        "--venv", type=Path, default=Path(sys.prefix),
        help="venv with our clearml-task (default: this interpreter's, %(default)s)",
    )  # fmt: skip
    parser.add_argument("--no-rss", action="store_true", help="no /usr/bin/time wrapper, no peak RSS")
    parser.add_argument(
        "--cold-cache", action="store_true", help="empty our entry-point cache before each of our runs"
    )
    parser.add_argument(
        "--detected-requirements", action="store_true",
        help="a repo that declares no requirements: both sides detect them from the imports",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.files < MIN_FILES:
        parser.error(f"--files must be at least {MIN_FILES}")
    print(
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cpus; {args.runs} pairs in alternating order after one warm-up pair",
        flush=True,
    )
    time_bin, rss_note = (None, "--no-rss was given") if args.no_rss else gnu_time()
    if time_bin:
        print(f"peak RSS from {time_bin} -f %M; {rss_note}", flush=True)
    try:
        ours, theirs, ratios, grew = bench(args, time_bin)
    except BenchError as e:
        print(f"bench/cli.py: {e}", file=sys.stderr)
        return 1
    print(f"all {grew} runs exited 0 and left their task queued on {QUEUE!r}\n")
    print(report(ours, theirs, ratios, rss_note, cold=args.cold_cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
