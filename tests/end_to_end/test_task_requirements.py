"""Requirements end to end: what clearml-task records in the task (and shows), and what the launcher installs
from it. Real repositories from fixtures/repos, the real CLI as a subprocess, real uv."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from clearml_task.api import Client
from clearml_task.requirements import decide, directory_reader
from testing.launching import launcher, log_lines, status
from testing.pins import expected
from testing.repos import Repo, make_repo
from testing.servers import ROOT


def clearml_task(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clearml_task", "--project", "reqs", *argv],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "COLUMNS": "250", **(env or {})},
    )  # fmt: skip


def created(*argv: str, env: dict[str, str] | None = None) -> tuple[dict[str, object], str]:
    """(the task, clearml-task's text output) for a task created with `argv`."""
    result = clearml_task(*argv, env=env)
    assert result.returncode == 0, result.stderr
    task_id = result.stdout.split("Task created", 1)[1].split(":", 1)[1].split()[0]
    return Client().get_task(task_id), result.stdout


def requirements_of(task: dict[str, object]) -> dict[str, str]:
    script = task["script"]
    assert isinstance(script, dict)
    found: dict[str, str] = script["requirements"]
    return found


@pytest.fixture
def detect_repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "detect", "reqs_detect")


def test_detected_lines_are_recorded_and_each_is_shown_with_its_origin(detect_repo: Repo) -> None:
    task, out = created("--name", "detected", "--folder", str(detect_repo.work), "--script", "train.py")
    recorded = requirements_of(task)
    assert recorded["source"] == "detected"
    lines = recorded["pip"].splitlines()
    assert expected("PyYAML") in lines and expected("beautifulsoup4") in lines  # yaml, bs4
    assert "opencv-python" in lines or expected("opencv-python") in lines  # cv2
    assert lines[-1] == "clearml"  # Task.init() was injected
    decided = decide(read=directory_reader(detect_repo.work), entry_point="train.py", add_clearml=True)
    assert lines == decided.lines
    assert "detected from the entry point's imports" in out
    shown = [line.split("←") for line in out.splitlines() if "←" in line]
    summary = {line.strip(): origin.strip() for line, origin in shown}
    assert summary[expected("PyYAML")].startswith("import yaml (train.py:")
    assert summary["clearml"] == "Task.init() is injected into the entry point"
    assert set(summary) == set(lines)


def test_an_uncommitted_import_counts_and_an_ignored_file_does_not(detect_repo: Repo) -> None:
    detect_repo.write("mylib/helpers.py", "import jinja2\n")  # uncommitted: travels in the patch
    detect_repo.write(".gitignore", "local_only.py\n")
    detect_repo.write("local_only.py", "import toml\n")  # ignored: does not travel ...
    train = detect_repo.work / "train.py"
    detect_repo.write("train.py", train.read_text() + "\nimport local_only\n")  # ... so it is not ours either
    task, out = created("--name", "changes", "--folder", str(detect_repo.work), "--script", "train.py")
    lines = requirements_of(task)["pip"].splitlines()
    assert expected("Jinja2") in lines
    assert expected("tqdm") not in lines  # helpers.py no longer imports it
    assert "local-only" not in lines and "local_only" not in lines and expected("toml") not in lines
    assert "import local_only (train.py:" in out and "is a local file that git ignores" in out


@pytest.mark.parametrize("repository", [False, True])
def test_a_module_beside_a_script_sent_alone_is_never_a_requirement(tmp_path: Path, repository: bool) -> None:
    """`import helper` with helper.py (or a helper/ package) beside the script, or a module in the working
    dir or at the root: PyPI's package of that name is someone else's. Outside any repository, or inside one
    with --skip-repo-detection; the summary says each local file stays behind."""
    base = make_repo(tmp_path, "jobs").work if repository else tmp_path / "alone"
    for path, text in {
        "sub/s.py": "import helper\nimport tools\nimport settings\nimport common\nimport yaml\n",
        "sub/helper.py": "X = 1\n",
        "sub/tools/__init__.py": "",
        "lib/settings.py": "",
        "common.py": "",
    }.items():
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_text(text)
    flags = ["--folder", str(base), "--script", "sub/s.py", "--cwd", "lib"]
    task, out = created("--name", "alone", *flags, *(["--skip-repo-detection"] if repository else []))
    assert requirements_of(task)["pip"].splitlines() == [expected("PyYAML"), "clearml"]
    for name in ("helper", "tools", "settings", "common"):
        assert f"import {name} (s.py:" in out
    assert "is a local file, not a package" in out


def test_sibling_modules_imported_by_name_in_a_repository_are_never_requirements(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "siblings", "jobs")
    repo.git("rm", "-q", "requirements.txt")  # nothing declared: the requirements are detected
    repo.write("main.py", "from sub import s2\n")
    repo.write("sub/__init__.py", "")
    repo.write("sub/s2.py", "import os, sys\nsys.path.insert(0, os.path.dirname(__file__))\nimport utils\n"
               "import localcfg\n")  # fmt: skip
    repo.write("sub/utils.py", "import yaml\n")
    repo.write("sub/localcfg.py", "")
    for script in ("main.py", "sub/s2.py"):
        task, _ = created("--name", "siblings", "--folder", str(repo.work), "--script", script)
        assert requirements_of(task)["pip"].splitlines() == [expected("PyYAML"), "clearml"], script


def filtering(origin: Path | None) -> Path:
    """The origin serves partial clones for real (git's own file transport otherwise sends every blob), so
    what clearml-task fetches in its batches is all it has."""
    assert origin is not None
    subprocess.run(["git", "config", "uploadpack.allowFilter", "true"], cwd=origin, check=True)
    return origin


def test_a_remote_repository_is_read_at_its_commit(detect_repo: Repo) -> None:
    detect_repo.write("mylib/helpers.py", "import jinja2\n")  # local only: the remote does not have it
    filtering(detect_repo.origin)
    task, _ = created("--name", "remote", "--repo", str(detect_repo.origin), "--script", "train.py")
    recorded = requirements_of(task)
    assert recorded["source"] == "detected"
    lines = recorded["pip"].splitlines()
    assert expected("tqdm") in lines and expected("Jinja2") not in lines
    committed = make_repo(detect_repo.work.parent / "fresh", "reqs_detect")
    local = decide(read=directory_reader(committed.work), entry_point="train.py", add_clearml=True)
    assert lines == local.lines


def test_a_remote_requirements_file_brings_its_includes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "includes", "jobs")
    repo.write("requirements.txt", "-r reqs/base.in\n")
    repo.write("reqs/base.in", "six\n-c pins.cfg\n")
    repo.write("reqs/pins.cfg", "six==1.16.0\n")
    subprocess.run(["git", "add", "-A"], cwd=repo.work, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "includes"],
                   cwd=repo.work, check=True)  # fmt: skip
    subprocess.run(["git", "push", "-q"], cwd=repo.work, check=True)
    task, out = created("--name", "includes", "--repo", str(filtering(repo.origin)), "--script", "train.py")
    assert requirements_of(task) == {"source": "requirements.txt", "files": ["requirements.txt"],
                                     "extra": "clearml\n", "pip": "six==1.16.0\nclearml\n"}  # fmt: skip
    assert "six==1.16.0" in out and "reqs/base.in:1" in out


def test_declared_files_are_named_and_clearml_goes_on_top(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "declared", "reqs_declared")
    task, out = created("--name", "declared", "--folder", str(repo.work), "--script", "app/train.py",
                        "--cwd", "app")  # fmt: skip
    assert requirements_of(task) == {
        "source": "requirements.txt",
        "files": ["requirements.txt", "app/requirements.txt"],
        "extra": "clearml\n",
        "pip": "numpy<2,>=1.24\nPyYAML\nrequests>=2.20\n--extra-index-url https://download.pytorch.org/whl/cpu\n"
        'torch >=2.1\nscikit-learn==1.5.0 ; python_version >= "3.9"\nclearml\n',  # for ClearML's agent
    }
    assert "declared in requirements.txt, app/requirements.txt" in out
    uvlock = make_repo(tmp_path / "locked", "reqs_uvlock")
    task, out = created("--name", "locked", "--folder", str(uvlock.work), "--script", "train.py",
                        "--skip-task-init")  # fmt: skip
    locked = {"source": "uv.lock", "files": ["pyproject.toml", "uv.lock"], "lock": "uv.lock"}
    assert requirements_of(task) == locked
    assert "uv sync --locked" in out


def test_given_requirements_win_and_a_bad_line_creates_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "declared", "reqs_declared")
    task, _ = created("--name", "given", "--folder", str(repo.work), "--script", "app/train.py",
                      "--packages", "six", "attrs>=23")  # fmt: skip
    assert requirements_of(task) == {"source": "given", "pip": "six\nattrs>=23\nclearml\n"}
    bad = clearml_task("--name", "bad", "--folder", str(repo.work), "--script", "app/train.py",
                       "--packages", "torch==2.1 ==2.2")  # fmt: skip
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "'torch==2.1 ==2.2' is not a valid requirement" in bad.stderr
    assert [t["name"] for t in Client().call("tasks.get_all", {})["tasks"]] == ["given"]


def test_versions_are_pinned_from_the_project_environment(detect_repo: Repo, tmp_path: Path) -> None:
    """An active virtualenv that is not clearml-task's own: installed versions are read from it."""
    project_env = tmp_path / "project-env"
    venv.create(project_env, with_pip=False)
    site = next((project_env / "lib").glob("python3*/site-packages"))
    dist = site / "tqdm-9.8.7.dist-info"  # what an installed distribution leaves: its metadata
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tqdm\nVersion: 9.8.7\n")
    (dist / "top_level.txt").write_text("tqdm\n")
    (dist / "RECORD").write_text("tqdm/__init__.py,,\n")
    (site / "tqdm").mkdir()
    (site / "tqdm" / "__init__.py").write_text("")
    task, out = created("--name", "pinned", "--folder", str(detect_repo.work), "--script", "train.py",
                        env={"VIRTUAL_ENV": str(project_env)})  # fmt: skip
    assert "tqdm==9.8.7" in requirements_of(task)["pip"].splitlines()
    assert f"installed versions are read from the environment of {project_env}/bin/python" in out


def fake_environment(prefix: Path, version: str) -> Path:
    """A venv in which tqdm `version` is installed (what an installed distribution leaves: its metadata)."""
    venv.create(prefix, with_pip=False)
    site = next((prefix / "lib").glob("python3*/site-packages"))
    dist = site / f"tqdm-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tqdm\nVersion: {version}\n")
    (dist / "top_level.txt").write_text("tqdm\n")
    (dist / "RECORD").write_text("tqdm/__init__.py,,\n")
    (site / "tqdm").mkdir()
    (site / "tqdm" / "__init__.py").write_text("")
    return prefix


def test_without_an_active_environment_versions_come_from_the_python3_on_path(
    detect_repo: Repo, tmp_path: Path
) -> None:
    """No virtualenv, conda env or .venv: the pins are those of the `python3` the user runs, not of the
    environment clearml-task is installed in (pipx), and the summary names it."""
    users = fake_environment(tmp_path / "users-python", "9.8.6")
    path = f"{users / 'bin'}{os.pathsep}{os.environ['PATH']}"
    task, out = created("--name", "on path", "--folder", str(detect_repo.work), "--script", "train.py",
                        env={"VIRTUAL_ENV": "", "CONDA_PREFIX": "", "PATH": path})  # fmt: skip
    assert "tqdm==9.8.6" in requirements_of(task)["pip"].splitlines()
    assert f"installed versions are read from the environment of {users}/bin/python3" in out
    task, out = created("--name", "own", "--folder", str(detect_repo.work), "--script", "train.py")
    assert "tqdm==9.8.6" not in requirements_of(task)["pip"].splitlines()
    assert f"installed versions are read from clearml-task's own environment ({sys.executable})" in out


def python3_on_path(tmp_path: Path, body: str) -> tuple[Path, dict[str, str]]:
    """A `python3` first on PATH running the shell `body`, with no active environment: (its dir, the env)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / "python3").chmod(0o755)
    return bin_dir, {
        "VIRTUAL_ENV": "",
        "CONDA_PREFIX": "",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }


def test_the_project_python_runs_only_when_requirements_are_detected(
    detect_repo: Repo, tmp_path: Path
) -> None:
    """Finding installed versions runs the project's interpreter (a pyenv shim takes ~0.2 s): a repository
    that declares its requirements does not need it, one whose requirements are detected does."""
    ran = tmp_path / "ran"
    bin_dir, env = python3_on_path(tmp_path, f"echo ran >> {ran}\nexit 1")
    detect_repo.write("requirements.txt", "six\n")
    task, _ = created(
        "--name", "declared", "--folder", str(detect_repo.work), "--script", "train.py", env=env
    )
    assert requirements_of(task)["source"] == "requirements.txt"
    assert not ran.exists()
    (detect_repo.work / "requirements.txt").unlink()
    task, out = created(
        "--name", "detected", "--folder", str(detect_repo.work), "--script", "train.py", env=env
    )
    assert requirements_of(task)["source"] == "detected"
    assert ran.read_text() == "ran\n"
    assert f"{bin_dir}/python3 does not run" in out


def test_an_interpreter_started_early_is_stopped_when_the_submit_fails(
    detect_repo: Repo, tmp_path: Path
) -> None:
    """Requirements to detect: the project's python starts while the code is captured. When the capture
    then fails (a script that does not parse), that interpreter is stopped, not left running."""
    pid_file = tmp_path / "pid"
    _, env = python3_on_path(tmp_path, f"echo $$ > {pid_file}\nexec sleep 300")
    detect_repo.write("train.py", "import yaml\ndef broken(:\n")
    result = clearml_task("--name", "broken", "--folder", str(detect_repo.work), "--script", "train.py",
                          env=env)  # fmt: skip
    assert result.returncode == 1 and "cannot parse train.py" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    pid = int(pid_file.read_text())  # it was started: the requirements were to be detected
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert Client().call("tasks.get_all", {"name": "broken"})["tasks"] == []


def test_force_no_requirements_installs_nothing_even_with_a_requirements_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "bad", "reqs_bad")  # its requirements.txt could not even be installed
    repo.write("train.py", "print('ran with nothing installed')\n")
    task, out = created("--name", "none", "--folder", str(repo.work), "--script", "train.py",
                        "--force-no-requirements", "--skip-task-init")  # fmt: skip
    assert requirements_of(task) == {"source": "none"}
    assert "none (--force-no-requirements)" in out
    result = launcher("execute", "--id", str(task["id"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(str(task["id"])) == "completed"
    lines = log_lines(str(task["id"]))
    assert "environment: no requirements: the task's script.requirements lists none" in (lines)
    assert "ran with nothing installed" in lines


def test_the_launcher_installs_clearml_on_top_of_the_repository_requirements(tmp_path: Path) -> None:
    """The injected Task.init() finds clearml installed and attaches to the task the launcher runs."""
    repo = make_repo(tmp_path / "jobs", "jobs")
    repo.write("requirements.txt", "six\n")
    task, _ = created("--name", "on top", "--folder", str(repo.work), "--script", "train.py")
    assert requirements_of(task) == {"source": "requirements.txt", "files": ["requirements.txt"],
                                     "extra": "clearml\n", "pip": "six\nclearml\n"}  # fmt: skip
    result = launcher("execute", "--id", str(task["id"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(str(task["id"])) == "completed"
    lines = log_lines(str(task["id"]))
    assert any("requirements.txt" in line and "then clearml" in line for line in lines), lines
    installed = requirements_of(Client().get_task(str(task["id"])))["pip"].splitlines()
    assert any(line.startswith("clearml==") for line in installed)
    assert any(line.startswith("six==") for line in installed)
    assert len(Client().call("tasks.get_all", {})["tasks"]) == 1  # the SDK attached; no task of its own
    assert not [line for line in lines if "ClearML" in line and "rror" in line]


def test_a_poetry_project_is_installed_from_its_poetry_lock(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "poetry", "reqs_poetry")
    task, out = created(
        "--name", "poetry", "--folder", str(repo.work), "--script", "train.py", "--skip-task-init"
    )
    assert requirements_of(task) == {"source": "poetry.lock", "files": ["pyproject.toml", "poetry.lock"],
                                     "lock": "poetry.lock"}  # fmt: skip
    assert "the launcher runs poetry install from the lock" in out
    result = launcher("execute", "--id", str(task["id"]))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = log_lines(str(task["id"]))
    assert "environment: requirements from poetry.lock (poetry install in .)" in lines
    assert "poetry job ran with six 1.17.0" in lines
