"""What the user asked for is what runs, end to end: `--args` reach the script's parser as asked under our
launcher (with the clearml SDK installed in the task's environment and without it), and a notebook runs as
its code cells. Real repositories, the real CLI as a subprocess, the real launcher and uv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testing.launching import launcher, log_lines, status
from testing.repos import Repo, make_repo
from testing.servers import ROOT

ACCUMULATING = """import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("--tag", action="append", default=[])
parser.add_argument("-v", "--verbose", action="count", default=0)
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()
print("seen " + json.dumps(vars(args), sort_keys=True))
"""


def clearml_task(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clearml_task", "--project", "args", *argv],
        capture_output=True, text=True, cwd=ROOT, timeout=120, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip


def created(*argv: str) -> str:
    result = clearml_task(*argv)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("Task created", 1)[1].split(":", 1)[1].split()[0]


def seen(task_id: str) -> dict[str, object]:
    """What the script printed of its parsed arguments, after the launcher ran it to completion."""
    result = launcher("execute", "--id", task_id)
    lines = log_lines(task_id)
    assert result.returncode == 0 and status(task_id) == "completed", result.stdout + str(lines)
    found: dict[str, object] = json.loads(next(line for line in lines if line.startswith("seen "))[5:])
    return found


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    made = make_repo(tmp_path / "jobs", "jobs")
    made.write("accumulate.py", ACCUMULATING)
    return made


ASKED = ["--args", "tag=[a, b]", "verbose=2", "epochs=3"]
WANTED = {"tag": ["a", "b"], "verbose": 2, "epochs": 3}


def test_append_and_count_arrive_without_the_sdk(repo: Repo) -> None:
    """Task.init is injected but nothing is installed: the command line gives every value."""
    task_id = created("--name", "no sdk", "--folder", str(repo.work), "--script", "accumulate.py", *ASKED,
                      "--force-no-requirements")  # fmt: skip
    assert seen(task_id) == WANTED
    assert "launcher: arguments (argparse): --tag a --tag b -v -v --epochs 3" in log_lines(task_id)


def test_append_and_count_arrive_with_the_sdk(repo: Repo) -> None:
    """With clearml installed the SDK gives the list from Args; the count (which the SDK would read back as
    a list) is left out of its binding by the injected Task.init and given on the command line."""
    task_id = created("--name", "sdk", "--folder", str(repo.work), "--script", "accumulate.py", *ASKED)
    assert seen(task_id) == WANTED
    assert "launcher: arguments (argparse): -v -v --epochs 3" in log_lines(task_id)


SECRETIVE = """import argparse
import hashlib

parser = argparse.ArgumentParser()
parser.add_argument("--api-token")
parser.add_argument("--password")
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()
print("got", hashlib.sha256(f"{args.api_token}/{args.password}".encode()).hexdigest(), args.epochs)
"""


def test_a_secret_named_argument_reaches_the_script_but_no_log_line(repo: Repo) -> None:
    """`--args api_token=... password=...`: the script gets both values; clearml-task's summary and the
    launcher's log lines (the arguments, the command it runs), which every user of the server can read,
    show `***` in their place."""
    import hashlib

    repo.write("secretive.py", SECRETIVE)
    result = clearml_task("--name", "secretive", "--folder", str(repo.work), "--script", "secretive.py",
                          "--args", "api_token=ARGSECRET1", "password=ARGSECRET2", "epochs=2",
                          "--force-no-requirements")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ARGSECRET" not in result.stdout + result.stderr and "password=***" in result.stdout
    task_id = result.stdout.split("Task created", 1)[1].split(":", 1)[1].split()[0]
    ran = launcher("execute", "--id", task_id)
    lines = log_lines(task_id)
    assert ran.returncode == 0 and status(task_id) == "completed", ran.stdout + str(lines)
    expected = hashlib.sha256(b"ARGSECRET1/ARGSECRET2").hexdigest()
    assert f"got {expected} 2" in lines
    assert not [line for line in lines if "ARGSECRET" in line], lines
    assert not [line for line in ran.stdout.splitlines() if "ARGSECRET" in line]
    shown = [line for line in lines if line.startswith(("launcher: arguments", "launcher: running"))]
    assert any("--password ***" in line for line in shown), shown


def notebook(*cells: tuple[str, str]) -> str:
    """An nbformat 4 notebook of (cell type, source) pairs."""
    return json.dumps({
        "cells": [{"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True),
                   **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                  for kind, text in cells],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    })  # fmt: skip


def test_a_notebook_runs_as_its_code_cells_in_order(repo: Repo) -> None:
    repo.write("helper.py", "WORD = 'neighbour'\n")
    repo.write("nb.ipynb", notebook(
        ("markdown", "# A title\n!not code"),
        ("code", "import helper\nsteps = []\nsteps.append('one')"),
        ("code", "steps.append('two')\nprint('notebook ran', steps, helper.WORD)"),
    ))  # fmt: skip
    task_id = created("--name", "notebook", "--folder", str(repo.work), "--script", "nb.ipynb",
                      "--force-no-requirements")  # fmt: skip
    result = launcher("execute", "--id", task_id)
    lines = log_lines(task_id)
    assert result.returncode == 0 and status(task_id) == "completed", result.stdout + str(lines)
    assert "notebook ran ['one', 'two'] neighbour" in lines
    assert "launcher: nb.ipynb runs as .nb.ipynb.py (its code cells, in order)" in lines


def test_a_notebook_with_magics_is_refused_naming_the_cell(repo: Repo) -> None:
    repo.write("nb.ipynb", notebook(("code", "x = 1"), ("code", "import os\n!pip install six")))
    result = clearml_task("--name", "magic", "--folder", str(repo.work), "--script", "nb.ipynb")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nb.ipynb code cell 2 line 2 is a shell command, which runs only in Jupyter" in result.stderr


POSITIONALS = """import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("infile")
parser.add_argument("outfile", nargs="?", default="out.txt")
parser.add_argument("--n", type=int, default=1)
print("seen " + json.dumps(vars(parser.parse_args()), sort_keys=True))
"""


def test_positionals_given_in_args_reach_the_script_in_order(repo: Repo) -> None:
    repo.write("positional.py", POSITIONALS)
    task_id = created("--name", "positionals", "--folder", str(repo.work), "--script", "positional.py",
                      "--args", "outfile=b.txt", "n=2", "infile=a.txt", "--skip-task-init")  # fmt: skip
    assert seen(task_id) == {"infile": "a.txt", "outfile": "b.txt", "n": 2}
    empty = clearml_task("--name", "empty", "--folder", str(repo.work), "--script", "positional.py",
                         "--args", "infile=")  # fmt: skip
    assert empty.returncode == 2 and "positional.py requires a value for infile" in empty.stderr


def test_hydra_overrides_are_checked_against_the_config_in_the_repository(tmp_path: Path) -> None:
    args = make_repo(tmp_path / "args", "args")
    typo = clearml_task("--name", "hydra", "--folder", str(args.work), "--script", "hydra_app.py",
                        "--args", "db.prot=6000")  # fmt: skip
    assert typo.returncode == 2 and "Traceback" not in typo.stderr
    assert (
        "the Hydra config of hydra_app.py (conf/config.yaml) has no key 'db.prot'; did you mean db.port?"
        in (typo.stderr)
    )
    added = clearml_task("--name", "hydra", "--folder", str(args.work), "--script", "hydra_app.py",
                         "--args", "db.port=6000", "+db.user=me")  # fmt: skip
    assert added.returncode == 0, added.stderr


MODULE = """import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--fast", action="store_true")
parser.add_argument("data")
print("seen " + json.dumps(vars(parser.parse_args()), sort_keys=True))
"""


def test_arguments_after_a_modules_name_are_recorded_and_args_edits_win(repo: Repo) -> None:
    """`--module "tool.run --steps 7 --fast data.csv"` (as ClearML's clearml-task takes it): Args holds
    what runs, the words stay in the entry point (ClearML's agent runs them as written), and under our
    launcher an edit of Args wins, also back to a default; a task whose Args lack them (made by ClearML's
    tools) runs the words as written."""
    from clearml_task.api import Client

    repo.write("tool/__init__.py", "")
    repo.write("tool/run.py", MODULE)
    flags = [
        "--folder",
        str(repo.work),
        "--module",
        "tool.run --steps 7 --fast data.csv",
        "--force-no-requirements",
    ]
    first = created("--name", "module words", *flags)
    task = Client().get_task(first)
    assert task["script"]["entry_point"] == "-m tool.run --steps 7 --fast data.csv"
    args = {key: entry["value"] for key, entry in task["hyperparams"]["Args"].items()}
    assert args == {"steps": "7", "fast": "True", "data": "data.csv"}
    assert seen(first) == {"steps": 7, "fast": True, "data": "data.csv"}
    assert "launcher: -m tool.run --steps 7 --fast data.csv runs as -m tool.run with the values " \
           "hyperparams.Args holds" in log_lines(first)  # fmt: skip

    edited = created("--name", "module words edited", *flags)
    hyper = Client().get_task(edited)["hyperparams"]
    hyper["Args"]["steps"]["value"], hyper["Args"]["fast"]["value"] = "10", "False"
    Client().edit_task(edited, hyperparams=hyper)
    assert seen(edited) == {"steps": 10, "fast": False, "data": "data.csv"}

    theirs = created("--name", "module words theirs", *flags)
    Client().edit_task(theirs, hyperparams={})
    assert seen(theirs) == {"steps": 7, "fast": True, "data": "data.csv"}


def test_arguments_after_a_modules_name_are_checked_as_args_are(repo: Repo) -> None:
    repo.write("tool/__init__.py", "")
    repo.write("tool/run.py", MODULE)
    flags = ["--name", "module words wrong", "--folder", str(repo.work)]
    cases = [
        ("tool.run --steps 7 --bogus x", "'--bogus' is not one of its options (run.py)"),
        ("tool.run --steps", "'--steps' needs a value"),
        ("tool.run a.csv b.csv", "'b.csv': one positional argument too many"),
        ("tool.run --fast=1 a.csv", "'--fast=1': a switch takes no value"),
        ("tool.run --steps 7 --steps 8 a.csv", "steps is given twice"),
        ("tool.run 'a.csv", "its quotes do not close"),
    ]
    for module, text in cases:
        result = clearml_task(*flags, "--module", module)
        assert result.returncode == 2 and text in result.stderr and "Traceback" not in result.stderr, (
            result.stderr
        )
    twice = clearml_task(*flags, "--module", "tool.run --steps 7 a.csv", "--args", "steps=8")
    assert twice.returncode == 2 and "steps is given both after --module's name and in --args" in twice.stderr
    shortened = clearml_task(*flags, "--module", "tool.run --ste 7 a.csv", "--force-no-requirements")
    assert shortened.returncode == 0, shortened.stderr
    assert "the arguments after the module's name are passed as written, and Args does not show them" in (
        shortened.stdout + shortened.stderr
    )
    from clearml_task.api import Client

    names = [task["name"] for task in Client().tasks(name="module words wrong")]
    assert names == ["module words wrong"]  # only the one that was accepted
