"""What a task's install plan may name, checked before uv runs: the files the launcher reads or has uv read
or write (requirements files and their includes, pyproject.toml, uv.lock) stay inside the checkout, through
symlinks too; a local path in a requirement line (a direct reference, `-e`, `-f`) stays inside it as well;
index options (`--index-url`, `--extra-index-url`, `-f`) are honoured and named in one log line, without
credentials. A task may install what it likes from where it likes: what it may not do is make the launcher
read, build or overwrite a file outside its checkout before its own code runs.

A refusal is a ReproductionError whose reason names the field or file and why — never a file's content."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from clearml_task.git.urls import scrub
from clearml_task.requirements.files import INCLUDE, Entry, include_path, read_entries, read_text
from clearml_task.requirements.readers import Reader, directory_reader

from .errors import ReproductionError

INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--no-index")
# Options whose value may name a local path (or a file: URL): a package to build, a directory of them, or
# an index (a file: index outside the checkout would have uv build a package from there).
_PATH_OPTIONS = ("-e", "--editable", "-f", "--find-links", "-i", "--index-url", "--extra-index-url")
_LOCAL = re.compile(r"^([.~/\\]|file:)", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ARCHIVES = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
# ${NAME}: uv fills it in from its environment (the launcher's, which holds the server's keys)
_VARIABLE = re.compile(r"\$\{")
_NAMED_DIRECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@\s*(\S+)")


def inside(root: Path, path: Path | str) -> bool:
    """`path`, symlinks resolved, is `root` or under it."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def stays_inside(root: Path, path: Path, what: str) -> Path:
    """`path` unless it exists (a dangling symlink too) and leads outside `root`: then the refusal."""
    if os.path.lexists(path) and not inside(root, path):
        raise ReproductionError(
            f"{what} is a symlink that leaves the checkout; the launcher does not read or write through it",
            hint="commit the file itself, not a link to a file elsewhere",
        )
    return path


def checkout_reader(root: Path) -> Reader:
    """The checkout's files, for deciding what it declares; a file that leads outside it is refused."""
    read = directory_reader(root)

    def guarded(path: str) -> str | None:
        if not path.endswith("/"):
            stays_inside(root, root / path, f"the repository's {path.lstrip('./')}")
        return read(path)

    return guarded


def read_requirement_files(root: Path, files: Iterable[Path]) -> list[Entry]:
    """The entries of the checkout's requirements files, their -r / -c includes followed only inside the
    checkout: an include that leaves it is refused before it is read."""

    def read(path: str) -> str | None:
        stays_inside(root, Path(path), f"the requirements file {show(path)}")
        return read_text(path)

    def join(including: str, target: str) -> str:
        joined = include_path(including, target)
        if not inside(root, joined):
            raise ReproductionError(
                f"{show(including)} includes {target!r}, which is outside the checkout; refused",
                hint="a requirements file may include only files of the task's repository",
            )
        return os.path.realpath(joined)

    def show(path: str) -> str:
        return os.path.relpath(path, root) if inside(root, path) else path

    entries: list[Entry] = []
    for path in files:
        entries += read_entries(str(path), read, join, show, strict=False)
    return entries


def check_lines(lines: Iterable[str], where: str, root: Path, bases: Iterable[Path]) -> None:
    """Every local path a requirement line names (a direct reference, `-e PATH`, `-f DIR`), relative to any
    of `bases` (where uv may resolve it from), stays inside the checkout."""
    from launcher.workspace import encodable

    bases = list(bases)
    for line in lines:
        if not encodable(line):
            raise ReproductionError(
                f"{where}: {scrub(line)!r} holds a lone surrogate, which is not text; refused",
                hint="a requirement line is text: a package, a URL or a path",
            )
        check_no_variable(line, where)
        if "\ufeff" in line:  # a byte-order mark hides how the line starts from these checks, not from uv
            raise ReproductionError(
                f"{where}: {scrub(line)!r} holds a byte-order mark (U+FEFF) inside it; refused",
                hint="save the requirement lines as plain UTF-8 text",
            )
        if INCLUDE.match(line):
            continue  # includes are followed (and checked) by read_requirement_files
        path = local_path(line)
        if path is None:
            continue
        for base in bases:
            if not inside(root, base / os.path.expanduser(path)):
                raise ReproductionError(
                    f"{where}: {scrub(line)!r} names a path outside the checkout; refused",
                    hint="a local requirement, -e or -f path must be inside the task's repository",
                )


def check_no_variable(value: str, where: str) -> None:
    """A value uv reads names no environment variable: uv would fill it in from the launcher's environment
    (the server's keys among it), and the index or path it makes could send them anywhere."""
    if _VARIABLE.search(value):
        raise ReproductionError(
            f"{where}: {scrub(value)!r} names an environment variable (${{...}}), which uv would fill in "
            "from the launcher's environment; refused",
            hint="write the value itself; a private index the worker needs belongs in the worker's own uv "
            "settings (UV_INDEX_URL, UV_EXTRA_INDEX_URL)",
        )


def checked_uv_settings(root: Path, start: Path) -> list[Path]:
    """The files of the checkout whose uv settings a uv run in `start` may read (each uv.toml, and each
    pyproject.toml with a [tool.uv] table, from `start` up to the checkout's root), each read once and
    checked (`_check_uv_settings`)."""
    found: list[Path] = []
    here = start
    while True:
        for name in ("uv.toml", "pyproject.toml"):
            path = stays_inside(root, here / name, f"the repository's {(here / name).relative_to(root)}")
            if not path.is_file():
                continue
            document = _toml(path)
            settings = document if name == "uv.toml" else {"tool.uv": _table(_table(document, "tool"), "uv")}
            if name == "uv.toml" or settings["tool.uv"]:
                _check_uv_settings(root, path, settings)
                found.append(path)
        if here == root or not here.is_relative_to(root):
            return found
        here = here.parent


# uv settings whose strings are never paths uv reads or writes: a build's environment variables, the
# command a compiled file's header names.
NOT_PATHS = frozenset({"extra-build-variables", "custom-compile-command"})


def _check_uv_settings(root: Path, path: Path, settings: dict[str, Any]) -> None:
    """The settings of a checkout's uv.toml (all of it) or pyproject.toml ([tool.uv]) name no local path
    outside the checkout (an index, find-links, a target or prefix to install into, a cache, a source to
    build) and no environment variable."""
    where = f"the repository's {path.relative_to(root)}"
    for key, value in _strings(settings):
        if any(part in NOT_PATHS for part in key.split(".")):
            continue
        check_no_variable(value, f"{where}: {key}")
        local = local_path(value)
        if local is not None and not inside(root, path.parent / os.path.expanduser(local)):
            raise ReproductionError(
                f"{where}: {key} names a path outside the checkout; refused",
                hint="uv may read, build or write only what is inside the task's repository",
            )


def _strings(value: object, key: str = "") -> Iterable[tuple[str, str]]:
    """Every string in a TOML value, with the dotted key it is under."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, key)


def check_pyproject(root: Path, path: Path) -> None:
    """The local paths a pyproject.toml makes uv read or build stay inside the checkout: those of its
    dependency lines, its [tool.uv.sources] and its workspace members. TOML it cannot read is refused."""
    document = _toml(path)
    where = f"the repository's {path.relative_to(root)}"
    project = _table(document, "project")
    lines = list(project.get("dependencies") or [])
    for table in (_table(project, "optional-dependencies"), _table(document, "dependency-groups")):
        lines += [line for group in table.values() if isinstance(group, list) for line in group]
    lines += list(_table(document, "build-system").get("requires") or [])
    check_lines([line for line in lines if isinstance(line, str)], where, root, [path.parent])
    uv = _table(_table(document, "tool"), "uv")
    named = [
        (f"[tool.uv.sources] {name}", entry.get("path"))
        for name, spec in _table(uv, "sources").items()
        for entry in (spec if isinstance(spec, list) else [spec])
        if isinstance(entry, dict)
    ]
    named += [
        ("[tool.uv.workspace] members", member) for member in _table(uv, "workspace").get("members") or []
    ]
    named += _poetry_paths(_table(_table(document, "tool"), "poetry"))
    for what, value in named:
        if isinstance(value, str) and not inside(root, path.parent / os.path.expanduser(value)):
            raise ReproductionError(
                f"{where}: {what} names a path outside the checkout; refused",
                hint="uv may read or build only what is inside the task's repository",
            )


def _poetry_paths(poetry: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The local paths a [tool.poetry] table has Poetry read or build: path dependencies (of the main, dev
    and group tables) and file: sources."""
    tables = [_table(poetry, "dependencies"), _table(poetry, "dev-dependencies")]
    groups = [group for group in _table(poetry, "group").values() if isinstance(group, dict)]
    tables += [_table(group, "dependencies") for group in groups]
    found: list[tuple[str, str | None]] = []
    for table in tables:
        for name, spec in table.items():
            for entry in spec if isinstance(spec, list) else [spec]:
                if isinstance(entry, dict):
                    found += [(f"[tool.poetry] {name}", _local(entry.get(key))) for key in ("path", "url")]
    sources = poetry.get("source")
    for source in sources if isinstance(sources, list) else []:
        if isinstance(source, dict):
            found.append(("[[tool.poetry.source]] url", _local(source.get("url"))))
    return found


def check_poetry_lock(root: Path, lock: Path) -> None:
    """A poetry.lock installs a directory or file source only from inside the checkout."""
    for package in _toml(lock).get("package") or []:
        source = _table(package, "source") if isinstance(package, dict) else {}
        url = source.get("url") if source.get("type") in ("directory", "file") else None
        if isinstance(url, str) and not inside(root, lock.parent / os.path.expanduser(url)):
            raise ReproductionError(
                f"the repository's {lock.relative_to(root)}: {package.get('name')!r} comes from a path "
                "outside the checkout; refused",
                hint="Poetry may install only what is inside the task's repository",
            )


def _local(value: object) -> str | None:
    """A path dependency's path, or a file: URL's path; None for anything else."""
    if not isinstance(value, str):
        return None
    return local_path(value) or (value if value and "://" not in value else None)


def _toml(path: Path) -> dict[str, Any]:
    """The TOML file's tables ({} when it cannot be read); one that uv might read but this parser cannot is
    refused, never passed unchecked."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")  # uv, too, reads past a leading BOM
    except OSError:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ReproductionError(
            f"the repository's {path.name} is not TOML the launcher can check ({e}); refused",
            hint="make it valid TOML 1.0 (no trailing comma in an inline table): uv would read it unchecked",
        ) from None


def _table(table: dict[str, Any], key: str) -> dict[str, Any]:
    found = table.get(key)
    return found if isinstance(found, dict) else {}


def local_path(line: str) -> str | None:
    """The local path a requirement line names, or None (a name, a remote URL, another option)."""
    value = line
    for option in _PATH_OPTIONS:
        if line == option or not line.startswith(option):
            continue
        rest = line[len(option) :]
        if rest[:1] in (" ", "="):
            value = rest[1:].strip()
            break
        if len(option) == 2 and rest:  # -e./pkg
            value = rest.strip()
            break
    else:
        if line.startswith("-"):
            return None
        named = _NAMED_DIRECT.match(line)
        value = named[2] if named else line.split(";")[0].strip()
    value = re.sub(r"^(git|hg|svn|bzr)\+(?=file:)", "", value, flags=re.IGNORECASE)
    if not _LOCAL.match(value) and not _path_like(value):
        return None
    if value.lower().startswith("file:"):
        parts = urlsplit(value)
        return unquote(parts.path) or "."
    return value.split("#")[0]


def _path_like(value: str) -> bool:
    """A value uv takes for a path though it starts with neither `.` nor `/`: it holds a separator, or names
    an archive (`sub/../../pkg`, `pkg-1.0-py3-none-any.whl`); a URL (`scheme://`) is not one."""
    if _SCHEME.match(value):
        return False
    word = value.split("#")[0].split()[0] if value.split() else ""
    return "/" in word or "\\" in word or word.lower().endswith(_ARCHIVES)


def index_line(lines: Iterable[str]) -> str:
    """The index options among the requirement lines, credentials removed, in one line ("" when none)."""
    found = [scrub(line) for line in lines if line.startswith(INDEX_OPTIONS)]
    return f"package indexes: {'; '.join(dict.fromkeys(found))}" if found else ""


def without_content(error: ReproductionError, lines: Iterable[str]) -> ReproductionError:
    """`error`, unless its reason (the task's status message) quotes a line of the checkout's files: then
    the same failure, with uv's words (and so the line) left to the task's log."""
    quoted = any(len(line.strip()) >= 3 and line.strip() in error.reason for line in lines)
    if not quoted:
        return error
    failure = error.reason.split(":", 1)[0]
    return ReproductionError(
        f"{failure}: uv's error quotes the repository's requirements; it is in the task's log",
        detail=error.detail,
        hint=error.hint,
    )
