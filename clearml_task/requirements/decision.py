"""What the task needs installed, decided offline, in this order of precedence:

1. --force-no-requirements: nothing.
2. --requirements FILE (its -r / -c includes resolved) plus --packages;
3. --packages alone.
4. What the repository declares at the recorded commit with the patch applied (as the launcher reads it):
   every requirements.txt from the repository root down to the working dir; else the [project] dependencies
   of a pyproject.toml in the working dir or the root; a uv.lock beside it (or at the root) means the
   launcher runs `uv sync --locked`; else a poetry.lock beside a Poetry project's pyproject.toml means the
   launcher runs `poetry install` from it (the lock's packages are the lines recorded).
5. Otherwise detected: the entry point's import closure through the repository's own modules (relative
   imports and literal importlib.import_module / __import__ calls included; notebooks read too), without the
   standard library and the repository's own modules (an import of a local file never names a package:
   not a sibling of the importing file, nor a file git ignores, nor a neighbour of a script sent alone; the
   last two do not travel, and a note says so). Each import is mapped to the distribution installed
   here that provides it and pinned to the installed version (local labels such as +cu121 dropped); a module
   not installed here is named through pipreqs' import-name table (its data file only: pipreqs itself is
   never run, so nothing touches the network) and left unpinned. Imports guarded by try/except ImportError
   (or by a Python version / platform test) are optional and kept only when installed; imports under
   `if TYPE_CHECKING:` are ignored.
6. `clearml` is added when Task.init() is injected and it is not there already.

Every given or declared requirement line is checked as PEP 508 (with `packaging`); a bad one is an error that
names the file and line. Files of the repository are read through a `Reader` (path relative to the repository
root -> text, or None), so a local checkout and a remote repository are read the same way.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from clearml_task.records import record
from clearml_task.requirements.declared import declared_requirements, find_declared
from clearml_task.requirements.files import Given, Requirement, name_of
from clearml_task.requirements.readers import Reader, clean, join, memo, nothing

if TYPE_CHECKING:  # detection's modules are imported when the requirements are detected
    from clearml_task.requirements.imports import Import
    from clearml_task.requirements.installed import Installed


@record(frozen=True)
class Decision:
    # "none" | "given" | "requirements.txt" | "pyproject.toml" | "uv.lock" | "poetry.lock" | "detected"
    source: str
    requirements: tuple[Requirement, ...] = ()
    files: tuple[str, ...] = ()  # the repository files a declared source was read from (root-relative)
    lock: str | None = None  # the uv.lock / poetry.lock (root-relative) the launcher installs from
    notes: tuple[str, ...] = ()  # what was left out, and why

    @property
    def lines(self) -> list[str]:
        return [requirement.line for requirement in self.requirements]

    @property
    def declared(self) -> bool:
        return self.source in ("requirements.txt", "pyproject.toml", "uv.lock", "poetry.lock")

    @property
    def pip(self) -> list[str] | None:
        """The lines for script.requirements.pip, or None where the launcher installs the repository's own
        files at the commit (a declared source: it reads them in the same order) or nothing (none). A declared
        source with clearml on top records its lines too: ClearML's agent installs only `pip` (else the
        repository's requirements.txt), never `extra`, and without clearml the injected Task.init would not
        run there; our launcher still installs the declared files (`source`, `files` and `lock` say so)."""
        if self.source in ("given", "detected") and self.requirements:
            return self.lines
        if self.declared and self.extra:
            return self.lines
        return None

    @property
    def extra(self) -> list[str]:
        """Lines to install on top of a declared source (clearml for an injected Task.init())."""
        if not self.declared:
            return []
        return [r.line for r in self.requirements if r.origin == CLEARML_ORIGIN]

    def script_requirements(self) -> dict[str, object]:
        """The task document's script.requirements: `pip` for given / detected lines (and for a declared
        source with clearml on top, for ClearML's agent); `source` always; for a declared source the files
        read, the uv.lock and the lines to install on top (`extra`)."""
        recorded: dict[str, object] = {"source": self.source}
        if self.pip:
            recorded["pip"] = "\n".join(self.pip) + "\n"
        if self.declared:
            recorded["files"] = list(self.files)
        if self.lock:
            recorded["lock"] = self.lock
        if self.extra:
            recorded["extra"] = "\n".join(self.extra) + "\n"
        return recorded

    @property
    def title(self) -> str:
        count = f"{len(self.requirements)} line{'s' if len(self.requirements) != 1 else ''}"
        if self.source == "none":
            return "none (--force-no-requirements)"
        if self.source == "given":
            return f"given ({count})"
        if self.source == "detected":
            return f"detected from the entry point's imports ({count})"
        where = ", ".join(self.files)
        if self.source == "poetry.lock":
            return f"declared in {where} ({count}; the launcher runs poetry install from the lock)"
        if self.lock:
            return f"declared in {where} ({count}; the launcher runs uv sync --locked)"
        return f"declared in {where} ({count}; installed by the launcher from the repository)"


CLEARML_ORIGIN = "Task.init() is injected into the entry point"


def decide(
    *,
    force_none: bool = False,
    given: Given | None = None,
    read: Reader | None = None,
    working_dir: str = ".",
    entry_point: str = "",
    entry_text: str | None = None,
    add_clearml: bool = False,
    declared: bool = True,
    site: Sequence[str] | Callable[[], Sequence[str] | None] | None = None,
    left_behind: Reader | None = None,
) -> Decision:
    """What the task needs, in the order of precedence above.

    `read` gives the repository's files as the task will see them (None: a standalone script, nothing but
    `entry_text`); `working_dir` is relative to the repository root and `entry_point` to `working_dir`
    ("train.py", "notebooks/eda.ipynb" or "-m pkg.main"); `entry_text` is the entry point's content before
    the injection (read through `read` when None). `declared=False` skips step 4 (a standalone script, whose
    neighbours do not travel). `site` is where installed distributions are looked for (default: sys.path of
    this interpreter), or a function that says where, called only when the requirements are detected.
    `left_behind` reads the local files as they are on disk: an import of a file there that `read` does not
    have (git ignores it; for a standalone script, anything but the script) is named in a note, not taken
    for a package. `given` is what
    --requirements / --packages give, read and checked before (read_given)."""
    if force_none:
        return Decision("none")
    alone = read is None
    read = memo(read or nothing)
    notes = list(given.notes) if given is not None else []
    if given is not None:
        if given.requirements:
            return _with_clearml(Decision("given", given.requirements, notes=tuple(notes)), add_clearml)
        notes.append("--requirements / --packages hold no requirement: the repository's are used")
    if declared:
        found = find_declared(read, working_dir)
        if found is not None:
            lines = declared_requirements(found, read, notes)
            decision = Decision(found.source, lines, found.files, found.lock, tuple(notes))
            return _with_clearml(decision, add_clearml)
    from clearml_task.requirements.installed import Installed

    where = site() if callable(site) else site
    detected = detect(
        read, working_dir, entry_point, entry_text, Installed.of(where), notes, left_behind, alone=alone
    )
    return _with_clearml(detected, add_clearml)


def _with_clearml(decision: Decision, add: bool) -> Decision:
    if not add or any(name_of(r.line) == "clearml" for r in decision.requirements):
        return decision
    return Decision(
        decision.source,
        (*decision.requirements, Requirement("clearml", CLEARML_ORIGIN)),
        decision.files,
        decision.lock,
        decision.notes,
    )


def detect(
    read: Reader,
    working_dir: str,
    entry_point: str,
    entry_text: str | None,
    installed: Installed,
    notes: list[str],
    left_behind: Reader | None = None,
    *,
    alone: bool = False,
) -> Decision:
    """Step 5: the import closure of the entry point, mapped to distributions (`alone`: a standalone script,
    whose local neighbours stay behind)."""
    from clearml_task.requirements.closure import ALONE, IGNORED, Closure
    from clearml_task.requirements.imports import Import, scan_notebook, scan_python
    from clearml_task.requirements.installed import to_requirements

    working_dir = clean(working_dir)
    entry = entry_point.strip()
    start: list[Import] = []
    start_files: list[str] = []
    path = ""
    if entry.startswith("-m "):
        module = entry[3:].split()[0]
        roots = [working_dir, "."]
        start = [Import(module, 0, (), f"-m {module}", False, f"-m {module}")]
        main = module.replace(".", "/") + "/__main__.py"
        start_files = [join(root, main) for root in roots if read(join(root, main)) is not None][:1]
    else:
        path = clean(posixpath.join(working_dir, entry)) if entry else ""
        text = entry_text if entry_text is not None else (read(path) if path else None)
        roots = [posixpath.dirname(path) or ".", working_dir, "."]
        if text is None or (not entry.endswith((".py", ".ipynb", ".pyw")) and not _looks_python(text)):
            if entry:
                notes.append(f"{entry} is not a Python file or notebook: no imports to detect")
            return Decision("detected", notes=tuple(notes))
        if entry.endswith(".ipynb"):
            start, more = scan_notebook(text, path)
            notes += more
        else:
            try:
                start = scan_python(text, path)
            except (SyntaxError, ValueError) as error:
                notes.append(f"{path} does not parse ({getattr(error, 'msg', error)}): no imports detected")
    if read("src/") is not None:
        roots.append("src")
    closure = Closure(read, [clean(root) for root in roots], left_behind, ALONE if alone else IGNORED)
    closure.run(start, path, start_files)
    notes += closure.notes
    requirements = to_requirements(closure.uses.values(), installed, notes)
    return Decision("detected", tuple(requirements), notes=tuple(notes))


def _looks_python(text: str) -> bool:
    first = text.split("\n", 1)[0]
    return first.startswith("#!") and "python" in first
