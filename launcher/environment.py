"""The task's Python environment: which interpreter, which requirements, and a cached venv built by uv.

The requirements come from the first of these that has any (as clearml-agent picks them):
`script.requirements.pip` of the task, unless `script.requirements.source` says the repository declares
them (clearml-task records the declared lines plus clearml in `pip` for ClearML's agent, which installs
only that; here the declared files and their uv.lock are installed as they are at the commit); nothing when
`script.requirements.source` says clearml-task decided it ("none" for --force-no-requirements, or "given" /
"detected" with no lines); every requirements.txt from the repository root down to the working dir; a
pyproject.toml with a [project] table (with its uv.lock, installed `--locked`) at the working dir or the
root; else none, and the task still gets a venv of its own so it cannot touch the launcher's interpreter.
A pyproject.toml with a poetry.lock beside it (and no uv.lock) is installed from the lock by Poetry (from
PyPI, run as uv runs tools: `uv tool run --from poetry poetry install --no-root`) into the task's env, as
ClearML's agent installs it. A conda environment.yml is not built here: the log says so and what was
installed instead. `script.requirements.extra` (clearml, when clearml-task injected Task.init()) is
installed on top of what the repository declares.
The interpreter is script.binary when it runs on this machine, else the launcher's own (with a warning); uv
never downloads one. script.binary must name a Python interpreter (or bash, for a shell script): the launcher
never runs another program a task document names. What the plan reads and names is checked first
(install_checks): nothing outside the checkout, index options logged.

Environments are cached under `cache_dir/envs/<key[:24]>`, keyed by the interpreter and the normalised
requirements. A miss is built in a scratch dir next to it and renamed into place once complete, under a file
lock per key, so a half-built env is never used and two launchers on one machine build it once. A hit touches
neither uv nor the network.

A cached env is shared by every task with the same key, possibly at the same time, so nothing installs into it
once it is complete. The venv is made without pip (uv does not seed it), so a task that runs `pip install` at
run time fails instead of changing the env under other tasks. The files are not made read-only: root ignores
the mode bits anyway, Python wants to write its bytecode caches, and `rm -rf` must be able to prune the cache.
A task that installs by other means (e.g. `uv pip install --python sys.executable`) would still write into the
shared env.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clearml_task import locks
from clearml_task.git.urls import scrub
from clearml_task.requirements.declared import find_declared
from clearml_task.requirements.files import INCLUDE, requirement_lines
from clearml_task.requirements.readers import descent
from clearml_task.vocabulary import BINARY_PATTERN

from . import install_checks
from .errors import ReproductionError

Log = Callable[[str], None]

MARKER = "clearml-launcher-env.json"  # written last, inside the env, before it is renamed into place
TASK_REQUIREMENTS = "task-requirements.txt"  # script.requirements.pip, written into the env for uv
EXTRA_REQUIREMENTS = "extra-requirements.txt"  # script.requirements.extra, likewise
KEY_SCHEMA = "clearml-launcher-env/2"  # /2: bytecode compiled at build time
PROBE = (
    "import json, platform, sys; print(json.dumps({'executable': sys.executable, "
    "'version': '%d.%d.%d' % tuple(sys.version_info[:3]), "
    "'implementation': platform.python_implementation(), 'base_prefix': sys.base_prefix, "
    "'machine': platform.machine()}))"
)
INSTALL_HINTS = {
    "task": "check the package name/version; the task's requirements are in script.requirements",
    "extra": "check script.requirements.extra (installed on top of the repository's requirements)",
    "requirements.txt": "check the package name/version in the repository's requirements.txt files",
    "pyproject.toml": "check the dependencies in the repository's pyproject.toml",
    "uv.lock": "check the repository's pyproject.toml and uv.lock (`uv lock` must leave uv.lock unchanged)",
    "poetry.lock": "check the repository's pyproject.toml and poetry.lock (`poetry check --lock` must pass)",
}
# A Python interpreter, by name or absolute path (python3, python3.11, /usr/bin/python3, pypy3), or bash
# and sh (a shell script's; the launcher's own Python then builds the env).
BINARY = re.compile(BINARY_PATTERN)
CONDA_FILES = ("environment.yml", "environment.yaml")
POETRY = "poetry"  # the PyPI project uv runs Poetry from


@dataclass(frozen=True)
class Environment:
    python: Path  # the interpreter to run the task with
    key: str  # the cache key
    built: bool  # False on a cache hit
    source: str  # "task" | "requirements.txt" | "pyproject.toml" | "uv.lock" | "none"
    requirements: list[str]  # the (normalised) requirement lines installed
    frozen: str  # `uv pip freeze` of the env (what tasks.set_requirements should record)


@dataclass(frozen=True)
class Interpreter:
    executable: str
    version: str  # major.minor.micro
    implementation: str
    base_prefix: str
    machine: str

    @property
    def name(self) -> str:
        return "python" + ".".join(self.version.split(".")[:2])


@dataclass(frozen=True)
class Plan:
    """What to install and from where; `material` is what the cache key hashes besides the interpreter."""

    source: str
    installer: str  # "pip" | "sync" | "poetry" | "none"
    lines: list[str] = field(default_factory=list)  # requirement lines (task) or those the files give
    files: list[Path] = field(default_factory=list)  # requirements.txt files, passed to uv with -r
    project: Path | None = None  # the pyproject.toml's dir, for uv sync
    lock: Path | None = None
    extra: list[str] = field(default_factory=list)  # installed on top (clearml for an injected Task.init())
    material: list[str] = field(default_factory=list)


def ensure(task: dict[str, Any], root: Path, workdir: Path, cache_dir: Path, log: Log) -> Environment:
    """The environment to run `task` with: reused from `cache_dir` when there, else built with uv."""
    started = time.monotonic()
    root, cache_dir = root.resolve(), cache_dir.resolve()
    workdir = (root / workdir).resolve()  # relative to the root unless absolute
    script = task.get("script") or {}
    python = choose_python(str(script.get("binary") or ""), log)
    plan = plan_requirements(script.get("requirements") or {}, root, workdir)
    log(f"environment: {describe(plan, root)}")
    indexes = install_checks.index_line([*plan.lines, *plan.extra])
    if indexes:
        log(f"environment: {indexes}")
    conda = [name for name in CONDA_FILES for d in dict.fromkeys((workdir, root)) if (d / name).is_file()]
    if conda:
        log(f"environment: {conda[0]} is a conda environment: conda environments are not built here; "
            f"installed instead: {describe(plan, root)}")  # fmt: skip
    key = cache_key(python, plan)
    envs = cache_dir / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    target = envs / key[:24]
    record = load(target)
    if record is None:

        def waiting() -> None:
            log(f"environment: waiting for another launcher to build {key[:8]}")

        with locks.exclusive(envs / f"{key[:24]}.lock", waiting):
            record = load(target)  # built by the launcher we waited for?
            if record is None:
                record = build(python, plan, key, target, (root, workdir), cache_dir, log)
                took = time.monotonic() - started
                log(f"environment: built {key[:8]} with uv {record['uv']} in {took:.2f}s")
                return result(target, key, True, plan, record)
    log(f"environment: cache hit {key[:8]} ({time.monotonic() - started:.2f}s)")
    return result(target, key, False, plan, record)


def result(target: Path, key: str, built: bool, plan: Plan, record: dict[str, Any]) -> Environment:
    requirements = [*plan.lines, *plan.extra] if plan.installer == "pip" else list(record["requirements"])
    return Environment(venv_python(target), key, built, plan.source, requirements, str(record["frozen"]))


# --- the interpreter ---------------------------------------------------------------------------------------


def choose_python(binary: str, log: Log) -> Interpreter:
    """script.binary when it runs here, else the launcher's own interpreter (with a warning)."""
    wanted = binary.strip()
    if wanted and not BINARY.match(wanted):
        shown = wanted if len(wanted) <= 80 else wanted[:77] + "..."
        raise ReproductionError(
            f"script.binary {shown!r} is refused: it must name a Python interpreter (or bash)",
            hint="set it to python3, python3.X or an absolute path to one, or empty it",
        )
    if wanted:
        found = locate(wanted)
        probed = probe(found) if found else None
        if probed is not None:
            log(f"environment: python {probed.version} ({probed.implementation}) at {probed.executable}")
            return probed
        own = current_python()
        problem = "is not on this machine" if found is None else f"({found}) does not run as Python 3"
        log(f"environment: warning: {wanted} {problem}; using {own.name} ({own.executable})")
    else:
        own = current_python()
    log(f"environment: python {own.version} ({own.implementation}) at {own.executable}")
    return own


def locate(binary: str) -> str | None:
    if os.sep in binary or (os.altsep and os.altsep in binary):
        return binary if Path(binary).is_file() else None
    return shutil.which(binary)


@functools.lru_cache(maxsize=32)
def probe(executable: str) -> Interpreter | None:
    """Ask the interpreter what it is (this also sees through pyenv shims to the real one). Remembered
    for the life of the process: a daemon asks once, not for every task."""
    try:
        done = subprocess.run([executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
        facts = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if not isinstance(facts, dict) or not str(facts.get("version", "")).startswith("3."):
        return None
    return Interpreter(**{name: str(facts[name]) for name in Interpreter.__dataclass_fields__})


def current_python() -> Interpreter:
    return Interpreter(
        sys.executable,
        "{}.{}.{}".format(*sys.version_info[:3]),
        platform.python_implementation(),
        sys.base_prefix,
        platform.machine(),
    )


def has_sdk(frozen: str) -> bool:
    """The clearml SDK is among an environment's packages (`uv pip freeze` lines)."""
    names = (line.split("==")[0].split(" @ ")[0].strip().lower() for line in frozen.splitlines())
    return "clearml" in names


# --- the requirements --------------------------------------------------------------------------------------


# the script.requirements.source values of what a repository declares
DECLARED_SOURCES = ("requirements.txt", "pyproject.toml", "uv.lock", "poetry.lock")


def plan_requirements(requirements: dict[str, Any], root: Path, workdir: Path) -> Plan:
    """What to install, in the order of the module's docstring; each checked (install_checks), with the
    checkout's uv settings that uv would read as it installs it."""
    return with_uv_settings(_plan(requirements, root, workdir), root, workdir)


def with_uv_settings(plan: Plan, root: Path, workdir: Path) -> Plan:
    """The uv settings of the checkout (uv.toml, [tool.uv]) that uv reads where it installs the plan, checked
    and hashed into the cache key: an environment built under settings (an index, find-links) is reused
    only by a task with the same settings."""
    if plan.installer == "none" and not plan.extra:
        return plan
    start = plan.project if plan.project is not None else (workdir if workdir.is_dir() else root)
    files = install_checks.checked_uv_settings(root, start)
    material = [f"uv-settings:{path.relative_to(root)}:{digest(path)}" for path in files]
    return replace(plan, material=[*plan.material, *material]) if material else plan


def _plan(requirements: dict[str, Any], root: Path, workdir: Path) -> Plan:
    bases = list(dict.fromkeys((workdir if workdir.is_dir() else root, root)))
    lines = task_lines(requirements.get("pip"))
    if lines and requirements.get("source") not in DECLARED_SOURCES:
        install_checks.check_lines(lines, "script.requirements.pip", root, bases)
        return Plan("task", "pip", lines=lines, material=sorted(lines))
    if requirements.get("source") in ("none", "given", "detected"):  # all of it would be in `pip`
        return Plan("task", "none")
    declared = declared_plan(root, workdir)
    extra = task_lines(requirements.get("extra"), "script.requirements.extra")
    install_checks.check_lines(extra, "script.requirements.extra", root, bases)
    if not extra:
        return declared
    return replace(declared, extra=extra, material=[*declared.material, *(f"extra:{line}" for line in extra)])


def declared_plan(root: Path, workdir: Path) -> Plan:
    """What the checkout declares, found as clearml-task's requirements.decide finds it (files that do not
    parse are left for uv to report), and what the cache key hashes of it: the entries of the requirements.txt
    files (their includes followed, inside the checkout only), else the pyproject.toml files and the uv.lock.
    A file that leads outside the checkout (a symlink, an include, a local path) is refused."""
    found = find_declared(install_checks.checkout_reader(root), relative(root, workdir), strict=False)
    if found is None:
        return Plan("none", "none")
    if found.source == "requirements.txt":
        paths = [root / path for path in found.files]
        entries = install_checks.read_requirement_files(root, paths)
        for entry in entries:
            where = entry.where.rsplit(":", 1)[0]
            bases = [Path(os.path.dirname(os.path.realpath(root / where))), workdir, root]
            install_checks.check_lines([entry.line], entry.where, root, dict.fromkeys(bases))
        installed = [entry.line for entry in entries if entry.kind == "requirement"]
        material = sorted(f"{entry.kind}:{entry.line}" for entry in entries)
        return Plan("requirements.txt", "pip", lines=installed, files=paths, material=material)
    project = root / (found.project or ".")
    lock = root / found.lock if found.lock else None
    tomls = dict.fromkeys(d / "pyproject.toml" for d in (project, root) if (d / "pyproject.toml").is_file())
    for path in tomls:
        install_checks.check_pyproject(root, path)
    material = [f"pyproject:{path.relative_to(root)}:{digest(path)}" for path in tomls]
    if lock is not None and lock.is_file():
        if found.source == "poetry.lock":
            install_checks.check_poetry_lock(root, lock)
        material.append(f"lock:{lock.relative_to(root)}:{digest(lock)}")
    installer = "poetry" if found.source == "poetry.lock" else "sync"
    return Plan(found.source, installer, project=project, lock=lock, material=material)


def relative(root: Path, directory: Path) -> str:
    """`directory` relative to the checkout's root, "/"-separated ("." for the root and for outside it)."""
    try:
        return directory.relative_to(root).as_posix()
    except ValueError:
        return "."


def task_lines(pip: object, where: str = "script.requirements.pip") -> list[str]:
    """script.requirements.pip (a string or a list of lines) as normalised lines; includes are refused."""
    text = "\n".join(str(line) for line in pip) if isinstance(pip, list) else str(pip or "")
    lines = requirement_lines(text)
    for line in lines:
        if INCLUDE.match(line):
            raise ReproductionError(
                f"bad requirement line in {where}: {line!r} (files cannot be included there)",
                hint="list the requirements themselves in script.requirements.pip, or leave it empty to use "
                "the repository's requirements.txt",
            )
    return lines


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe(plan: Plan, root: Path) -> str:
    extra = f", then {', '.join(plan.extra)}" if plan.extra else ""
    return describe_source(plan, root) + extra


def describe_source(plan: Plan, root: Path) -> str:
    if plan.source == "task" and plan.installer == "none":
        return "no requirements: the task's script.requirements lists none"
    if plan.source == "task":
        return f"requirements from the task's script.requirements.pip ({count(plan.lines)})"
    if plan.source == "requirements.txt":
        where = ", ".join(str(path.relative_to(root)) for path in plan.files)
        return f"requirements from requirements.txt ({count(plan.lines)}: {where})"
    if plan.project is not None and plan.installer == "poetry":
        return f"requirements from poetry.lock (poetry install in {plan.project.relative_to(root)})"
    if plan.project is not None:
        flags = " --locked" if plan.lock else ""
        return f"requirements from {plan.source} (uv sync{flags} in {plan.project.relative_to(root)})"
    return "no requirements found (a venv with nothing extra)"


def count(items: list[str], noun: str = "line") -> str:
    return f"{len(items)} {noun}{'s' if len(items) != 1 else ''}"


def cache_key(python: Interpreter, plan: Plan) -> str:
    """Same interpreter + same normalised requirements → same key, whichever source they came from."""
    material = {
        "schema": KEY_SCHEMA,
        "python": [python.implementation, python.version, python.base_prefix, python.machine, sys.platform],
        "installer": plan.installer,
        "requirements": plan.material,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


# --- the cache ---------------------------------------------------------------------------------------------


def venv_python(env: Path) -> Path:
    return env / "Scripts" / "python.exe" if sys.platform == "win32" else env / "bin" / "python"


def load(env: Path) -> dict[str, Any] | None:
    """The record of a complete env, or None (absent, or not finished)."""
    try:
        record = json.loads((env / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "frozen" in record else None


def build(
    python: Interpreter,
    plan: Plan,
    key: str,
    target: Path,
    dirs: tuple[Path, Path],
    cache_dir: Path,
    log: Log,
) -> dict[str, Any]:
    """Build the env in a scratch dir and rename it to `target`; called with the key's lock held."""
    uv = Uv(find_uv(), uv_cache(cache_dir))
    root, workdir = dirs
    clear_leftovers(target)
    scratch = target.parent / f".{target.name}.building-{os.getpid()}-{secrets.token_hex(4)}"
    log(f"environment: building {key[:8]} with uv {uv.version} (cache {uv.cache})")
    try:
        with step(log, "uv venv"):
            uv.run(
                ["venv", str(scratch), "--python", python.executable, "--relocatable", "--no-project"],
                failure="cannot create the task's virtual environment",
                hint=f"uv could not make a venv with {python.executable}",
            )
        label = {"sync": "uv sync", "poetry": "poetry install"}.get(plan.installer, "uv pip install")
        with step(log, label):
            requirements = install(uv, plan, scratch, root, workdir)
        frozen = uv.run(
            ["pip", "freeze", "--python", str(venv_python(scratch))], failure="uv pip freeze failed"
        )
        log(f"environment: {count(frozen.splitlines(), 'package')} in {key[:8]}")
        record: dict[str, Any] = {"key": key, "source": plan.source, "requirements": requirements}
        record |= {"frozen": frozen, "python": python.version, "uv": uv.version, "created": time.time()}
        (scratch / MARKER).write_text(json.dumps(record, indent=1))
        return publish(scratch, target) or record
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def step(log: Log, label: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    log(f"environment: {label} in {time.monotonic() - started:.2f}s")


def clear_leftovers(target: Path, keep_target: bool = False) -> None:
    """Scratch dirs of builds of this key that died, and (unless `keep_target`) a target without its marker
    (never published by us, so nothing uses it); safe because the key's lock is held."""
    for leftover in target.parent.glob(f".{target.name}.building-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if target.exists() and not keep_target:
        stale = target.with_name(f".{target.name}.building-stale-{secrets.token_hex(4)}")
        target.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)


def sweep_leftovers(envs: Path) -> int:
    """The scratch dirs of builds that died with their launcher (`kill -9` during an install), for every
    key no build holds now (its lock taken without waiting); they stayed until that key was built again.
    Returns how many keys had some."""
    from clearml_task import locks

    if not envs.is_dir():
        return 0
    keys = {entry.name[1:].split(".building-", 1)[0] for entry in envs.glob(".*.building-*")}
    swept = 0
    for key in sorted(keys):
        held = locks.hold(envs / f"{key}.lock")
        if held is None:
            continue  # a build of this key is going on
        try:
            clear_leftovers(envs / key, keep_target=True)
            swept += 1
        finally:
            held.close()
    return swept


def publish(scratch: Path, target: Path) -> dict[str, Any] | None:
    """Rename the finished env into place (atomic); None when it is ours, else the record of the env another
    launcher put there first (e.g. on a shared file system where the lock did not hold)."""
    try:
        scratch.rename(target)
    except OSError:
        winner = load(target)
        if winner is None:
            raise
        return winner
    return None


def install(uv: Uv, plan: Plan, env: Path, root: Path, workdir: Path) -> list[str]:
    """Install the plan's requirements into `env`; the requirement lines installed."""
    python = str(venv_python(env))
    hint = INSTALL_HINTS.get(plan.source, "")
    here = workdir if workdir.is_dir() else root  # relative paths in requirement lines start from here
    installed: list[str] = []
    try:
        if plan.installer == "pip":
            files = plan.files
            if plan.source == "task":
                files = [env / TASK_REQUIREMENTS]
                files[0].write_text("\n".join(plan.lines) + "\n")
            arguments = [argument for path in files for argument in ("-r", str(path))]
            uv.run(["pip", "install", "--python", python, *arguments], cwd=here, hint=hint)
            installed = plan.lines
        elif plan.installer == "sync" and plan.project is not None:
            installed = sync(uv, plan.project, plan.lock, env, root, hint)
        elif plan.installer == "poetry" and plan.project is not None:
            installed = poetry_install(uv, plan.project, env, hint)
    except ReproductionError as error:
        raise install_checks.without_content(error, file_lines(plan)) from None
    if plan.extra:
        extra = env / EXTRA_REQUIREMENTS
        extra.write_text("\n".join(plan.extra) + "\n")
        uv.run(
            ["pip", "install", "--python", python, "-r", str(extra)], cwd=here, hint=INSTALL_HINTS["extra"]
        )
    return installed + plan.extra


def file_lines(plan: Plan) -> list[str]:
    """The lines of the checkout's files the plan installs from (none for the task's own lines)."""
    if plan.source == "requirements.txt":
        return [item.split(":", 1)[1] for item in plan.material]
    paths = [plan.project / "pyproject.toml"] if plan.project is not None else []
    paths += [plan.lock] if plan.lock is not None else []
    return [
        line for path in paths if path.is_file() for line in path.read_text(errors="replace").splitlines()
    ]


def sync(uv: Uv, project_dir: Path, lock: Path | None, env: Path, root: Path, hint: str) -> list[str]:
    """`uv sync` of the project's dependencies into `env`. No workspace member is installed: the task runs
    them from its checkout, and an env shared between checkouts must not point into one (editable) or hold a
    copy of one commit's code. A uv.lock this writes (there was none) is removed: the checkout stays as is."""
    project = ["--project", str(project_dir)]
    written = locks_to_remove(root, project_dir)
    locked = ["--locked"] if lock else []
    try:
        uv.run(
            ["sync", *project, "--python", str(venv_python(env)), "--no-install-workspace", *locked],
            cwd=project_dir,
            extra={"UV_PROJECT_ENVIRONMENT": str(env)},
            hint=hint,
        )
        exported = uv.run(
            ["export", *project, "--frozen", "--no-hashes", "--no-emit-workspace"],
            cwd=project_dir,
            failure="uv export failed",
        )
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    return requirement_lines(exported)


def locks_to_remove(root: Path, project_dir: Path) -> list[Path]:
    """The uv.lock files a `uv sync` of `project_dir` could write that are not there yet (none may lead
    outside the checkout): removed once it ran, so the checkout stays as it is."""
    paths = [root / d / "uv.lock" for d in descent(relative(root, project_dir))]
    for path in paths:
        install_checks.stays_inside(root, path, f"the repository's {path.relative_to(root)}")
    return [path for path in paths if not path.exists()]


def declared_failure(stderr: str, plan: Plan) -> ReproductionError:
    """The error for uv failing to install what the checkout declares (its stderr): the same words whether
    uv ran here or in a container."""
    error = failed(stderr, "", INSTALL_HINTS.get(plan.source, ""))
    return install_checks.without_content(error, file_lines(plan))


def poetry_install(uv: Uv, project_dir: Path, env: Path, hint: str) -> list[str]:
    """`poetry install --no-root` from the project's poetry.lock into `env` (the active virtualenv to Poetry,
    which uv runs from PyPI as a tool); the project itself is not installed (the task runs it from its
    checkout). A lock that does not match the pyproject.toml fails, as `uv sync --locked` does."""
    poetry = {
        "VIRTUAL_ENV": str(env),
        "POETRY_NO_INTERACTION": "1",
        "POETRY_CACHE_DIR": str(uv.cache.parent / "poetry-cache"),
        "POETRY_VIRTUALENVS_CREATE": "false",
    }
    uv.run(
        ["tool", "run", "--from", POETRY, "poetry", "install", "--no-root", "--directory", str(project_dir)],
        cwd=project_dir,
        extra=poetry,
        hint=hint,
    )
    frozen = uv.run(["pip", "freeze", "--python", str(venv_python(env))], failure="uv pip freeze failed")
    return requirement_lines(frozen)


# --- uv ------------------------------------------------------------------------------------------------


def uv_cache(cache_dir: Path) -> Path:
    """uv's download cache: the operator's own `UV_CACHE_DIR` when it is set (shared with their uv and with
    other launcher homes on the machine), else `uv-cache` in the launcher's `cache_dir`."""
    given = os.environ.get("UV_CACHE_DIR", "").strip()
    return Path(given).expanduser().absolute() if given else cache_dir / "uv-cache"


def find_uv() -> str:
    try:
        import uv
    except ImportError:
        path = None
    else:
        try:
            path = uv.find_uv_bin()
        except FileNotFoundError:
            path = None
    if path is None:
        raise ReproductionError(
            "uv is not installed for the launcher",
            hint="install it where clearml-launcher runs: pip install uv",
        )
    return str(path)


class Uv:
    """The uv binary with this launcher's settings: a shared cache, no Python downloads, plain output."""

    def __init__(self, binary: str, cache: Path) -> None:
        self.binary = binary
        self.cache = cache
        self.version = self.run(["--version"], failure="uv does not run").split()[1]

    def environ(self, extra: dict[str, str]) -> dict[str, str]:
        ignored = ("VIRTUAL_ENV", "CONDA_PREFIX", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONHOME")
        env = {name: value for name, value in os.environ.items() if name not in ignored}
        env |= {"UV_CACHE_DIR": str(self.cache), "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
        # compiled once when the env is built, not at every start of every task (the clearml SDK alone
        # imports ~0.9 s faster); tasks may run with PYTHONDONTWRITEBYTECODE and never write them
        env["UV_COMPILE_BYTECODE"] = "1"
        return env | extra

    def run(
        self,
        arguments: list[str],
        *,
        cwd: Path | None = None,
        extra: dict[str, str] | None = None,
        failure: str = "",
        hint: str = "",
    ) -> str:
        """uv's stdout; a failure raises ReproductionError with uv's key line as the reason."""
        command = [self.binary, *arguments]
        if arguments[0] not in ("--version", "tool"):  # a tool's arguments end the command line
            command.append("--no-python-downloads")
        from clearml_task import stoppable

        try:
            done = stoppable.run(command, cwd=cwd, env=self.environ(extra or {}), text=True)
        except OSError as error:
            raise ReproductionError(
                f"uv does not run: {error}", hint="reinstall uv: pip install uv"
            ) from error
        if done.returncode != 0:
            raise failed(done.stderr, failure, hint)
        return done.stdout


def failed(stderr: str, failure: str, hint: str) -> ReproductionError:
    """The error for a failed uv command: "<failure>: <uv's error>: <its last cause>", uv's hints appended to
    ours. With no `failure`, an install: a line uv cannot parse, or requirements it cannot install."""
    stderr = scrub(stderr)  # an index URL's credentials, say
    stderr = re.sub(rf"[^\s`'\"]*{re.escape(TASK_REQUIREMENTS)}", "script.requirements.pip", stderr)
    stderr = re.sub(rf"[^\s`'\"]*{re.escape(EXTRA_REQUIREMENTS)}", "script.requirements.extra", stderr)
    error, causes, hints = "", [], []
    for line in (line.strip() for line in stderr.splitlines()):
        if line.startswith("error:") and not error:
            error = line.removeprefix("error:").strip()
        elif line.startswith(("cause:", "Caused by:")):  # uv ≥ 0.6 says "cause:", older ones "Caused by:"
            causes.append(line.partition(":")[2].strip())
        elif line.startswith("hint:"):
            hints.append(line.removeprefix("hint:").strip())
    lines = [line for line in stderr.splitlines() if line.strip()]
    summary = ": ".join(filter(None, [error, causes[-1] if causes else ""])) or (lines[-1] if lines else "")
    if not failure:
        bad_line = "parse requirement" in error or error.startswith("Unexpected")
        failure = "bad requirement line" if bad_line else "cannot install the task's requirements"
    return ReproductionError(
        f"{failure}: {summary}".strip(": "), detail=stderr, hint="; ".join(filter(None, [hint, *hints]))
    )
