"""What a repository declares, read as the launcher installs it: every requirements.txt from the root down to
the working dir; else a pyproject.toml in the working dir or the root: its [project] dependencies, with a
uv.lock beside it (or at the root) meaning `uv sync --locked`; else, with a poetry.lock beside it (a Poetry
project: [tool.poetry] or [project]), `poetry install` from the lock. clearml-task and the launcher both
find them here."""

from __future__ import annotations

import sys
from typing import Any

from clearml_task.errors import UserError
from clearml_task.records import record
from clearml_task.requirements.files import Entry, Requirement, apply_constraints, check_line, read_entries
from clearml_task.requirements.readers import Reader, clean, descent, join, join_repo, show_repo


@record(frozen=True)
class Declared:
    """The declaring files of a repository (root-relative paths)."""

    source: str  # "requirements.txt" | "pyproject.toml" | "uv.lock" | "poetry.lock"
    files: tuple[str, ...]  # the requirements.txt files, root first; else the pyproject.toml (and its lock)
    project: str | None = None  # the pyproject.toml's directory
    lock: str | None = None  # the uv.lock (`uv sync --locked`) or poetry.lock (`poetry install`)
    table: dict[str, object] | None = None  # the pyproject.toml's [project] table (None: it does not parse)


def find_declared(read: Reader, working_dir: str, *, strict: bool = True) -> Declared | None:
    """The files the repository declares its requirements in; None when it declares nothing. A pyproject.toml
    declares only with a [project] table, or a [tool.poetry] one with a poetry.lock beside it (one that
    configures other tools declares nothing); one that is not valid TOML is an error when `strict`, else it
    counts (the launcher lets uv say what is wrong)."""
    working_dir = clean(working_dir)
    files = [join(d, "requirements.txt") for d in descent(working_dir)]
    files = [path for path in files if read(path) is not None]
    if files:
        return Declared("requirements.txt", tuple(files))
    for project in dict.fromkeys((working_dir, ".")):
        path = join(project, "pyproject.toml")
        text = read(path)
        if text is None:
            continue
        poetry_lock = join(project, "poetry.lock")
        try:
            document = _toml(text, path)
        except UserError:
            if strict:
                raise
            document = None
        table = _project(document)
        poetry = document is not None and isinstance(document.get("tool", {}).get("poetry"), dict)
        locked_by_poetry = (poetry or table is not None) and read(poetry_lock) is not None
        if document is not None and table is None and not locked_by_poetry:
            continue
        locks = (join(d, "uv.lock") for d in dict.fromkeys((project, ".")))
        lock = next((candidate for candidate in locks if read(candidate) is not None), None)
        if lock is None and locked_by_poetry:
            return Declared("poetry.lock", (path, poetry_lock), project, poetry_lock, table)
        source = "uv.lock" if lock else "pyproject.toml"
        return Declared(source, (path, lock) if lock else (path,), project, lock, table)
    return None


def declared_requirements(declared: Declared, read: Reader, notes: list[str]) -> tuple[Requirement, ...]:
    """The lines the declaring files give, every one checked: the requirements.txt files' (includes followed,
    constraints applied), or the pyproject.toml's [project] dependencies."""
    if declared.source == "requirements.txt":
        entries: list[Entry] = []
        seen: set[str] = set()
        for path in declared.files:
            entries += read_entries(path, read, join_repo, show_repo, seen=seen)
        return tuple(apply_constraints(entries, notes))
    if declared.source == "poetry.lock" and declared.lock:
        return _poetry_locked(declared.lock, read(declared.lock) or "")
    table = declared.table or {}
    path = declared.files[0]
    lines = table.get("dependencies") or []
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise UserError(f"{path}: [project] dependencies is not a list of strings")
    found: list[Requirement] = []
    for number, line in enumerate(lines, 1):
        where = f"{path} [project] dependencies #{number}"
        check_line(line, where)
        found.append(Requirement(line, where))
    dynamic = table.get("dynamic")
    if isinstance(dynamic, list) and "dependencies" in dynamic:
        notes.append(f"{path} declares its dependencies as dynamic: the launcher resolves them")
    return tuple(found)


def _poetry_locked(path: str, text: str) -> tuple[Requirement, ...]:
    """The packages a poetry.lock pins (those of every group, as `poetry install` installs them; optional
    extras left out), as `name==version` lines with their markers."""
    packages = _toml(text, path).get("package")
    found: list[Requirement] = []
    for number, package in enumerate(packages if isinstance(packages, list) else [], 1):
        if not isinstance(package, dict) or package.get("optional") is True:
            continue
        line = f"{package.get('name')}=={package.get('version')}"
        markers = package.get("markers")
        if isinstance(markers, str) and markers:
            line += f" ; {markers}"
        where = f"{path} package #{number}"
        check_line(line, where)
        found.append(Requirement(line, where))
    return tuple(found)


def project_table(text: str, path: str) -> dict[str, object] | None:
    """A pyproject.toml's [project] table; None when it has none (it only configures tools). Bad TOML is an
    error naming the file."""
    return _project(_toml(text, path))


def _project(document: dict[str, object] | None) -> dict[str, object] | None:
    table = document.get("project") if document is not None else None
    return table if isinstance(table, dict) else None


def _toml(text: str, path: str) -> dict[str, Any]:
    """A TOML file's document; bad TOML is an error naming the file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path} is not valid TOML: {error}") from None
