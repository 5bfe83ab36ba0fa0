"""Readers of a repository's files (a local work tree, or blobs held in memory) and its root-relative paths.
A Reader takes a path relative to the repository root, "/"-separated, and gives the file's text, or None
when there is no such file; a path ending in "/" asks about a directory: "" when it exists, None otherwise.
So a local checkout and a remote repository are read the same way."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Collection, Iterable, Mapping

from clearml_task.requirements.files import INCLUDE, logical_lines

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it the same way)
if TYPE_CHECKING:
    from pathlib import Path

Reader = Callable[[str], "str | None"]

# The files decide() may ask a Reader for: what a remote capture has to fetch (by suffix or name), besides
# what the requirements files include.
READ_SUFFIXES = (".py", ".ipynb")
DECLARING_FILES = ("requirements.txt", "pyproject.toml", "uv.lock", "poetry.lock")


def clean(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/")) if path else "."


def join(directory: str, name: str) -> str:
    return name if directory in ("", ".") else f"{directory}/{name}"


def join_repo(including: str, target: str) -> str:
    """The root-relative path of a file a requirements file includes (relative to the including file)."""
    return clean(posixpath.join(posixpath.dirname(including), target))


def show_repo(path: str) -> str:
    return path


def descent(working_dir: str) -> list[str]:
    """The directories from the root down to the working dir, root first."""
    if working_dir == ".":
        return ["."]
    parts = working_dir.split("/")
    return [".", *("/".join(parts[: depth + 1]) for depth in range(len(parts)))]


def nothing(path: str) -> None:
    return None


def memo(read: Reader) -> Reader:
    cache: dict[str, str | None] = {}

    def memoized(path: str) -> str | None:
        if path not in cache:
            cache[path] = read(path)
        return cache[path]

    return memoized


def directory_reader(root: Path | str, only: Collection[str] | None = None) -> Reader:
    """Files under a local directory (a checkout's work tree); nothing outside it. With `only` (root-relative
    paths, e.g. what a capture's index holds), nothing else either: ignored files do not travel."""
    base = os.path.realpath(root)
    directories = _directories(only) if only is not None else set()

    def read(path: str) -> str | None:
        relative = clean(path)
        if relative == ".." or relative.startswith("../") or posixpath.isabs(relative):
            return None
        if only is not None and relative not in (directories if path.endswith("/") else only):
            return None
        target = os.path.join(base, relative)
        if path.endswith("/"):
            return "" if os.path.isdir(target) else None
        try:
            with open(target, "rb") as handle:
                return decode(handle.read())
        except OSError:
            return None

    return read


def directories_reader(roots: Iterable[Path | str]) -> Reader:
    """Files under any of several local directories, from the first that has the path (a standalone script's
    neighbours: its own dir, the working dir, the repository root)."""
    readers = [directory_reader(root) for root in roots]

    def read(path: str) -> str | None:
        return next((found for found in (each(path) for each in readers) if found is not None), None)

    return read


def mapping_reader(files: Mapping[str, str | bytes]) -> Reader:
    """Files held in memory ({root-relative path: content}), e.g. blobs read from a commit."""
    contents = {clean(path): content for path, content in files.items()}
    directories = _directories(contents)

    def read(path: str) -> str | None:
        relative = clean(path)
        if path.endswith("/"):
            return "" if relative in directories else None
        content = contents.get(relative)
        return decode(content) if isinstance(content, bytes) else content

    return read


def _directories(paths: Iterable[str]) -> set[str]:
    """Every directory that holds one of `paths` ("." included)."""
    directories = {"."}
    for path in paths:
        parent = posixpath.dirname(path)
        while parent and parent not in directories:
            directories.add(parent)
            parent = posixpath.dirname(parent)
    return directories


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def wanted(path: str) -> bool:
    """Whether decide() may read this repository file (what a remote capture fetches first; the files the
    requirements files include come next, see `included`)."""
    return path.endswith(READ_SUFFIXES) or posixpath.basename(path) in DECLARING_FILES


def included(path: str, content: bytes) -> list[str]:
    """The root-relative paths a requirements file's -r / -c lines include ([] for the Python files,
    notebooks, pyproject.toml and lock files decide() reads: they include nothing)."""
    if path.endswith(READ_SUFFIXES) or posixpath.basename(path) in DECLARING_FILES[1:]:
        return []
    found = (INCLUDE.match(line) for _, line in logical_lines(decode(content)))
    return [join_repo(path, include[2].strip()) for include in found if include is not None]
