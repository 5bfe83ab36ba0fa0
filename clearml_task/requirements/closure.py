"""The import closure of an entry point: the modules it imports through the repository's own modules
(absolute imports resolved against the entry point's dir, the working dir, the root and src/, then beside the
importing file; relative imports; packages' __init__.py files and the submodules `from package import name`
loads), and the imports from outside the repository and the standard library that it reaches.

An import that names one of the project's own files is never taken for a package: a package of that name on
PyPI is someone else's (dependency confusion). A sibling module imported by name (`import utils` in
sub/job.py beside sub/utils.py, found at run time through a sys.path entry the code adds) is the project's;
so is a local file that does not travel (ignored by git, or beside a script sent alone): it is named in a
note instead."""

from __future__ import annotations

import posixpath
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from clearml_task.requirements.imports import Import, scan_python
from clearml_task.requirements.readers import Reader, join

IGNORED = (
    "is a local file that git ignores: it does not travel with the task (commit it, or stop ignoring it)"
)
ALONE = (
    "is a local file, not a package: it stays behind, as the script travels alone (send both in a git "
    "repository)"
)


@dataclass
class Use:
    """A module from outside the repository and the standard library, as the closure imports it."""

    top: str
    modules: set[str] = field(default_factory=set)  # dotted names imported (for namespace packages)
    origin: str = ""  # the first required import, else the first optional one
    required: bool = False


class Closure:
    """The modules the entry point imports, through the repository's own modules."""

    def __init__(
        self,
        read: Reader,
        roots: Sequence[str],
        left_behind: Reader | None = None,
        why_behind: str = IGNORED,
    ) -> None:
        self.read = read
        self.roots = list(dict.fromkeys(roots))
        self.left_behind = Closure(left_behind, roots) if left_behind is not None else None
        self.why_behind = why_behind  # what the note on an import of a file left behind says
        self.uses: dict[str, Use] = {}
        self.notes: list[str] = []
        self.state: dict[str, bool] = {}  # file read -> reached by a required path
        self.queue: deque[tuple[str, bool]] = deque()
        self.resolved: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}

    # --- the walk
    def run(self, start: list[Import], entry: str, start_files: Sequence[str] = ()) -> None:
        for path in start_files:
            self.enqueue(path, False)
        self.follow(start, entry, False)
        while self.queue:
            path, optional = self.queue.popleft()
            done = self.state.get(path)
            if done or (done is False and optional):  # already read, at least as strongly
                continue
            self.state[path] = not optional
            self.follow(self.scan(path), path, optional)

    def enqueue(self, path: str, optional: bool) -> None:
        done = self.state.get(path)
        if done is None or (done is False and not optional):
            self.queue.append((path, optional))

    def scan(self, path: str) -> list[Import]:
        text = self.read(path)
        if text is None:
            return []
        try:
            return scan_python(text, path)
        except (SyntaxError, ValueError) as error:
            self.notes.append(
                f"{path} does not parse ({getattr(error, 'msg', error)}): its imports are not read"
            )
            return []

    def follow(self, imports: list[Import], path: str, optional: bool) -> None:
        for found in imports:
            weak = optional or found.optional
            if found.level:
                self.relative(found, path, weak)
            elif found.module:
                self.absolute(found, path, weak)

    def relative(self, found: Import, path: str, optional: bool) -> None:
        base = posixpath.dirname(path) or "."
        for _ in range(found.level - 1):
            base = ".." if base in ("", ".") else posixpath.dirname(base) or "."
        if base == ".." or base.startswith("../"):
            self.notes.append(f"{found.statement} ({found.where}) goes above the repository: not followed")
            return
        init = join(base, "__init__.py")
        resolved = self.descend(base, found.module.split(".")) if found.module else ((), base, True)
        if resolved is None:
            self.notes.append(f"{found.statement} ({found.where}): no such module in the repository")
            return
        for path in [init, *self.with_submodules(resolved, found.names)]:
            if self.is_file(path):
                self.enqueue(path, optional)

    def absolute(self, found: Import, path: str, optional: bool) -> None:
        parts = found.module.split(".")
        files = self.own(parts, found.names)
        top = parts[0]
        if not files and (top in sys.stdlib_module_names or top in sys.builtin_module_names):
            return
        files = files or self.siblings(parts, found.names, path)
        if files:  # a directory holding no module of it (e.g. wandb/ run logs) hides nothing
            for file in files:
                self.enqueue(file, optional)
            return
        behind = self.left_behind
        if behind is not None and (
            behind.own(parts, found.names) or behind.siblings(parts, found.names, path)
        ):
            self.notes.append(f"{found.statement} ({found.where}) {self.why_behind}")
            return
        use = self.uses.setdefault(top, Use(top))
        use.modules.update([found.module, *(f"{found.module}.{name}" for name in found.names if name != "*")])
        origin = f"{found.statement} ({found.where})"
        if not optional and not use.required:
            use.required, use.origin = True, origin
        elif not use.origin:
            use.origin = origin

    def own(self, parts: list[str], names: tuple[str, ...], where: str | None = None) -> list[str]:
        """The repository's files an absolute import executes, resolved against the roots (or, given `where`,
        against that directory alone); [] when it is not the repository's. Remembered per import."""
        key = (where or "", ".".join(parts), names)
        files = self.resolved.get(key)
        if files is None:
            files = self.resolved[key] = self.own_files(parts, names, [where] if where else self.roots)
        return files

    def siblings(self, parts: list[str], names: tuple[str, ...], path: str) -> list[str]:
        """The files an absolute import finds beside the importing file, unless that is the file itself
        (utils/yaml.py importing yaml means PyYAML)."""
        return [file for file in self.own(parts, names, posixpath.dirname(path) or ".") if file != path]

    def own_files(self, parts: list[str], names: tuple[str, ...], roots: Sequence[str]) -> list[str]:
        """The files of the first of `roots` that has the import (`own`, not remembered)."""
        for root in roots:
            resolved = self.descend(root, parts)
            files = self.with_submodules(resolved, names) if resolved is not None else []
            if files:
                return files
        return []

    def with_submodules(
        self, resolved: tuple[tuple[str, ...], str | None, bool], names: tuple[str, ...]
    ) -> list[str]:
        """The files of a resolved import plus those of the submodules `from package import name` loads."""
        files, package, complete = resolved
        found = list(files)
        if complete and package is not None:
            for name in names:
                sub = self.descend(package, [name]) if name != "*" else None
                found += sub[0] if sub is not None else ()
        return found

    # --- the repository's own modules
    def descend(self, directory: str, parts: list[str]) -> tuple[tuple[str, ...], str | None, bool] | None:
        """Files that importing `parts` from `directory` executes, the package dir reached (None when the last
        part is a module file), and whether every part was found; None when the first part is not there."""
        files: list[str] = []
        current = directory
        for index, part in enumerate(parts):
            base = join(current, part)
            if self.is_file(base + ".py"):
                files.append(base + ".py")
                return tuple(files), None, index == len(parts) - 1
            if self.is_file(base + "/__init__.py"):
                files.append(base + "/__init__.py")
            elif not self.is_dir(base):
                return (tuple(files), current, False) if index else None
            current = base
        return tuple(files), current, True

    def is_file(self, path: str) -> bool:
        return self.read(path) is not None

    def is_dir(self, path: str) -> bool:
        return self.read(path + "/") is not None
