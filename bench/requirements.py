"""Requirements detection: ours (clearml_task.requirements) against pipreqs, on a generated ML repository
with known ground truth, in the same run.

    python bench/requirements.py [--files 500] [--runs 5] [--seed 7] [--pipreqs PATH] [--keep DIR]

1. Generates a repository of `--files` Python files in a temp dir (`--keep DIR` writes it there instead):
   `train.py` imports the `vision` package, whose ten subpackages pull in their modules through relative
   (`from .x import y`, `from .. import z`) and absolute imports, chains of them; dead modules nothing
   imports, `scripts/`, `tools/` and `tests/` hold imports the entry point never reaches; two notebooks;
   a local `tokenizers` package shadowing the PyPI name; a `wandb/` run-log directory; a
   `vision/data/datasets.py` module next to an `import datasets` of the Hugging Face package. The imports
   use aliases (sklearn, cv2, PIL, yaml, bs4, skimage, ...), try/except ImportError (installed here and
   not), `if TYPE_CHECKING:` blocks, a Python version test, importlib.import_module / __import__ literals.
2. The ground truth, computed by the generator from its own import graph (not by either tool): the
   distributions imported by the modules the entry point reaches, required ones always, optional ones when
   installed in this interpreter's environment; TYPE_CHECKING imports never.
3. Times, `--runs` times each (alternating, after one warm-up each):
   ours:    python -c "decide(read=directory_reader(REPO), entry_point='train.py')" in a subprocess (all of
            it: interpreter start, imports, the installed-distribution scan, parsing, mapping)
   pipreqs: pipreqs --use-local --print REPO (offline: local package information only)
   and ours in process (the decide() call alone, caches cleared before each run: what clearml-task pays).
   Both children share one bytecode cache (PYTHONPYCACHEPREFIX in the temp dir, filled by the warm-ups),
   as installed packages have theirs from pip; PYTHONDONTWRITEBYTECODE is dropped for them.
4. Prints median times, the ratios pipreqs/ours, and per tool: lines, true positives, precision, recall,
   and how many needed distributions installed here are pinned to the installed version; then the misses
   and the extras of each, and the aims (recall >= 95%, precision >= 90%, >= 5x faster than pipreqs, both
   run as subprocesses).

No network: both tools run with HTTP(S)_PROXY pointing at a closed loopback port, so any request fails.
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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from common import ROOT, table

AIM_RECALL = 0.95
AIM_PRECISION = 0.90
AIM_RATIO = 5.0
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, so a request fails at once


# the import patterns ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pattern:
    code: str  # the import statement(s)
    top: str  # the top-level module (for "installed?")
    dist: str  # the distribution that provides it
    kind: str = "required"  # "required" | "optional" | "typing" (under TYPE_CHECKING)


def p(code: str, top: str, dist: str, kind: str = "required") -> Pattern:
    return Pattern(code, top, dist, kind)


def guarded(statement: str, fallback: str, error: str = "ImportError") -> str:
    return f"try:\n    {statement}\nexcept {error}:\n    {fallback}"


# Imported by the modules the entry point reaches.
REACHED = [
    p("import numpy as np", "numpy", "numpy"),
    p("import torch\nimport torch.nn as nn", "torch", "torch"),
    p("from torchvision import transforms", "torchvision", "torchvision"),
    p("from sklearn.metrics import f1_score", "sklearn", "scikit-learn"),
    p("import sklearn.model_selection as model_selection", "sklearn", "scikit-learn"),
    p("import cv2", "cv2", "opencv-python"),
    p("from PIL import Image", "PIL", "Pillow"),
    p("from skimage import io as skio", "skimage", "scikit-image"),
    p("import scipy.ndimage as ndi", "scipy", "scipy"),
    p("import pandas as pd", "pandas", "pandas"),
    p("import matplotlib\nimport matplotlib.pyplot as plt", "matplotlib", "matplotlib"),
    p("from tqdm import tqdm", "tqdm", "tqdm"),
    p("from transformers import AutoModel", "transformers", "transformers"),
    p("import h5py", "h5py", "h5py"),
    p("import albumentations as A", "albumentations", "albumentations"),
    p("import wandb", "wandb", "wandb"),
    p("import datasets as hf_datasets", "datasets", "datasets"),
    p("timm = importlib.import_module('timm')", "timm", "timm"),
    p("einops = __import__('einops')", "einops", "einops"),
    p("import yaml", "yaml", "PyYAML"),
    p("import requests", "requests", "requests"),
    p("from jinja2 import Template", "jinja2", "Jinja2"),
    p("from bs4 import BeautifulSoup", "bs4", "beautifulsoup4"),
    p("from dateutil import parser as date_parser", "dateutil", "python-dateutil"),
    p("import attr", "attr", "attrs"),
    p("import jwt", "jwt", "PyJWT"),
    p("from pydantic import BaseModel", "pydantic", "pydantic"),
    p("import typer", "typer", "typer"),
    p("from platformdirs import user_cache_dir", "platformdirs", "platformdirs"),
    p("from packaging.version import Version", "packaging", "packaging"),
    p("from markdown_it import MarkdownIt", "markdown_it", "markdown-it-py"),
    p("import jsonschema", "jsonschema", "jsonschema"),
    p(guarded("from rich.progress import track", "track = None"), "rich", "rich", "optional"),
    p(guarded("import jedi", "jedi = None", "(ImportError, AttributeError)"), "jedi", "jedi", "optional"),
    p(guarded("import ujson as fast_json", "import json as fast_json"), "ujson", "ujson", "optional"),
    p(guarded("import apex", "apex = None"), "apex", "apex", "optional"),
    p(guarded("import cupy", "cupy = None", "ModuleNotFoundError"), "cupy", "cupy", "optional"),
    p(
        "if sys.version_info < (3, 11):\n    import tomli as toml_reader\n"
        "else:\n    import tomllib as toml_reader",
        "tomli", "tomli", "optional",
    ),
    p("if TYPE_CHECKING:\n    import polars as pl", "polars", "polars", "typing"),
    p("if TYPE_CHECKING:\n    from pandas_stubs import Frame", "pandas_stubs", "pandas-stubs", "typing"),
]  # fmt: skip

# Imported only where the entry point never goes (scripts/, tools/, tests/, dead modules, notebooks).
UNREACHED = [
    p("import tensorflow as tf", "tensorflow", "tensorflow"),
    p("import onnx\nimport onnxruntime as ort", "onnx", "onnx"),
    p("import jax\nimport flax", "jax", "jax"),
    p("from flask import Flask", "flask", "Flask"),
    p("import boto3", "boto3", "boto3"),
    p("import tornado.web", "tornado", "tornado"),
    p("import zmq", "zmq", "pyzmq"),
    p("from pygments import highlight", "pygments", "Pygments"),
    p("import libcst as cst", "libcst", "libcst"),
    p("from docopt import docopt", "docopt", "docopt"),
    p("import mistune", "mistune", "mistune"),
    p("import pytest", "pytest", "pytest"),
    p("from hypothesis import given", "hypothesis", "hypothesis"),
    p("import pexpect", "pexpect", "pexpect"),
    p("import seaborn as sns", "seaborn", "seaborn"),
]

STDLIB = ["os", "sys", "json", "math", "logging", "itertools", "functools", "pathlib", "dataclasses", "re",
          "collections", "typing", "importlib", "contextlib", "random", "time"]  # fmt: skip
PACKAGES = ["models", "data", "losses", "metrics", "ops", "training", "evaluation", "utils", "io", "viz"]
WORDS = ["batch", "weight", "scale", "offset", "step", "sample", "layer", "block", "stage", "feature",
         "anchor", "score", "mask", "label", "token", "frame", "window", "stride"]  # fmt: skip


# the repository -----------------------------------------------------------------------------------
@dataclass
class Module:
    path: str  # relative to the repository root
    imports: list[str] = field(default_factory=list)  # import statements of the repository's own modules
    patterns: list[Pattern] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)  # the paths of the own modules it imports


def body(rng: random.Random, name: str) -> str:
    """A few dozen lines of plausible code (it only has to parse)."""
    first, second, *methods = rng.sample(WORDS, 6)
    title = name.title().replace("_", "")
    lines = [f"class {title}:", f'    """The {first} {second} of a model."""', ""]
    lines += [f"    def __init__(self, {first}=1, {second}=2):", f"        self.{first} = {first}"]
    lines += [f"        self.{second} = {second}", ""]
    for word in methods:
        lines += [f"    def {word}(self, value):", f"        total = value * self.{first} + self.{second}"]
        lines += ["        for index in range(3):", "            total += index", "        return total", ""]
    lines += [f"def make_{name}(**kwargs):", f"    return {title}(**kwargs)", ""]
    return "\n".join(lines)


def render(module: Module, rng: random.Random) -> str:
    name = Path(module.path).stem
    header = [
        f'"""{name}: part of the generated benchmark repository."""',
        "",
        "from __future__ import annotations",
    ]
    std = sorted([*rng.sample(STDLIB, 3), "sys", "importlib"])
    header += [f"import {s}" for s in dict.fromkeys(std)]
    header += ["from typing import TYPE_CHECKING", ""]
    header += [pattern.code for pattern in module.patterns]
    header += module.imports
    return "\n".join(header) + "\n\n\n" + body(rng, name if name != "__init__" else "package")


def generate(root: Path, files: int, seed: int) -> tuple[set[str], int]:
    """Writes the repository; returns the ground truth (canonical distribution names) and the number of
    Python files written."""
    rng = random.Random(seed)
    modules: dict[str, Module] = {}
    unreached_budget = max(20, files // 5)
    per_package = max(3, (files - unreached_budget - 1 - 1 - len(PACKAGES) - 4) // len(PACKAGES))

    train = Module("train.py", ["from vision.training import loop", "import vision", "import tokenizers"])
    train.edges = ["vision/training/loop.py", "vision/__init__.py", "tokenizers/__init__.py"]
    modules[train.path] = train
    top_init = Module("vision/__init__.py", [f"from . import {package}" for package in PACKAGES])
    top_init.edges = [f"vision/{package}/__init__.py" for package in PACKAGES]
    modules[top_init.path] = top_init
    modules["tokenizers/__init__.py"] = Module("tokenizers/__init__.py")  # shadows the PyPI name

    reached_paths: list[str] = []
    dead: list[str] = []
    for package in PACKAGES:
        names = [f"{package}_{rng.choice(WORDS)}_{index}" for index in range(per_package)]
        if package == "data":
            names[0] = "datasets"  # a module named like the Hugging Face package
        if package == "training":
            names[0] = "loop"
        dead_names = set(names[-max(1, per_package // 10) :])  # nothing imports these
        live = [n for n in names if n not in dead_names]
        public = live[: max(1, len(live) // 3)]  # the __init__ imports these; the rest through chains
        init = Module(f"vision/{package}/__init__.py")
        for name in public:
            init.imports.append(f"from .{name} import make_{name}")
            init.edges.append(f"vision/{package}/{name}.py")
        modules[init.path] = init
        for index, name in enumerate(names):
            module = Module(f"vision/{package}/{name}.py")
            modules[module.path] = module
            if name in dead_names:
                dead.append(module.path)
                continue
            reached_paths.append(module.path)
            if index + 1 < len(live):  # a chain through the package: each live module imports the next
                following = live[index + 1]
                module.imports.append(f"from .{following} import make_{following}")
                module.edges.append(f"vision/{package}/{following}.py")
            if rng.random() < 0.3:  # across packages: relative upwards, or absolute
                other = rng.choice([q for q in PACKAGES if q != package])
                if rng.random() < 0.5:
                    module.imports.append(f"from .. import {other}")
                else:
                    module.imports.append(f"from vision.{other} import make_package")
                module.edges.append(f"vision/{other}/__init__.py")
    modules["vision/data/hub.py"] = Module("vision/data/hub.py", ["from . import datasets as local_datasets"])
    modules["vision/data/hub.py"].edges = ["vision/data/datasets.py"]
    modules["vision/data/__init__.py"].imports.append("from . import hub")
    modules["vision/data/__init__.py"].edges.append("vision/data/hub.py")
    reached_paths.append("vision/data/hub.py")

    # third-party imports: each reached pattern at least once (datasets in hub.py), then sprinkled
    for pattern in REACHED:
        where = "vision/data/hub.py" if pattern.top == "datasets" else rng.choice(reached_paths)
        modules[where].patterns.append(pattern)
    for path in reached_paths:
        for pattern in rng.sample(REACHED[:32], rng.randint(0, 2)):
            if pattern not in modules[path].patterns and pattern.top != "datasets":
                modules[path].patterns.append(pattern)
    dead_patterns = UNREACHED + REACHED[:10]
    for path in dead:
        modules[path].patterns += rng.sample(dead_patterns, 2)

    written_py = len(modules)
    others = ["scripts", "tools", "tests"]
    extra = max(0, files - written_py)
    for index in range(extra):
        folder = others[index % len(others)]
        prefix = "test_" if folder == "tests" else ""
        module = Module(f"{folder}/{prefix}{rng.choice(WORDS)}_{index}.py")
        module.patterns = rng.sample(UNREACHED, 2) + rng.sample(REACHED[:20], 1)
        module.imports = ["from vision.models import make_package"]
        modules[module.path] = module

    for module in modules.values():
        target = root / module.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(module, rng))
    notebook(root / "notebooks" / "explore.ipynb", ["import seaborn as sns", "import plotly.express as px"])
    notebook(root / "notebooks" / "report.ipynb", ["%matplotlib inline", "import pandas as pd"])
    (root / "wandb" / "run-20261121_101010-abc").mkdir(parents=True)
    (root / "wandb" / "run-20261121_101010-abc" / "config.yaml").write_text("lr:\n  value: 0.1\n")
    (root / "wandb" / "debug.log").write_text("wandb run log\n")
    (root / "README.md").write_text("# vision\n\nA generated benchmark repository.\n")
    (root / "configs").mkdir()
    (root / "configs" / "base.yaml").write_text("epochs: 3\nlr: 0.1\n")

    return truth(modules), sum(1 for _ in root.rglob("*.py"))


def notebook(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cell = {"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [],
            "source": [line + "\n" for line in lines]}  # fmt: skip
    document = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(document, indent=1))


def truth(modules: dict[str, Module]) -> set[str]:
    """Walks the generator's own import graph from train.py; reached modules' imports decide."""
    installed = metadata.packages_distributions()
    seen: set[str] = set()
    queue = ["train.py"]
    # a package's __init__ runs before any of its modules
    while queue:
        path = queue.pop()
        if path in seen or path not in modules:
            continue
        seen.add(path)
        queue += modules[path].edges
        parent = str(Path(path).parent)
        while parent not in (".", ""):
            queue.append(f"{parent}/__init__.py")
            parent = str(Path(parent).parent)
    needed: set[str] = set()
    for path in seen:
        for pattern in modules[path].patterns:
            if pattern.kind == "required" or (pattern.kind == "optional" and pattern.top in installed):
                needed.add(canonical(pattern.dist))
    return needed


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# the runs -----------------------------------------------------------------------------------------
OURS = """
import json, sys
from pathlib import Path
from clearml_task.requirements import decide, directory_reader
decision = decide(read=directory_reader(Path(sys.argv[1])), entry_point="train.py")
print(json.dumps(decision.lines))
"""


@dataclass
class Outcome:
    lines: list[str]
    times: list[float] = field(default_factory=list)


def child_env(pycache: Path) -> dict[str, str]:
    """No proxy but a closed port (no network), and one bytecode cache for both tools' children, which
    the warm-up runs fill: pip compiles what it installs, while an editable checkout (ours, here) may run
    where PYTHONDONTWRITEBYTECODE is set."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"HTTP_PROXY": CLOSED, "HTTPS_PROXY": CLOSED, "http_proxy": CLOSED, "https_proxy": CLOSED})
    env["NO_PROXY"] = env["no_proxy"] = ""
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_ours(repo: Path, env: dict[str, str]) -> tuple[list[str], float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", OURS, str(repo)], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False)  # fmt: skip
    took = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"ours failed:\n{done.stderr}")
    return json.loads(done.stdout), took


def run_pipreqs(pipreqs: str, repo: Path, env: dict[str, str]) -> tuple[list[str], float]:
    started = time.perf_counter()
    done = subprocess.run([pipreqs, "--use-local", "--print", str(repo)], capture_output=True, text=True,
                          env=env, cwd=repo, check=False)  # fmt: skip
    took = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"pipreqs failed:\n{done.stderr}")
    return [line.strip() for line in done.stdout.splitlines() if line.strip()], took


def run_in_process(repo: Path) -> float:
    from clearml_task import requirements
    from clearml_task.requirements import installed

    installed._installed.cache_clear()
    installed.pipreqs_names.cache_clear()
    started = time.perf_counter()
    requirements.decide(read=requirements.directory_reader(repo), entry_point="train.py")
    return time.perf_counter() - started


def name_of(line: str) -> str:
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return canonical(found[1]) if found else line


@dataclass
class Score:
    lines: int
    hits: int
    precision: float
    recall: float
    pinned: str  # needed distributions installed here whose line pins the installed version / all of them
    missed: list[str]
    extra: list[str]


def score(lines: list[str], needed: set[str]) -> Score:
    names = {name_of(line) for line in lines}
    hits = names & needed
    pinned = 0
    for line in lines:
        name = name_of(line)
        if name in needed and "==" in line:
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
            pinned += line.split("==", 1)[1].strip() in (installed, installed.split("+")[0])
    return Score(
        lines=len(lines),
        hits=len(hits),
        precision=len(hits) / len(names) if names else 0.0,
        recall=len(hits) / len(needed) if needed else 1.0,
        pinned=f"{pinned}/{sum(1 for n in needed if _installed(n))}",
        missed=sorted(needed - names),
        extra=sorted(names - needed),
    )


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=500, help="Python files in the repository (>= 100)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pipreqs", default=str(Path(sys.executable).with_name("pipreqs")))
    parser.add_argument("--keep", type=Path, help="write the repository here (kept) instead of a temp dir")
    args = parser.parse_args()
    if args.files < 100:
        parser.error("--files must be at least 100")
    if not Path(args.pipreqs).is_file():
        parser.error(f"pipreqs not found at {args.pipreqs} (pip install pipreqs, or pass --pipreqs PATH)")

    tmp = Path(tempfile.mkdtemp(prefix="bench-requirements-"))
    repo = args.keep or tmp / "repo"
    try:
        if repo.exists():
            shutil.rmtree(repo)
        repo.mkdir(parents=True)
        needed, py_files = generate(repo, args.files, args.seed)
        env = child_env(tmp / "pycache")
        ours = Outcome(run_ours(repo, env)[0])  # warm-up (and the lines)
        theirs = Outcome(run_pipreqs(args.pipreqs, repo, env)[0])
        in_process: list[float] = []
        for index in range(args.runs):
            order = [("ours", ours), ("pipreqs", theirs)]
            for label, outcome in order if index % 2 == 0 else order[::-1]:
                lines, took = run_ours(repo, env) if label == "ours" else run_pipreqs(args.pipreqs, repo, env)
                if lines != outcome.lines:
                    raise SystemExit(f"{label} gave different lines from one run to the next")
                outcome.times.append(took)
            in_process.append(run_in_process(repo))
        report(args, py_files, needed, ours, theirs, in_process)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(args: argparse.Namespace, py_files: int, needed: set[str], ours: Outcome, theirs: Outcome,
           in_process: list[float]) -> None:  # fmt: skip
    pipreqs_version = metadata.version("pipreqs")
    print(f"python {platform.python_version()} on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} cpus; pipreqs {pipreqs_version}; seed {args.seed}")  # fmt: skip
    print(f"repository: {py_files} Python files, 2 notebooks; ground truth: {len(needed)} distributions "
          f"({sum(1 for n in needed if _installed(n))} installed here)")  # fmt: skip
    print()
    ours_score, theirs_score = score(ours.lines, needed), score(theirs.lines, needed)
    rows = [["tool", "median s", "min s", "lines", "hits", "precision", "recall", "pinned as installed"]]
    for label, outcome, found in (("ours", ours, ours_score), ("pipreqs --use-local", theirs, theirs_score)):
        times = [f"{statistics.median(outcome.times):.3f}", f"{min(outcome.times):.3f}"]
        counts = [str(found.lines), str(found.hits), f"{found.precision:.1%}", f"{found.recall:.1%}"]
        rows.append([label, *times, *counts, found.pinned])
    in_process_times = [f"{statistics.median(in_process):.3f}", f"{min(in_process):.3f}"]
    rows.append(["ours, in process", *in_process_times, "", "", "", "", ""])
    print(table(rows))
    ratio = statistics.median(theirs.times) / statistics.median(ours.times)
    ratio_in_process = statistics.median(theirs.times) / statistics.median(in_process)
    print()
    print(f"pipreqs / ours, median times, both as subprocesses: {ratio:.1f}x")
    print(f"pipreqs / ours in process (what clearml-task itself pays): {ratio_in_process:.1f}x")
    for label, found in (("ours", ours_score), ("pipreqs", theirs_score)):
        print(f"{label} missed: {', '.join(found.missed) or '-'}")
        print(f"{label} extra:  {', '.join(found.extra) or '-'}")
    print()
    met = [
        ("recall >= 95%", ours_score.recall >= AIM_RECALL),
        ("precision >= 90%", ours_score.precision >= AIM_PRECISION),
        (f">= {AIM_RATIO:.0f}x faster than pipreqs (subprocesses)", ratio >= AIM_RATIO),
    ]
    print("aims (ours): " + "; ".join(f"{what}: {'met' if ok else 'NOT met'}" for what, ok in met))
    print(f"runs (s), ours: {' '.join(f'{t:.3f}' for t in ours.times)}")
    print(f"runs (s), pipreqs: {' '.join(f'{t:.3f}' for t in theirs.times)}")
    print(f"runs (s), ours in process: {' '.join(f'{t:.3f}' for t in in_process)}")
    print(f"ours: {ours.lines}")
    print(f"pipreqs: {theirs.lines}")


if __name__ == "__main__":
    main()
