"""What a repository declares, read as the launcher installs it: every requirements.txt from the root down to
the working dir; else the [project] dependencies of a pyproject.toml in the working dir or the root, with a
uv.lock beside it (or at the root) meaning `uv sync --locked`. clearml-task and the launcher both find them
here."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from clearml_task.errors import UserError
from clearml_task.requirements.files import Entry, Requirement, apply_constraints, check_line, read_entries
from clearml_task.requirements.readers import Reader, clean, descent, join, join_repo, show_repo


@dataclass(frozen=True)
class Declared:
    """The declaring files of a repository (root-relative paths)."""

    source: str  # "requirements.txt" | "pyproject.toml" | "uv.lock"
    files: tuple[str, ...]  # the requirements.txt files, root first; else the pyproject.toml (and uv.lock)
    project: str | None = None  # the pyproject.toml's directory
    lock: str | None = None  # the uv.lock: the launcher runs `uv sync --locked`
    table: dict[str, object] | None = None  # the pyproject.toml's [project] table (None: it does not parse)


def find_declared(read: Reader, working_dir: str, *, strict: bool = True) -> Declared | None:
    """The files the repository declares its requirements in; None when it declares nothing. A pyproject.toml
    declares only with a [project] table (one that configures tools declares nothing); one that is not valid
    TOML is an error when `strict`, else it counts (the launcher lets uv say what is wrong)."""
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
        try:
            table = project_table(text, path)
        except UserError:
            if strict:
                raise
            table = None
        else:
            if table is None:
                continue
        locks = (join(d, "uv.lock") for d in dict.fromkeys((project, ".")))
        lock = next((candidate for candidate in locks if read(candidate) is not None), None)
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


def project_table(text: str, path: str) -> dict[str, object] | None:
    """A pyproject.toml's [project] table; None when it has none (it only configures tools). Bad TOML is an
    error naming the file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path} is not valid TOML: {error}") from None
    table = document.get("project")
    return table if isinstance(table, dict) else None
