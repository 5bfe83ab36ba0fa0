"""The task's environment: requirements from each source, real uv, real PyPI (small pure-Python packages), a
cache that a second launcher hits without uv or the network, and one build when two launchers race."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uv

from launcher import environment
from launcher.environment import Environment, ensure
from launcher.errors import ReproductionError
from testing.repos import FIXTURES

SIX = "six==1.16.0"
OWN_PYTHON = f"python{sys.version_info[0]}.{sys.version_info[1]}"


@dataclass
class Built:
    env: Environment
    log: list[str]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole run: each test asks for its own requirements (so its own key) unless it is
    about sharing, and the uv cache downloads each wheel once."""
    return tmp_path_factory.mktemp("launcher-cache")


@pytest.fixture(scope="session")
def six_env(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The env of a task whose script.requirements.pip pins six, built once for the run."""
    root = tmp_path_factory.mktemp("six-repo")
    log: list[str] = []
    env = ensure(task(f"# the task's requirements\n{SIX}\n\n"), root, root, cache_dir, log.append)
    return Built(env, log)


def task(pip: str | list[str] = "", binary: str = sys.executable) -> dict[str, Any]:
    return {"script": {"binary": binary, "requirements": {"pip": pip}, "entry_point": "train.py"}}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    return root


def run(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-c", code], cwd=cwd, capture_output=True, text=True, check=False)


def version_of(env: Environment, module: str, cwd: Path) -> str:
    done = run(env.python, f"import {module}; print({module}.__version__)", cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def leftovers(cache_dir: Path) -> list[Path]:
    return list((cache_dir / "envs").glob(".*.building-*"))


def test_requirements_from_the_task(six_env: Built, cache_dir: Path, tmp_path: Path) -> None:
    env = six_env.env
    assert env.built and env.source == "task"
    assert env.requirements == [SIX]
    assert env.python == cache_dir / "envs" / env.key[:24] / "bin" / "python"
    assert "six==1.16.0" in env.frozen.splitlines()
    assert version_of(env, "six", tmp_path) == "1.16.0"
    assert "environment: requirements from the task's script.requirements.pip (1 line)" in six_env.log
    assert any(line.startswith(f"environment: built {env.key[:8]} with uv ") for line in six_env.log)

    # the same lines as a list (comments and blanks dropped) are the same environment
    log: list[str] = []
    again = ensure(task(["", SIX, "# pinned"]), tmp_path, tmp_path, cache_dir, log.append)
    assert (again.key, again.built, again.python) == (env.key, False, env.python)


def test_cache_hit_uses_neither_uv_nor_the_network(
    six_env: Built, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = six_env.env.python.parent.parent
    before = [(path, path.stat().st_ino, path.stat().st_mtime_ns) for path in (target, target / "bin")]
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there

    def no_uv() -> str:
        raise AssertionError("a cache hit must not run uv")

    monkeypatch.setattr(uv, "find_uv_bin", no_uv)
    log: list[str] = []
    env = ensure(task(SIX), tmp_path, tmp_path, cache_dir, log.append)

    assert not env.built
    assert (env.key, env.python, env.frozen) == (six_env.env.key, six_env.env.python, six_env.env.frozen)
    assert f"environment: cache hit {env.key[:8]}" in log[-1]
    assert not any("building" in line for line in log)
    assert [
        (path, path.stat().st_ino, path.stat().st_mtime_ns) for path in (target, target / "bin")
    ] == before
    assert version_of(env, "six", tmp_path) == "1.16.0"


def test_requirements_txt_from_root_down_to_the_working_dir(
    six_env: Built, cache_dir: Path, tmp_path: Path
) -> None:
    root = write(
        tmp_path / "repo",
        {
            "requirements.txt": "-r requirements/base.txt\n-c requirements/constraints.txt\n",
            "requirements/base.txt": f"{SIX}  # pinned\n",
            "requirements/constraints.txt": "idna<4\n",
            "src/requirements.txt": "idna==3.10\n",
            "src/train/train.py": "print('hi')\n",
            "other/requirements.txt": "this-package-does-not-exist-xyz==1.0\n",  # not on the way down
        },
    )
    workdir = root / "src" / "train"
    log: list[str] = []
    env = ensure(task(), root, workdir, cache_dir, log.append)

    assert env.built and env.source == "requirements.txt"
    assert env.requirements == [SIX, "idna==3.10"]
    assert (
        "environment: requirements from requirements.txt (2 lines: requirements.txt, src/requirements.txt)"
        in log
    )
    assert {"six==1.16.0", "idna==3.10"} <= set(env.frozen.splitlines())
    assert version_of(env, "six", workdir) == "1.16.0"
    assert version_of(env, "idna", workdir) == "3.10"

    # the key follows the included files: a change in one is another environment
    python = environment.current_python()
    plan = environment.plan_requirements({}, root, workdir)
    (root / "requirements/constraints.txt").write_text("idna<3.11\n")
    changed = environment.plan_requirements({}, root, workdir)
    assert environment.cache_key(python, plan) != environment.cache_key(python, changed)

    # the task's own requirements win over the repository's files (and this one is cached already)
    log.clear()
    hit = ensure(task(SIX), root, workdir, cache_dir, log.append)
    assert (hit.source, hit.requirements, hit.built, hit.key) == ("task", [SIX], False, six_env.env.key)


def test_pyproject_then_uv_lock(cache_dir: Path, tmp_path: Path) -> None:
    root = write(
        tmp_path / "repo",
        {
            "pyproject.toml": (
                '[project]\nname = "demo"\nversion = "0.1.0"\nrequires-python = ">=3.8"\n'
                f'dependencies = ["{SIX}"]\n\n'
                '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
            ),
            "demo/__init__.py": "",
            "scripts/train.py": "import six\n",
        },
    )
    workdir = root / "scripts"
    log: list[str] = []
    env = ensure(task(), root, workdir, cache_dir, log.append)

    assert env.built and env.source == "pyproject.toml"
    assert env.requirements == [SIX]
    assert "environment: requirements from pyproject.toml (uv sync in .)" in log
    assert version_of(env, "six", tmp_path) == "1.16.0"
    assert "demo" not in env.frozen  # the project itself runs from its checkout
    assert run(env.python, "import demo", tmp_path).returncode != 0
    assert not (root / "uv.lock").exists()  # the checkout is left as it was

    locker = [uv.find_uv_bin(), "lock", "--quiet", "--no-python-downloads"]
    subprocess.run(
        locker, cwd=root, env={**os.environ, "UV_CACHE_DIR": str(cache_dir / "uv-cache")}, check=True
    )
    log.clear()
    locked = ensure(task(), root, workdir, cache_dir, log.append)
    assert locked.built and locked.source == "uv.lock" and locked.key != env.key
    assert "environment: requirements from uv.lock (uv sync --locked in .)" in log
    assert locked.requirements == [SIX]
    assert version_of(locked, "six", tmp_path) == "1.16.0"

    # --locked: a uv.lock that no longer matches pyproject.toml is an error, not a silent re-lock
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(f'"{SIX}"', '"six>=1.15"'))
    lock = (root / "uv.lock").read_text()
    with pytest.raises(ReproductionError) as caught:
        ensure(task(), root, workdir, cache_dir, lambda line: None)
    assert "uv.lock" in caught.value.reason and "--locked" in caught.value.reason
    assert "uv lock" in caught.value.hint
    assert (root / "uv.lock").read_text() == lock
    assert not leftovers(cache_dir)


def test_extra_lines_go_on_top_of_a_locked_sync(cache_dir: Path, tmp_path: Path) -> None:
    """clearml-task records clearml as `extra` when it injects Task.init() into a repository that declares
    its own requirements: uv sync --locked first, then the extra lines; both in the key."""
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "reqs_uvlock", root)
    (root / "uv.lock").unlink()  # the fixture's lock is for reading; this one is installed
    locker = [uv.find_uv_bin(), "lock", "--quiet", "--no-python-downloads"]  # against this machine's index
    subprocess.run(
        locker, cwd=root, env={**os.environ, "UV_CACHE_DIR": str(cache_dir / "uv-cache")}, check=True
    )
    declared = {"source": "uv.lock", "files": ["pyproject.toml", "uv.lock"], "lock": "uv.lock"}
    log: list[str] = []
    plain = ensure({"script": {"requirements": declared}}, root, root, cache_dir, log.append)
    log.clear()
    extra = {"script": {"requirements": {**declared, "extra": "attrs==23.2.0\n"}}}
    env = ensure(extra, root, root, cache_dir, log.append)
    assert env.built and env.key != plain.key and env.source == "uv.lock"
    assert "environment: requirements from uv.lock (uv sync --locked in .), then attrs==23.2.0" in log
    assert env.requirements == [SIX, "attrs==23.2.0"]
    assert version_of(env, "six", tmp_path) == "1.16.0" and version_of(env, "attr", tmp_path) == "23.2.0"
    assert run(plain.python, "import attr", tmp_path).returncode != 0
    with pytest.raises(ReproductionError) as caught:
        ensure({"script": {"requirements": {**declared, "extra": "attrs==1 ==2\n"}}}, root, root, cache_dir,
               lambda line: None)  # fmt: skip
    assert "script.requirements.extra" in caught.value.hint and not leftovers(cache_dir)


def test_a_poetry_lock_is_installed_by_poetry_and_a_conda_file_is_named(
    cache_dir: Path, tmp_path: Path
) -> None:
    """A Poetry project: `poetry install --no-root` from its poetry.lock (Poetry run by uv from PyPI) into
    the task's env; a lock that no longer matches fails. An environment.yml is said not to be built."""
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / "reqs_poetry", root)
    (root / "environment.yml").write_text("name: job\ndependencies:\n  - python=3.11\n  - six\n")
    log: list[str] = []
    env = ensure(task(), root, root, cache_dir, log.append)
    assert env.built and env.source == "poetry.lock"
    assert "environment: requirements from poetry.lock (poetry install in .)" in log
    assert any(line.startswith("environment: poetry install in ") for line in log), log
    assert version_of(env, "six", tmp_path) == "1.17.0" and env.requirements == ["six==1.17.0"]
    assert (
        "environment: environment.yml is a conda environment: conda environments are not built here; "
        "installed instead: requirements from poetry.lock (poetry install in .)"
    ) in log
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('six = "^1.16"', 'six = "^1.16"\nattrs = "*"'))
    with pytest.raises(ReproductionError) as caught:
        ensure(task(), root, root, cache_dir, lambda line: None)
    assert "poetry.lock" in caught.value.hint and not leftovers(cache_dir)


def test_source_none_installs_nothing_where_the_repository_declares(cache_dir: Path, tmp_path: Path) -> None:
    root = write(tmp_path / "repo", {"requirements.txt": "no-such-package-anywhere==0\n"})
    log: list[str] = []
    env = ensure({"script": {"requirements": {"source": "none"}}}, root, root, cache_dir, log.append)
    assert env.requirements == [] and env.frozen == ""
    assert "environment: no requirements: the task's script.requirements lists none" in log


def test_no_requirements_is_a_bare_venv(tmp_path: Path, cache_dir: Path) -> None:
    root = write(tmp_path / "repo", {"train.py": "print('hi')\n"})
    log: list[str] = []
    env = ensure({"script": {"entry_point": "train.py"}}, root, root, cache_dir, log.append)

    assert env.source == "none" and env.requirements == [] and env.frozen == ""
    assert "environment: no requirements found (a venv with nothing extra)" in log
    probe = "import sys; print(sys.prefix != sys.base_prefix)"
    assert run(env.python, probe, tmp_path).stdout.strip() == "True"
    # no pip in the env: a task cannot `pip install` into an env that other tasks share
    assert run(env.python, "import pip", tmp_path).returncode != 0


def test_a_missing_interpreter_falls_back_to_the_launchers(
    six_env: Built, cache_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "python3.99"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    for binary, problem in [
        ("python3.4", "python3.4 is not on this machine"),
        (str(broken), f"{broken} ({broken}) does not run as Python 3"),
    ]:
        log: list[str] = []
        env = ensure(task(SIX, binary=binary), tmp_path, tmp_path, cache_dir, log.append)
        assert f"environment: warning: {problem}; using {OWN_PYTHON} ({sys.executable})" in log
        assert env.key == six_env.env.key and not env.built  # the launcher's interpreter: same env as before
        version = run(env.python, "import sys; print('%d.%d.%d' % sys.version_info[:3])", tmp_path).stdout
        assert version.strip() == "{}.{}.{}".format(*sys.version_info[:3])


def test_an_unresolvable_requirement(cache_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ReproductionError) as caught:
        ensure(task("this-package-does-not-exist-xyz==1.0"), tmp_path, tmp_path, cache_dir, lambda line: None)
    error = caught.value
    assert error.reason.startswith("cannot install the task's requirements: ")
    assert "this-package-does-not-exist-xyz" in error.reason and "\n" not in error.reason
    assert "this-package-does-not-exist-xyz" in error.detail
    assert error.hint == "check the package name/version; the task's requirements are in script.requirements"
    assert not leftovers(cache_dir)


def test_bad_requirement_lines(cache_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ReproductionError) as caught:
        ensure(task("six=>1.0"), tmp_path, tmp_path, cache_dir, lambda line: None)
    assert caught.value.reason.startswith("bad requirement line: ")
    assert "script.requirements.pip" in caught.value.reason and "=>" in caught.value.reason

    with pytest.raises(ReproductionError) as caught:
        ensure(task("-r requirements.txt"), tmp_path, tmp_path, cache_dir, lambda line: None)
    assert "bad requirement line in script.requirements.pip: '-r requirements.txt'" in caught.value.reason
    assert not leftovers(cache_dir)


def test_uv_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> str:
        raise FileNotFoundError("uv")

    monkeypatch.setattr(uv, "find_uv_bin", missing)
    with pytest.raises(ReproductionError) as caught:
        ensure(task(), tmp_path, tmp_path, tmp_path / "cache", lambda line: None)
    assert caught.value.reason == "uv is not installed for the launcher"
    assert "pip install uv" in caught.value.hint


def test_two_launchers_racing_build_once(cache_dir: Path, tmp_path: Path) -> None:
    start = threading.Barrier(2)
    results: list[Environment] = []
    log: list[str] = []

    def launcher() -> None:
        start.wait()
        results.append(ensure(task("six>=1.16,<1.17"), tmp_path, tmp_path, cache_dir, log.append))

    threads = [threading.Thread(target=launcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 2 and sorted(env.built for env in results) == [False, True]
    assert results[0].python == results[1].python and results[0].frozen == results[1].frozen
    assert sum(line.startswith("environment: built ") for line in log) == 1
    assert version_of(results[0], "six", tmp_path) == "1.16.0"
    assert not leftovers(cache_dir)


@pytest.mark.parametrize("given", ["operator", "unset", "blank"])
def test_the_uv_cache_is_the_operators_uv_cache_dir_else_the_launchers_own(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's UV_CACHE_DIR is where uv downloads to (shared with their uv and other homes); unset or
    blank, the launcher's home keeps its own; both are named in the build's log."""
    operators, home_cache = tmp_path / "operators-uv", tmp_path / "home-cache"
    if given == "operator":
        monkeypatch.setenv("UV_CACHE_DIR", str(operators))
    elif given == "unset":
        monkeypatch.delenv("UV_CACHE_DIR", raising=False)
    else:
        monkeypatch.setenv("UV_CACHE_DIR", " ")
    log: list[str] = []
    env = ensure(task(SIX), tmp_path, tmp_path, home_cache, log.append)
    assert env.built and version_of(env, "six", tmp_path) == "1.16.0"
    used, unused = (
        (operators, home_cache / "uv-cache") if given == "operator" else (home_cache / "uv-cache", operators)
    )
    assert any(line.endswith(f"(cache {used})") for line in log), log
    assert any(used.rglob("six*")), list(used.iterdir())
    assert not unused.exists()


def test_losing_the_rename_uses_the_winners_env(six_env: Built, tmp_path: Path) -> None:
    """Where the lock does not hold (e.g. two machines on a shared file system), the second rename fails and
    the first env stays."""
    target = six_env.env.python.parent.parent
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "half-built").write_text("")
    record = environment.publish(scratch, target)
    assert record is not None and record["key"] == six_env.env.key
    assert not (target / "half-built").exists()


def test_the_checkout_is_read_as_clearml_task_reads_it(tmp_path: Path) -> None:
    """A pyproject.toml that only configures tools declares nothing (requirements.decide skips it too), and a
    decided source with no lines installs nothing rather than whatever the checkout holds."""
    root = write(tmp_path / "repo", {
        "pyproject.toml": f'[project]\nname = "demo"\nversion = "0"\ndependencies = ["{SIX}"]\n',
        "app/pyproject.toml": "[tool.ruff]\nline-length = 100\n",
        "app/requirements.in": "never read\n",
    })  # fmt: skip
    plan = environment.plan_requirements({}, root, root / "app")
    assert plan.source == "pyproject.toml" and plan.project == root
    for source in ("detected", "given", "none"):
        assert environment.plan_requirements({"source": source}, root, root / "app").installer == "none"
    assert environment.plan_requirements({"source": "pyproject.toml"}, root, root / "app").project == root


def test_scratch_dirs_of_builds_that_died_are_swept_unless_their_key_is_being_built(tmp_path: Path) -> None:
    """A launcher killed during `uv pip install` left `.<key>.building-<pid>-<hex>` (a half-made venv) until
    that key was built again; a daemon now sweeps them at start, except for a key whose build goes on (its
    lock held), and never a built environment."""
    from clearml_task import locks
    from launcher import environment

    envs = tmp_path / "envs"
    dead, going = "a" * 24, "b" * 24
    for key in (dead, going):
        (envs / f".{key}.building-4242-0badc0de" / "lib").mkdir(parents=True)
    (envs / dead / "bin").mkdir(parents=True)  # a built environment of the same key stays
    held = locks.hold(envs / f"{going}.lock")
    assert held is not None
    try:
        assert environment.sweep_leftovers(envs) == 1
    finally:
        held.close()
    assert not (envs / f".{dead}.building-4242-0badc0de").exists() and (envs / dead / "bin").is_dir()
    assert (envs / f".{going}.building-4242-0badc0de").is_dir()
