"""Hostile task documents: each is created with tasks.create on the real server and run by the real
`clearml-launcher execute`. None may run a command before the task's own code, nor make the launcher read,
build or write outside the checkout: a canary file must not appear, and the task fails with a status message
that names the field (or file) and why, in one line, quoting no file's content."""

from __future__ import annotations

import io
import json
import re
import shlex
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clearml_task import config
from clearml_task.api import Client
from clearml_task.errors import APICallError
from clearml_task.request import Request
from clearml_task.submit import prepare
from testing.launching import launcher, log_lines
from testing.repos import Repo, make_repo

SECRET = "secret-content-xyz"


@pytest.fixture
def jobs(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "jobs", "jobs")


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    return tmp_path / "canary"


@pytest.fixture
def outside(tmp_path: Path, canary: Path) -> Path:
    """A directory outside every checkout: a script, a build backend and a shell script that each create the
    canary when they run, and a file whose content must never be quoted."""
    where = tmp_path / "outside"
    (where / "pkg").mkdir(parents=True)
    touch = f"import pathlib; pathlib.Path({str(canary)!r}).touch()\n"
    (where / "x.py").write_text(touch)
    (where / "pkg" / "setup.py").write_text(touch + "from setuptools import setup\nsetup(name='pkg')\n")
    (where / "evil.sh").write_text(f"#!/bin/sh\ntouch {shlex.quote(str(canary))}\n")
    (where / "evil.sh").chmod(0o755)
    (where / "secret.txt").write_text(f"{SECRET}:x:0:0:/root:/bin/bash\n")
    return where


def create(repo: Repo, *, requirements: dict[str, Any] | None = None, **script: Any) -> str:
    """clearml-task's document for `repo` (train.py, no requirements), `script` fields replaced, created with
    tasks.create."""
    request = Request(
        project="launcher",
        name="hostile",
        folder=str(repo.work),
        script="train.py",
        force_no_requirements=True,
    )
    document = prepare(request).document
    document["script"]["requirements"] = requirements if requirements is not None else {"source": "none"}
    document["script"].update(script)
    client = Client()
    return client.create_task({**document, "project": client.project_id("launcher")})


def refused(task_id: str, field: str, canary: Path) -> str:
    """The task failed without running anything of its own; its one-line status names `field`."""
    result = launcher("execute", "--id", task_id)
    assert result.returncode == 1, result.stdout + result.stderr
    task = Client().get_task(task_id)
    message = task["status_message"]
    assert task["status"] == "failed" and field in message and "\n" not in message, message
    assert not canary.exists()
    assert SECRET not in message and not any(SECRET in line for line in log_lines(task_id))
    return str(message)


# ----------------------------------------------------------------------------------- what git is handed
def hostile_repositories(canary: Path) -> list[str]:
    touch = f"touch {canary}"
    return [
        f"--upload-pack={touch};",
        f"--config=core.sshCommand={touch}",
        f"ext::sh -c {touch.replace(' ', '% ')}",
        f"ssh://-oProxyCommand={touch.replace(' ', '%20')}/repo.git",
        f"-oProxyCommand={touch}:repo.git",
        "ftp://example.com/repo.git",
    ]


@pytest.mark.parametrize("case", range(6))
@pytest.mark.parametrize("commit", [True, False], ids=["at-a-commit", "default-branch"])
def test_a_repository_that_is_not_a_repository_is_refused(
    jobs: Repo, canary: Path, case: int, commit: bool
) -> None:
    url = hostile_repositories(canary)[case]
    task_id = create(jobs, repository=url, **({} if commit else {"version_num": "", "branch": ""}))
    refused(task_id, "script.repository", canary)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("branch", "--upload-pack=touch x"),
        ("branch", "main;touch x"),
        ("tag", "-v1"),
        ("tag", "v1..v2"),
        ("version_num", "HEAD~1"),
        ("version_num", "--all"),
    ],
)
def test_refs_and_commits_are_what_they_say(jobs: Repo, canary: Path, field: str, value: str) -> None:
    fields = {"version_num": "", field: value}
    refused(create(jobs, **fields), f"script.{field}", canary)


def test_a_submodule_cannot_name_a_command(jobs: Repo, canary: Path) -> None:
    url = f"ext::sh -c touch% {canary}"
    jobs.write(".gitmodules", f'[submodule "sub"]\n\tpath = sub\n\turl = {url}\n')
    head = jobs.git("rev-parse", "HEAD")
    jobs.git("add", ".gitmodules")
    jobs.git("update-index", "--add", "--cacheinfo", f"160000,{head},sub")
    jobs.git("commit", "-q", "-m", "a submodule")
    jobs.git("push", "-q", "origin", "main")
    message = refused(create(jobs), "submodules", canary)
    assert "transport 'ext' not allowed" in message


# -------------------------------------------------------------------------- what runs, and where
def entry_points(outside: Path) -> list[str]:
    return [
        "../../x.py",  # the launcher's home: a checkout is <home>/work/<task>
        str(outside / "x.py"),
        f"-cimport pathlib; pathlib.Path({str(outside)!r}).touch()",
        "-m os;x",
        "--version",
    ]


@pytest.mark.parametrize("case", range(5))
def test_an_entry_point_stays_in_the_checkout(jobs: Repo, outside: Path, canary: Path, case: int) -> None:
    launcher_home = config.home() / "launcher"
    launcher_home.mkdir(parents=True, exist_ok=True)
    (launcher_home / "x.py").write_text((outside / "x.py").read_text())
    refused(create(jobs, entry_point=entry_points(outside)[case]), "script.entry_point", canary)


def test_an_entry_point_stays_in_the_checkout_in_standalone_mode(outside: Path, canary: Path) -> None:
    client = Client()
    for entry in ("../../x.py", str(outside / "y.py")):
        script = {"repository": "", "diff": "print(1)\n", "entry_point": entry, "working_dir": "."}
        task_id = client.create_task(
            {
                "name": "standalone",
                "type": "training",
                "script": script,
                "project": client.project_id("launcher"),
            }
        )
        refused(task_id, "script.entry_point", canary)
    assert not (outside / "y.py").exists()


def test_a_symlinked_entry_point_or_working_dir_is_refused(jobs: Repo, outside: Path, canary: Path) -> None:
    (jobs.work / "link.py").symlink_to(outside / "x.py")
    (jobs.work / "elsewhere").symlink_to(outside)
    jobs.commit("links")
    jobs.git("push", "-q", "origin", "main")
    refused(create(jobs, entry_point="link.py"), "script.entry_point", canary)
    refused(create(jobs, working_dir="elsewhere", entry_point="x.py"), "script.working_dir", canary)


@pytest.mark.parametrize("working_dir", ["../..", "/tmp"])
def test_a_working_dir_stays_in_the_checkout(jobs: Repo, canary: Path, working_dir: str) -> None:
    refused(create(jobs, working_dir=working_dir), "script.working_dir", canary)


@pytest.mark.parametrize("binary", ["evil.sh", "sh -c 'touch x'", "--version", "python3; touch x"])
def test_the_binary_must_be_a_python(jobs: Repo, outside: Path, canary: Path, binary: str) -> None:
    shown = str(outside / binary) if binary == "evil.sh" else binary
    refused(create(jobs, binary=shown), "script.binary", canary)


# ------------------------------------------------------------------------------------- what uv is given
Lines = Callable[[Path], str]


@pytest.mark.parametrize(
    "line",
    [
        lambda outside: f"-e {outside / 'pkg'}",
        lambda outside: f"--editable={outside / 'pkg'}",
        lambda outside: str(outside / "pkg"),
        lambda outside: f"pkg @ file://{outside / 'pkg'}",
        lambda outside: f"pkg @ git+file://{outside / 'pkg'}",
        lambda outside: f"-f {outside}",
        lambda outside: "-e ../../../../outside/pkg",
        lambda outside: "sub/../../../../../outside/pkg",  # a path to uv, though it starts with no . or /
        lambda outside: "-e ${CLEARML_TASK_HOME}/../outside/pkg",  # uv fills in the launcher's variables
        lambda outside: f"\ufeff-e {outside / 'pkg'}",  # uv drops the byte-order mark; the checks saw a name
        lambda outside: f"pkg [x] @ {outside / 'pkg'}",  # a space before the extras
    ],
)
def test_task_requirements_name_no_path_outside(jobs: Repo, outside: Path, canary: Path, line: Lines) -> None:
    requirements = {"source": "given", "pip": f"{line(outside)}\n"}
    refused(create(jobs, requirements=requirements), "script.requirements.pip", canary)


def declared(jobs: Repo, name: str, content: str | None = None, link: Path | None = None) -> str:
    """`name` committed into the repository (as content, or a symlink to `link`) and pushed; a task that
    installs what the repository declares."""
    if link is not None:
        (jobs.work / name).unlink(missing_ok=True)
        (jobs.work / name).symlink_to(link)
    else:
        jobs.write(name, content or "")
    jobs.commit(f"declare {name}")
    jobs.git("push", "-q", "origin", "main")
    return create(jobs, requirements={})


@pytest.mark.parametrize(
    "content",
    [
        lambda outside: f"-r {outside / 'secret.txt'}\n",
        lambda outside: "-r ../../../../outside/secret.txt\n",
        lambda outside: f"-c {outside / 'secret.txt'}\n",
        lambda outside: f"-e {outside / 'pkg'}\n",
        lambda outside: f"{outside / 'pkg'}\n",
        lambda outside: f"\ufeff-r {outside / 'secret.txt'}\n",
    ],
)
def test_repository_requirements_stay_in_the_checkout(
    jobs: Repo, outside: Path, canary: Path, content: Lines
) -> None:
    refused(declared(jobs, "requirements.txt", content(outside)), "requirements.txt", canary)


def test_a_symlinked_requirements_file_is_not_read(jobs: Repo, outside: Path, canary: Path) -> None:
    task_id = declared(jobs, "requirements.txt", link=outside / "secret.txt")
    assert "symlink" in refused(task_id, "requirements.txt", canary)


PYPROJECT = '[project]\nname = "jobs"\nversion = "0.1"\ndependencies = []\n'


@pytest.mark.parametrize("existing", [True, False], ids=["to-a-file", "dangling"])
def test_a_symlinked_lock_is_neither_read_nor_written(
    jobs: Repo, outside: Path, canary: Path, existing: bool
) -> None:
    (jobs.work / "requirements.txt").unlink()
    jobs.write("pyproject.toml", PYPROJECT)
    target = outside / "lock"
    if existing:
        target.write_text("version = 1\n")
    task_id = declared(jobs, "uv.lock", link=target)
    assert "symlink" in refused(task_id, "uv.lock", canary)
    assert target.read_text() == "version = 1\n" if existing else not target.exists()


def test_an_index_is_honoured_and_logged_without_its_credentials(jobs: Repo, canary: Path) -> None:
    pip = "--index-url https://user:hunter2@127.0.0.1:9/simple?token=abc\nthis-package-does-not-exist-xyz\n"
    task_id = create(jobs, requirements={"source": "given", "pip": pip})
    result = launcher("execute", "--id", task_id)
    assert result.returncode == 1
    lines = log_lines(task_id)
    assert "environment: package indexes: --index-url https://127.0.0.1:9/simple" in lines
    task = Client().get_task(task_id)
    assert task["status"] == "failed" and "requirements" in task["status_message"]
    for text in (task["status_message"], *lines, result.stdout, result.stderr):
        assert "hunter2" not in text and "token=abc" not in text


def test_no_requirement_line_names_a_variable_of_the_launchers(jobs: Repo, canary: Path) -> None:
    """uv fills ${NAME} in from its environment, which holds the server's keys: an index URL naming one
    would send them to whoever runs the index. Refused, in the task's lines and in the repository's."""
    line = "--extra-index-url http://127.0.0.1:9/${CLEARML_API_SECRET_KEY}/simple"
    message = refused(create(jobs, requirements={"source": "given", "pip": f"{line}\nsix\n"}),
                      "script.requirements.pip", canary)  # fmt: skip
    assert "environment variable" in message
    assert "environment variable" in refused(declared(jobs, "requirements.txt", f"{line}\nsix\n"),
                                             "requirements.txt", canary)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("uv.toml", lambda outside: f'[pip]\nfind-links = ["{outside}"]\n'),
        ("uv.toml", lambda outside: f'find-links = ["{outside}"]\n'),
        ("uv.toml", lambda outside: f'[pip]\ntarget = "{outside}/target"\n'),
        (
            "uv.toml",
            lambda outside: '[pip]\nextra-index-url = ["http://127.0.0.1:9/${CLEARML_API_SECRET_KEY}"]\n',
        ),
        ("uv.toml", lambda outside: f'\ufeff[pip]\nfind-links = ["{outside}"]\n'),  # uv reads past the mark
        ("uv.toml", lambda outside: '[pip]\nconfig-settings = { a = "b", }\n'),  # uv reads it; TOML 1.0 not
        ("pyproject.toml", lambda outside: f'[tool.uv]\nfind-links = ["{outside}"]\n'),
        (
            "pyproject.toml",
            lambda outside: f'[[tool.uv.index]]\nname = "x"\nurl = "file://{outside}/simple"\n',
        ),
    ],
)
def test_the_repositorys_uv_settings_name_no_path_outside(
    jobs: Repo, outside: Path, canary: Path, name: str, settings: Lines
) -> None:
    """uv reads the checkout's uv.toml and [tool.uv] as it installs: a find-links there to a directory
    outside would have it build a package from there, a target would have it write there."""
    local_index(outside, canary)
    jobs.write(name, settings(outside))
    refused(declared(jobs, "requirements.txt", "evilpkg\n"), name, canary)
    assert not (outside / "target").exists()


def test_a_poetry_lock_installs_nothing_from_outside(jobs: Repo, outside: Path, canary: Path) -> None:
    """A poetry.lock whose package comes from a directory outside the checkout is refused before Poetry
    runs."""
    (jobs.work / "requirements.txt").unlink()
    jobs.write("pyproject.toml", '[tool.poetry]\nname = "jobs"\nversion = "0.1"\n[tool.poetry.dependencies]\n'
               'python = "^3.8"\n')  # fmt: skip
    lock = (f'[[package]]\nname = "pkg"\nversion = "0.1"\n[package.source]\ntype = "directory"\n'
            f'url = "{outside / "pkg"}"\n[metadata]\nlock-version = "2.0"\n')  # fmt: skip
    assert "outside the checkout" in refused(declared(jobs, "poetry.lock", lock), "poetry.lock", canary)


def test_uv_settings_that_are_no_paths_pass(jobs: Repo) -> None:
    """A build's environment variables (flash-attn's CUDA_HOME) and the like are settings, not paths uv
    reads: a task with them runs."""
    jobs.write("uv.toml", '[extra-build-variables]\nflash-attn = { CUDA_HOME = "/usr/local/cuda" }\n')
    task_id = declared(jobs, "requirements.txt", "six==1.16.0\n")
    result = launcher("execute", "--id", task_id)
    assert result.returncode == 0, result.stdout + result.stderr + str(log_lines(task_id)[-5:])


def test_an_environment_built_under_uv_settings_serves_only_the_same_settings(jobs: Repo) -> None:
    """The checkout's uv settings are part of the environment's cache key: a task with the same requirements
    and no such settings gets an environment of its own, never one another task's settings built."""
    jobs.write("uv.toml", '[pip]\nexclude-newer = "2100-01-01T00:00:00Z"\n')
    with_settings = declared(jobs, "requirements.txt", "six==1.16.0\n")
    assert launcher("execute", "--id", with_settings).returncode == 0
    (jobs.work / "uv.toml").unlink()
    without = declared(jobs, "requirements.txt", "six==1.16.0\n")
    assert launcher("execute", "--id", without).returncode == 0
    again = create(jobs, requirements={})  # the same commit: its environment is reused
    assert launcher("execute", "--id", again).returncode == 0
    built = [[line for line in log_lines(task) if line.startswith("environment: built")] for task in
             (with_settings, without, again)]  # fmt: skip
    assert built[0] and built[1] and not built[2], built


def test_the_launchers_own_python_is_fine(jobs: Repo, canary: Path) -> None:
    """The checks let an ordinary task through: script.binary as clearml-task records it, or a full path."""
    for binary in (f"python{sys.version_info[0]}.{sys.version_info[1]}", sys.executable):
        task_id = create(jobs, binary=binary)
        result = launcher("execute", "--id", task_id)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "tail",
    [
        lambda outside: f'dependencies = ["pkg @ file://{outside / "pkg"}"]\n',
        lambda outside: (
            f'dependencies = ["pkg"]\n[tool.uv.sources]\npkg = {{ path = "{outside / "pkg"}" }}\n'
        ),
        lambda outside: 'dependencies = []\n[tool.uv.workspace]\nmembers = ["../../../../outside/pkg"]\n',
        lambda outside: (
            f'dependencies = []\n[tool.uv]\ndev-dependencies = ["pkg @ file://{outside / "pkg"}"]\n'
        ),
        lambda outside: (
            f'dependencies = []\n[tool.uv]\noverride-dependencies = ["pkg @ file://{outside / "pkg"}"]\n'
        ),
        lambda outside: f'dependencies = []\n[build-system]\nrequires = ["pkg @ file://{outside / "pkg"}"]\n',
        lambda outside: (
            f'dependencies = []\n[tool.poetry.dependencies]\npkg = {{ path = "{outside / "pkg"}" }}\n'
        ),
    ],
)
def test_a_pyproject_names_no_path_outside(jobs: Repo, outside: Path, canary: Path, tail: Lines) -> None:
    (jobs.work / "requirements.txt").unlink()
    pyproject = f'[project]\nname = "jobs"\nversion = "0.1"\n{tail(outside)}'
    refused(declared(jobs, "pyproject.toml", pyproject), "pyproject.toml", canary)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"entry_point": ".git/config"}, "script.entry_point"),
        ({"working_dir": ".git", "entry_point": "config"}, "script.working_dir"),
        ({"entry_point": "sub/../.GIT/config"}, "script.entry_point"),
        ({"entry_point": "git/config"}, "script.entry_point"),  # git -> .git, a symlink in the commit
    ],
)
def test_a_script_is_never_written_into_git_s_own_directory(
    jobs: Repo, canary: Path, fields: dict[str, str], field: str
) -> None:
    """A script in script.diff (not a patch) is written to working_dir/entry_point: never over .git/config,
    whose core.fsmonitor the tree check's `git add` would run."""
    (jobs.work / "git").symlink_to(".git")
    jobs.commit("a link to .git")
    jobs.git("push", "-q", "origin", "main")
    config = f"[core]\n\tfsmonitor = touch {canary}\n"
    task_id = create(jobs, diff=config, **fields)
    task = Client().get_task(task_id)
    assert task["runtime"]["worktree_tree"]  # the tree check runs git in the checkout
    refused(task_id, field, canary)


# ---------------------------------------------------------------- what no path, argv or environment holds
def edited(task_id: str, **fields: Any) -> str:
    """tasks.edit. A value our server refuses (a lone surrogate, which is not text) goes into its store
    directly, as another server (ClearML's keeps them) or an earlier version would hand it over: the
    launcher must refuse it all the same."""
    if not re.search("[\ud800-\udfff]", json.dumps(fields, ensure_ascii=False)):
        Client().call("tasks.edit", {"task": task_id, "force": True, **fields})
        return task_id
    with pytest.raises(APICallError, match="lone surrogate"):
        Client().call("tasks.edit", {"task": task_id, "force": True, **fields})
    from clearml_task.server.app import DB_FILE
    from clearml_task.server.store import Store

    store = Store(config.server_dir() / DB_FILE)
    try:
        with store.transaction(write=True) as tx:
            task = tx.get("tasks", task_id)
            assert task is not None
            tx.put("tasks", {**task, **fields})
    finally:
        store.close()
    return task_id


def param(section: str, name: str, value: str) -> dict[str, Any]:
    return {section: {name: {"section": section, "name": name, "value": value}}}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"hyperparams": param("Environment", "A=B", "1")}, "hyperparams.Environment"),
        ({"hyperparams": param("Environment", "A", "x\x00y")}, "hyperparams.Environment"),
        ({"hyperparams": param("Environment", "A", "x\ud800")}, "hyperparams.Environment"),
        ({"hyperparams": param("Args", "epochs", "1\x002")}, "hyperparams.Args"),
        ({"hyperparams": param("Args", "epochs", "\udfff")}, "hyperparams.Args"),
        ({"script": {"branch": "\ud800", "version_num": ""}}, "script.branch"),
        ({"script": {"entry_point": "\ud800.py"}}, "script.entry_point"),
        ({"script": {"entry_point": "-m os \ud800"}}, "script.entry_point"),
        ({"script": {"working_dir": "\ud800"}}, "script.working_dir"),
        ({"script": {"repository": "/tmp/\ud800"}}, "script.repository"),
        ({"script": {"diff": "print('\ud800')\n"}}, "script.diff"),
        ({"runtime": {"worktree_tree": "--output=x"}}, "runtime.worktree_tree"),
        ({"runtime": {"worktree_tree": "\ud800"}}, "runtime.worktree_tree"),
        (
            {"script": {"requirements": {"source": "given", "pip": "numpy\ud800\n"}}},
            "script.requirements.pip",
        ),
    ],
)
def test_a_value_no_process_can_take_fails_the_task(
    jobs: Repo, canary: Path, fields: dict[str, Any], field: str
) -> None:
    """A NUL, a lone surrogate, an '=' in a variable's name: no command line or environment can hold
    them. The task fails naming the field (it was left in_progress, the launcher ending in a traceback)."""
    task_id = create(jobs)
    script = {**Client().get_task(task_id)["script"], **fields.pop("script", {})}
    refused(edited(task_id, script=script, **fields), field, canary)


def test_a_refusal_quoting_a_huge_value_is_one_short_line(jobs: Repo, canary: Path) -> None:
    """A refusal quotes the value it refuses: a 100 KB entry point made a 100 KB status message. It is one
    line of at most 1000 characters; the log has the whole text."""
    for fields, field in (
        ({"entry_point": "a" * 100_000 + ".py"}, "script.entry_point"),
        ({"entry_point": "/".join(["d"] * 30_000) + ".py"}, "script.entry_point"),
        ({"working_dir": "b" * 100_000}, "script.working_dir"),
        ({"branch": "c" * 100_000, "version_num": ""}, "no branch"),
    ):
        message = refused(create(jobs, **fields), field, canary)
        assert len(message) <= 1000, len(message)


def test_a_process_the_system_cannot_start_says_why(jobs: Repo, canary: Path) -> None:
    """A variable longer than the kernel lets one string of a new process be (128 KiB): the process cannot
    start, and the status message says why, not only "exit code 127"."""
    task_id = create(jobs)
    big = {"Environment": {"BIG": {"section": "Environment", "name": "BIG", "value": "x" * 200_000}}}
    message = refused(edited(task_id, hyperparams=big), "exit code 127", canary)
    assert "Argument list too long" in message, message


def notebook(source: str) -> str:
    cell = {"cell_type": "code", "metadata": {}, "source": [source], "outputs": [], "execution_count": None}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_a_notebook_s_script_is_never_written_through_a_symlink(jobs: Repo, outside: Path) -> None:
    """A notebook runs as its code cells written beside it: a symlink the commit holds at that name is
    replaced, never written through (it put the notebook's code into any file the worker's user may write)."""
    victim = outside / "victim.txt"
    victim.write_text("untouched\n")
    jobs.write("nb.ipynb", notebook("print('from the notebook')\n"))
    (jobs.work / ".nb.ipynb.py").symlink_to(victim)
    jobs.commit("a notebook")
    jobs.git("push", "-q", "origin", "main")
    task_id = create(jobs, entry_point="nb.ipynb")
    result = launcher("execute", "--id", task_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "from the notebook" in log_lines(task_id)
    assert victim.read_text() == "untouched\n"


def test_a_notebook_that_is_not_text_fails_the_task(jobs: Repo, canary: Path) -> None:
    jobs.write("nb.ipynb", b"\xff\xfe\x00 not a notebook")
    jobs.commit("a notebook")
    jobs.git("push", "-q", "origin", "main")
    refused(create(jobs, entry_point="nb.ipynb"), "nb.ipynb", canary)


def local_index(where: Path, canary: Path) -> None:
    """A package index in `where/simple` (file:// URLs) with one sdist whose in-tree build backend creates
    the canary: whoever builds it runs code from outside the checkout."""
    files = {
        "PKG-INFO": "Metadata-Version: 2.1\nName: evilpkg\nVersion: 0.1\n",
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        '[project]\nname = "evilpkg"\nversion = "0.1"\n',
        "backend.py": f"import pathlib\npathlib.Path({str(canary)!r}).touch()\n",
    }
    with tarfile.open(where / "evilpkg-0.1.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"evilpkg-0.1/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    page = where / "simple" / "evilpkg" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text('<a href="../../evilpkg-0.1.tar.gz">evilpkg</a>\n')


@pytest.mark.parametrize("option", ["--index-url", "--extra-index-url=", "-i", "-i="])
@pytest.mark.parametrize("where", ["task", "repository"])
def test_an_index_outside_the_checkout_is_refused(
    jobs: Repo, outside: Path, canary: Path, option: str, where: str
) -> None:
    local_index(outside, canary)
    line = f"{option}{'' if option.endswith('=') else ' '}file://{outside}/simple"
    if where == "task":
        task_id = create(jobs, requirements={"source": "given", "pip": f"{line}\nevilpkg\n"})
        refused(task_id, "script.requirements.pip", canary)
    else:
        refused(declared(jobs, "requirements.txt", f"{line}\nevilpkg\n"), "requirements.txt", canary)
