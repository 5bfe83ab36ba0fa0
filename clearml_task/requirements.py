"""What the task needs installed, decided offline, in this order of precedence:

1. --force-no-requirements: nothing.
2. --requirements FILE (its -r / -c includes resolved) plus --packages;
3. --packages alone.
4. What the repository declares at the recorded commit with the patch applied (as the launcher reads it):
   every requirements.txt from the repository root down to the working dir; else the [project] dependencies
   of a pyproject.toml in the working dir or the root; a uv.lock beside it (or at the root) means the
   launcher runs `uv sync --locked`.
5. Otherwise detected: the entry point's import closure through the repository's own modules (relative
   imports and literal importlib.import_module / __import__ calls included; notebooks read too), without the
   standard library and the repository's own modules. Each import is mapped to the distribution installed
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

import ast
import functools
import os
import posixpath
import re
import sys
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from clearml_task.errors import UserError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it the same way)
if TYPE_CHECKING:
    from pathlib import Path

# (path relative to the repository root, "/"-separated) -> the file's text, or None when there is no such
# file. A path ending in "/" asks about a directory: "" when it exists, None otherwise.
Reader = Callable[[str], "str | None"]

SOURCES = ("none", "given", "requirements.txt", "pyproject.toml", "uv.lock", "detected")
# The files decide() may ask a Reader for: what a remote capture has to fetch (by suffix or name), besides
# what the requirements files include.
READ_SUFFIXES = (".py", ".ipynb")
DECLARING_FILES = ("requirements.txt", "pyproject.toml", "uv.lock")

# Import names that pipreqs' table lacks or names after a stale distribution, and that differ from the name of
# the distribution providing them (consulted before pipreqs' table). Dotted keys match the import's leading
# parts (longest first), for namespace packages.
EXTRA_NAMES = {
    "cv2": "opencv-python",
    "skimage": "scikit-image",
    "attr": "attrs",
    "Bio": "biopython",
    "fitz": "PyMuPDF",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "jose": "python-jose",
    "gi": "PyGObject",
    "win32api": "pywin32",
    "win32con": "pywin32",
    "pythoncom": "pywin32",
    "pywintypes": "pywin32",
    "mpl_toolkits": "matplotlib",
    "faiss": "faiss-cpu",
    "absl": "absl-py",
    "kafka": "kafka-python",
    "pkg_resources": "setuptools",
    "markdown_it": "markdown-it-py",
    "wx": "wxPython",
    "umap": "umap-learn",
    "msgpack": "msgpack",
    "google.protobuf": "protobuf",
    "google.auth": "google-auth",
    "google.oauth2": "google-auth",
    "google.api_core": "google-api-core",
}

_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=^-[rc]))(\S.*)$")
_OPTION_WITH_VALUE = {
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--no-binary",
    "--only-binary", "-e", "--editable", "--config-settings", "--use-feature",
}  # fmt: skip
_FLAG = {"--no-index", "--pre", "--prefer-binary", "--require-hashes"}
_PER_REQUIREMENT_OPTION = re.compile(r"\s--(hash|global-option|install-option|config-settings)\b.*$")
_DIRECT = re.compile(r"^([.~/\\]|[A-Za-z][A-Za-z0-9+.-]*://|[A-Za-z]:[\\/]|git\+|hg\+|svn\+|bzr\+)")
_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|tar\.bz2|zip)$", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------- the result
@dataclass(frozen=True)
class Requirement:
    line: str  # as it is installed: "PyYAML==6.0.3", "opencv-python", "torch>=2 ; sys_platform == 'linux'"
    origin: str  # where it came from: "--packages", "requirements.txt:3", "import yaml (train.py:3), ..."


@dataclass(frozen=True)
class Decision:
    source: str  # one of SOURCES
    requirements: tuple[Requirement, ...] = ()
    files: tuple[str, ...] = ()  # the repository files a declared source was read from (root-relative)
    lock: str | None = None  # the uv.lock (root-relative): the launcher runs `uv sync --locked`
    notes: tuple[str, ...] = ()  # what was left out, and why

    @property
    def lines(self) -> list[str]:
        return [requirement.line for requirement in self.requirements]

    @property
    def declared(self) -> bool:
        return self.source in ("requirements.txt", "pyproject.toml", "uv.lock")

    @property
    def pip(self) -> list[str] | None:
        """The lines for script.requirements.pip, or None where the launcher installs the repository's own
        files at the commit (a declared source: it reads them in the same order) or nothing (none)."""
        if self.source in ("given", "detected") and self.requirements:
            return self.lines
        return None

    @property
    def extra(self) -> list[str]:
        """Lines to install on top of a declared source (clearml for an injected Task.init())."""
        if not self.declared:
            return []
        return [r.line for r in self.requirements if r.origin == CLEARML_ORIGIN]

    def script_requirements(self) -> dict[str, object]:
        """The task document's script.requirements: `pip` for given / detected lines; `source` always;
        for a declared source the files read, the uv.lock and the lines to install on top (`extra`)."""
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
    site: Sequence[str] | None = None,
    left_behind: Reader | None = None,
) -> Decision:
    """What the task needs, in the order of precedence above.

    `given` is what --requirements / --packages hold, read before (given_requirements); `read` gives the
    repository's files as the task will see them (None: a standalone script, nothing but
    `entry_text`); `working_dir` is relative to the repository root and `entry_point` to `working_dir`
    ("train.py", "notebooks/eda.ipynb" or "-m pkg.main"); `entry_text` is the entry point's content before
    the injection (read through `read` when None). `declared=False` skips step 4 (a standalone script, whose
    neighbours do not travel). `site` is where installed distributions are looked for (default: sys.path of
    this interpreter). `left_behind` reads the local work tree as it is on disk: an import of a file there
    that `read` does not have (git ignores it) is named in a note, not taken for a package."""
    if force_none:
        return Decision("none")
    read = _memo(read or _nothing)
    notes: list[str] = []
    if given is not None:
        notes += given.notes
        if given.requirements:
            return _with_clearml(Decision("given", given.requirements, notes=tuple(notes)), add_clearml)
        notes.append("--requirements / --packages hold no requirement: the repository's are used")
    if declared:
        decision = declared_requirements(read, working_dir, notes)
        if decision is not None:
            return _with_clearml(decision, add_clearml)
    detected = detect(read, working_dir, entry_point, entry_text, Installed.of(site), notes, left_behind)
    return _with_clearml(detected, add_clearml)


def project_python(root: Path | None) -> str | None:
    """The interpreter of the project's own environment, when it is not this one: the active virtualenv
    ($VIRTUAL_ENV), else the active conda env ($CONDA_PREFIX), else the checkout's .venv. None means this
    interpreter's environment is the project's."""
    here = os.path.realpath(sys.prefix)
    candidates = [os.environ.get("VIRTUAL_ENV"), os.environ.get("CONDA_PREFIX")]
    candidates.append(os.path.join(root, ".venv") if root is not None else None)
    for prefix in filter(None, candidates):
        if os.path.realpath(prefix) == here:
            return None
        places = ("Scripts/python.exe", "python.exe") if os.name == "nt" else ("bin/python",)  # venv, conda
        for place in places:
            python = os.path.join(prefix, *place.split("/"))
            if os.path.isfile(python):
                return python
    return None


def _with_clearml(decision: Decision, add: bool) -> Decision:
    if not add or any(_name_of(r.line) == "clearml" for r in decision.requirements):
        return decision
    return Decision(
        decision.source,
        (*decision.requirements, Requirement("clearml", CLEARML_ORIGIN)),
        decision.files,
        decision.lock,
        decision.notes,
    )


# ------------------------------------------------------------------------------- requirement files, PEP 508
@dataclass(frozen=True)
class _Entry:
    kind: str  # "requirement" | "constraint"
    line: str
    where: str  # "requirements.txt:3"


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first physical line number, line) of a requirements file: comments and blank lines dropped, lines
    ending in a backslash joined with the next (as pip reads them)."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        joined = " ".join(" ".join([*pending, line]).split())
        pending = []
        if joined:
            yield start, joined
    if pending and " ".join(" ".join(pending).split()):
        yield start, " ".join(" ".join(pending).split())


def read_requirement_file(
    path: str,
    read: Callable[[str], str | None],
    join: Callable[[str, str], str],
    show: Callable[[str], str],
    kind: str = "requirement",
    seen: set[str] | None = None,
) -> list[_Entry]:
    """The entries of a requirements file with its -r / -c includes followed (relative to the including
    file); everything under a -c include is a constraint. Every line is checked (PEP 508 or a pip option)."""
    seen = set() if seen is None else seen
    if path in seen:
        return []
    seen.add(path)
    text = read(path)
    if text is None:
        raise UserError(f"{show(path)} cannot be read")
    entries: list[_Entry] = []
    for number, line in logical_lines(text):
        where = f"{show(path)}:{number}"
        include = _INCLUDE.match(line)
        if include is None:
            check_line(line, where)
            entries.append(_Entry(kind, line, where))
            continue
        target = join(path, include[2].strip())
        if read(target) is None:
            raise UserError(f"{where}: {line!r} includes {show(target)}, which does not exist")
        nested = "constraint" if include[1] in ("-c", "--constraint") else kind
        entries += read_requirement_file(target, read, join, show, nested, seen)
    return entries


def check_line(line: str, where: str) -> None:
    """A requirement line must be PEP 508, a direct reference (path or URL) or a pip option uv accepts."""
    if line.startswith("-"):
        option, _, value = line.partition("=") if line.startswith("--") else (line[:2], "", line[2:])
        option, _, rest = option.partition(" ")
        value = (value or rest).strip()
        if option in _FLAG and not value:
            return
        if option in _OPTION_WITH_VALUE and value:
            return
        raise UserError(
            f"{where}: {line!r} is not a requirement or an option the launcher passes on",
            "requirement lines are PEP 508 (numpy>=1.26), paths, URLs, -e, -i/--index-url, "
            "--extra-index-url, -f/--find-links, -r FILE or -c FILE",
        )
    if _DIRECT.match(line) or _ARCHIVE.search(line.split(";")[0].strip()):
        return
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Parsed

    try:
        Parsed(_PER_REQUIREMENT_OPTION.sub("", line))
    except InvalidRequirement as error:
        reason = str(error).splitlines()[0]
        raise UserError(
            f"{where}: {line!r} is not a valid requirement ({reason})",
            "write it as PEP 508, e.g. numpy>=1.26, torch==2.3.1 or pkg[extra]; see "
            "https://peps.python.org/pep-0508/",
        ) from None


@dataclass(frozen=True)
class Given:
    """What --requirements and --packages hold, read and checked: the requirements and notes on them."""

    requirements: tuple[Requirement, ...]
    notes: tuple[str, ...] = ()


def given_requirements(requirements_file: str | None, packages: Sequence[str] | None) -> Given | None:
    """Steps 2 and 3: the --requirements file (includes resolved, constraints applied) then --packages;
    None when neither is given."""
    if not (requirements_file or packages):
        return None
    entries: list[_Entry] = []
    if requirements_file:
        path = os.path.expanduser(requirements_file)
        if not os.path.isfile(path):
            raise UserError(f"--requirements {requirements_file} does not exist")
        entries = read_requirement_file(os.path.realpath(path), _read_local, _join_local, _show_local)
    for package in packages or []:
        text = " ".join(package.split())
        if not text:
            continue
        if _INCLUDE.match(text):
            raise UserError(f"--packages {text!r}: files cannot be included here", "use --requirements FILE")
        check_line(text, "--packages")
        entries.append(_Entry("requirement", text, "--packages"))
    notes: list[str] = []
    found = _apply_constraints(entries, notes)
    return Given(tuple(found), tuple(notes))


def _apply_constraints(entries: list[_Entry], notes: list[str]) -> list[Requirement]:
    """Requirements in order (exact duplicates once); a constraint narrows the requirement of the same name
    (its specifier added); a constraint on a name nothing requires is left out, with a note."""
    from packaging.requirements import Requirement as Parsed
    from packaging.utils import canonicalize_name

    constraints: dict[str, list[_Entry]] = {}
    for entry in entries:
        if entry.kind == "constraint":
            name = _name_of(entry.line)
            if name:
                constraints.setdefault(name, []).append(entry)
            else:
                notes.append(f"constraint {entry.line!r} ({entry.where}) names no package: left out")
    result: list[Requirement] = []
    used: set[str] = set()
    for entry in entries:
        if entry.kind != "requirement" or any(entry.line == r.line for r in result):
            continue
        name = _name_of(entry.line)
        matching = constraints.get(name, []) if name else []
        if not matching or entry.line.startswith("-") or _DIRECT.match(entry.line):
            result.append(Requirement(entry.line, entry.where))
            continue
        options = _PER_REQUIREMENT_OPTION.search(entry.line)
        parsed = Parsed(entry.line[: options.start()] if options else entry.line)
        used.add(canonicalize_name(parsed.name))
        if parsed.url:  # a direct reference: the constraint cannot narrow it
            result.append(Requirement(entry.line, entry.where))
            continue
        for constraint in matching:
            parsed.specifier &= Parsed(_PER_REQUIREMENT_OPTION.sub("", constraint.line)).specifier
        where = ", ".join(c.where for c in matching)
        line = str(parsed) + (entry.line[options.start() :] if options else "")
        result.append(Requirement(line, f"{entry.where}, constrained by {where}"))
    for name, group in constraints.items():
        if name not in used:
            where = ", ".join(c.where for c in group)
            notes.append(f"constraint on {name} ({where}) applies to no listed requirement: left out")
    return result


def _name_of(line: str) -> str:
    """The canonical project name of a requirement line, "" for options, paths and URLs."""
    if line.startswith("-") or _DIRECT.match(line):
        return ""
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", found[1]).lower() if found else ""


def _read_local(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _join_local(including: str, target: str) -> str:
    return os.path.realpath(os.path.join(os.path.dirname(including), os.path.expanduser(target)))


def _show_local(path: str) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else path


# ------------------------------------------------------------------------------ what the repository declares
def declared_requirements(read: Reader, working_dir: str, notes: list[str]) -> Decision | None:
    """Step 4, as the launcher reads the checkout: every requirements.txt from the root down to the working
    dir; else a pyproject.toml with a [project] table in the working dir or the root (its uv.lock, in the
    same dir or the root, makes it `uv sync --locked`). None when the repository declares nothing."""
    working_dir = _clean(working_dir)
    files = [_join(d, "requirements.txt") for d in _descent(working_dir)]
    files = [path for path in files if read(path) is not None]
    if files:
        entries: list[_Entry] = []
        seen: set[str] = set()
        for path in files:
            entries += read_requirement_file(path, read, _join_repo, _show_repo, seen=seen)
        found = _apply_constraints(entries, notes)
        return Decision("requirements.txt", tuple(found), tuple(files), notes=tuple(notes))
    for project in dict.fromkeys((working_dir, ".")):
        path = _join(project, "pyproject.toml")
        text = read(path)
        if text is None:
            continue
        table = project_table(text, path)
        if table is None:
            continue
        lines = table.get("dependencies") or []
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise UserError(f"{path}: [project] dependencies is not a list of strings")
        requirements: list[Requirement] = []
        for number, line in enumerate(lines, 1):
            where = f"{path} [project] dependencies #{number}"
            check_line(line, where)
            requirements.append(Requirement(line, where))
        dynamic = table.get("dynamic")
        if isinstance(dynamic, list) and "dependencies" in dynamic:
            notes.append(f"{path} declares its dependencies as dynamic: the launcher resolves them")
        lock = next(
            (
                _join(d, "uv.lock")
                for d in dict.fromkeys((project, "."))
                if read(_join(d, "uv.lock")) is not None
            ),
            None,
        )
        source = "uv.lock" if lock else "pyproject.toml"
        read_from = (path, lock) if lock else (path,)
        return Decision(source, tuple(requirements), read_from, lock, tuple(notes))
    return None


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


def _descent(working_dir: str) -> list[str]:
    """The directories from the root down to the working dir, root first."""
    if working_dir == ".":
        return ["."]
    parts = working_dir.split("/")
    return [".", *("/".join(parts[: depth + 1]) for depth in range(len(parts)))]


def _join_repo(including: str, target: str) -> str:
    return _clean(posixpath.join(posixpath.dirname(including), target))


def _show_repo(path: str) -> str:
    return path


def _clean(path: str) -> str:
    return posixpath.normpath(path.replace("\\", "/")) if path else "."


def _join(directory: str, name: str) -> str:
    return name if directory in ("", ".") else f"{directory}/{name}"


# ---------------------------------------------------------------------------------- scanning the imports
@dataclass(frozen=True)
class Import:
    module: str  # as written, without the leading dots of a relative import
    level: int  # 0 absolute; 1 for "from .", 2 for "from ..", ...
    names: tuple[str, ...]  # what `from module import ...` imports ("*" included)
    where: str  # "train.py:3", "eda.ipynb cell 2:1"
    optional: bool  # guarded by try/except ImportError or a version / platform test
    statement: str  # "import yaml", "from .model import Net", "importlib.import_module('cv2')"


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
_ENV_TESTS = {("sys", "version_info"), ("sys", "platform"), ("os", "name"), ("platform", "system")}


class _Scanner:
    """The imports of one module, with whether each is optional; `if TYPE_CHECKING:` bodies are skipped.
    Only statements are walked; expressions only when the text mentions import_module or __import__."""

    def __init__(self, where: Callable[[int], str], dynamic: bool) -> None:
        self.where = where
        self.dynamic = dynamic
        self.found: list[Import] = []

    def add(
        self, module: str, level: int, names: tuple[str, ...], line: int, statement: str, optional: bool
    ) -> None:
        self.found.append(Import(module, level, names, self.where(line), optional, statement))

    def body(self, nodes: Sequence[ast.AST], optional: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.add(alias.name, 0, (), node.lineno, f"import {alias.name}", optional)
            elif isinstance(node, ast.ImportFrom):
                self.import_from(node, optional)
            elif isinstance(node, ast.If):
                self.if_(node, optional)
            elif isinstance(node, _TRY):
                self.try_(node, optional)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                self.with_(node, optional)
            elif isinstance(node, ast.Match):
                self.calls(node.subject, optional)
                for case in node.cases:
                    self.body(case.body, optional)
            elif isinstance(node, _BLOCKS):
                self.calls(node, optional, header=True)
                self.body(node.body, optional)
                self.body(getattr(node, "orelse", ()), optional)
            else:
                self.calls(node, optional)

    def import_from(self, node: ast.ImportFrom, optional: bool) -> None:
        names = tuple(alias.name for alias in node.names)
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        statement = f"from {'.' * node.level}{node.module or ''} import {shown}"
        self.add(node.module or "", node.level, names, node.lineno, statement, optional)

    def if_(self, node: ast.If, optional: bool) -> None:
        self.calls(node.test, optional)
        if _is_type_checking(node.test):
            self.body(node.orelse, optional)
        else:
            guarded = optional or _is_environment_test(node.test)
            self.body(node.body, guarded)
            self.body(node.orelse, guarded)

    def try_(self, node: ast.Try, optional: bool) -> None:  # ast.TryStar has the same fields
        guarded = optional or any(_catches_import_error(handler.type) for handler in node.handlers)
        self.body(node.body, guarded)
        for handler in node.handlers:
            self.body(handler.body, guarded)
        self.body(node.orelse, guarded)
        self.body(node.finalbody, optional)

    def with_(self, node: ast.With | ast.AsyncWith, optional: bool) -> None:
        suppressed = any(
            isinstance(item.context_expr, ast.Call)
            and _last_name(item.context_expr.func) == "suppress"
            and any(_catches_import_error(arg) for arg in item.context_expr.args)
            for item in node.items
        )
        for item in node.items:
            self.calls(item.context_expr, optional)
        self.body(node.body, optional or suppressed)

    def calls(self, node: ast.AST, optional: bool, *, header: bool = False) -> None:
        """Literal importlib.import_module(...) / __import__(...) calls in an expression or simple statement
        (in a block's header only: decorators, arguments, the loop's iterable or test)."""
        if not self.dynamic:
            return
        parts: list[ast.AST] = [node]
        if header:
            parts = [getattr(node, name) for name in ("decorator_list", "args", "bases", "iter", "test")
                     if getattr(node, name, None) is not None]  # fmt: skip
        for part in parts:
            for child in (
                ast.walk(part) if not isinstance(part, list) else (c for p in part for c in ast.walk(p))
            ):
                if isinstance(child, ast.Call):
                    self.dynamic_import(child, optional)

    def dynamic_import(self, node: ast.Call, optional: bool) -> None:
        name = _last_name(node.func)
        if name not in ("import_module", "__import__") or not node.args:
            return
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value:
            module = first.value
            level = len(module) - len(module.lstrip("."))
            call = "importlib.import_module" if name == "import_module" else "__import__"
            self.add(module.lstrip("."), level, (), node.lineno, f"{call}({module!r})", optional)


_BLOCKS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.AsyncFor, ast.While)
_TRY = (ast.Try, getattr(ast, "TryStar", ast.Try))


def _is_type_checking(test: ast.expr) -> bool:
    return _last_name(test) == "TYPE_CHECKING"


def _is_environment_test(test: ast.expr) -> bool:
    for node in ast.walk(test):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in _ENV_TESTS
        ):
            return True
    return False


def _catches_import_error(handler: ast.expr | None) -> bool:
    if handler is None:
        return True
    if isinstance(handler, ast.Tuple):
        return any(_catches_import_error(item) for item in handler.elts)
    return _last_name(handler) in _IMPORT_ERRORS


def _last_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def scan_python(text: str, path: str) -> list[Import]:
    """The imports of a Python module (SyntaxError propagates). Only the text up to the end of the last line
    that mentions an import is parsed when that much parses on its own (a prefix that parses holds every
    import with the blocks around it; one that does not, e.g. a try: not yet closed, means the whole text)."""
    dynamic = "import_module" in text or "__import__" in text
    scanner = _Scanner(functools.partial(_line_location, path), dynamic)
    scanner.body(_parse_imports_part(text, path).body, False)
    return scanner.found


def _parse_imports_part(text: str, path: str) -> ast.Module:
    at = text.rfind("import")  # also finds import_module and __import__
    if at < 0:
        return ast.Module(body=[], type_ignores=[])
    end = text.find("\n", at)
    start = text.rfind("\n", 0, at) + 1
    if text.count("(", start, end) > text.count(")", start, end):  # from x import (a,\n b)
        end = text.find("\n", text.find(")", end))
    if 0 <= end < len(text) - 1:
        try:
            return ast.parse(text[: end + 1], filename=path)
        except SyntaxError:
            pass
    return ast.parse(text, filename=path)


def _line_location(path: str, line: int) -> str:
    return f"{path}:{line}"


_MAGIC = re.compile(r"^(\s*)([%!?]|\w+\s*=\s*[!%])")


def _cell_location(path: str, cell: int, line: int) -> str:
    return f"{path} cell {cell}:{line}"


def scan_notebook(text: str, path: str) -> tuple[list[Import], list[str]]:
    """The imports of a notebook's code cells (IPython magics and shell lines left out); cells that do not
    parse are skipped, with a note."""
    import json

    try:
        cells = json.loads(text).get("cells") or []
    except (ValueError, AttributeError):
        return [], [f"{path} is not a notebook (not JSON with cells): its imports are not read"]
    found: list[Import] = []
    notes: list[str] = []
    code_number = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        code_number += 1
        source = cell.get("source") or ""
        lines = ("".join(source) if isinstance(source, list) else str(source)).splitlines()
        if lines and lines[0].lstrip().startswith("%%"):
            if lines[0].split()[0] not in ("%%time", "%%timeit", "%%capture", "%%prun"):
                continue
            lines = ["", *lines[1:]]
        code = "\n".join(_MAGIC.sub(r"\1pass  #", line) if _MAGIC.match(line) else line for line in lines)
        scanner = _Scanner(functools.partial(_cell_location, path, code_number), True)
        try:
            scanner.body(ast.parse(code, filename=path).body, False)
        except SyntaxError as error:
            notes.append(f"{path} cell {code_number} does not parse ({error.msg}): its imports are not read")
            continue
        found += scanner.found
    return found, notes


# ------------------------------------------------------------------------------------------ the closure
@dataclass
class Use:
    """A module from outside the repository and the standard library, as the closure imports it."""

    top: str
    modules: set[str] = field(default_factory=set)  # dotted names imported (for namespace packages)
    origin: str = ""  # the first required import, else the first optional one
    required: bool = False


class Closure:
    """The modules the entry point imports, through the repository's own modules."""

    def __init__(self, read: Reader, roots: Sequence[str], left_behind: Reader | None = None) -> None:
        self.read = read
        self.roots = list(dict.fromkeys(roots))
        self.left_behind = Closure(left_behind, roots) if left_behind is not None else None
        self.uses: dict[str, Use] = {}
        self.notes: list[str] = []
        self.state: dict[str, bool] = {}  # file read -> reached by a required path
        self.queue: deque[tuple[str, bool]] = deque()
        self.resolved: dict[tuple[str, tuple[str, ...]], list[str]] = {}

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
                self.absolute(found, weak)

    def relative(self, found: Import, path: str, optional: bool) -> None:
        base = posixpath.dirname(path) or "."
        for _ in range(found.level - 1):
            base = ".." if base in ("", ".") else posixpath.dirname(base) or "."
        if base == ".." or base.startswith("../"):
            self.notes.append(f"{found.statement} ({found.where}) goes above the repository: not followed")
            return
        init = _join(base, "__init__.py")
        resolved = self.descend(base, found.module.split(".")) if found.module else ((), base, True)
        if resolved is None:
            self.notes.append(f"{found.statement} ({found.where}): no such module in the repository")
            return
        for path in [init, *self.with_submodules(resolved, found.names)]:
            if self.is_file(path):
                self.enqueue(path, optional)

    def absolute(self, found: Import, optional: bool) -> None:
        parts = found.module.split(".")
        key = (found.module, found.names)
        files = self.resolved.get(key)
        if files is None:
            files = self.resolved[key] = self.own_files(parts, found.names)
        if files:  # a directory holding no module of it (e.g. wandb/ run logs) hides nothing
            for path in files:
                self.enqueue(path, optional)
            return
        top = parts[0]
        if top in sys.stdlib_module_names or top in sys.builtin_module_names:
            return
        if self.left_behind is not None and self.left_behind.own_files(parts, found.names):
            self.notes.append(
                f"{found.statement} ({found.where}) is a local file that git ignores: it does not travel "
                "with the task (commit it, or stop ignoring it)"
            )
            return
        use = self.uses.setdefault(top, Use(top))
        use.modules.update([found.module, *(f"{found.module}.{name}" for name in found.names if name != "*")])
        origin = f"{found.statement} ({found.where})"
        if not optional and not use.required:
            use.required, use.origin = True, origin
        elif not use.origin:
            use.origin = origin

    def own_files(self, parts: list[str], names: tuple[str, ...]) -> list[str]:
        """The repository's files an absolute import executes; [] when it is not the repository's."""
        for root in self.roots:
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
            base = _join(current, part)
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


def detect(
    read: Reader,
    working_dir: str,
    entry_point: str,
    entry_text: str | None,
    installed: Installed,
    notes: list[str],
    left_behind: Reader | None = None,
) -> Decision:
    """Step 5: the import closure of the entry point, mapped to distributions."""
    working_dir = _clean(working_dir)
    entry = entry_point.strip()
    start: list[Import] = []
    start_files: list[str] = []
    path = ""
    if entry.startswith("-m "):
        module = entry[3:].split()[0]
        roots = [working_dir, "."]
        start = [Import(module, 0, (), f"-m {module}", False, f"-m {module}")]
        main = module.replace(".", "/") + "/__main__.py"
        start_files = [_join(root, main) for root in roots if read(_join(root, main)) is not None][:1]
    else:
        path = _clean(posixpath.join(working_dir, entry)) if entry else ""
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
    closure = Closure(read, [_clean(root) for root in roots], left_behind)
    closure.run(start, path, start_files)
    notes += closure.notes
    requirements = to_requirements(closure.uses.values(), installed, notes)
    return Decision("detected", tuple(requirements), notes=tuple(notes))


def _looks_python(text: str) -> bool:
    first = text.split("\n", 1)[0]
    return first.startswith("#!") and "python" in first


# ------------------------------------------------------------------------------- imports -> distributions
def to_requirements(uses: Iterable[Use], installed: Installed, notes: list[str]) -> list[Requirement]:
    """One line per distribution: pinned to the installed version, else named through the tables and left
    unpinned; an optional import that is not installed is left out (with a note)."""
    lines: dict[str, Requirement] = {}
    for use in sorted(uses, key=lambda u: (not u.required, u.top.lower())):
        dists = installed.providing(use.top, use.modules)
        if dists:
            for dist in dists:
                line, how = pin(dist)
                key = _name_of(line) or line
                lines.setdefault(key, Requirement(line, f"{use.origin}; {how}"))
            continue
        if not use.required:
            notes.append(f"optional {use.origin} is not installed here: left out")
            continue
        name, how = guess(sorted(use.modules))
        key = _name_of(name)
        lines.setdefault(key, Requirement(name, f"{use.origin}; not installed here, {how}, unpinned"))
    return sorted(lines.values(), key=lambda r: r.line.lower())


def pin(dist: Dist) -> tuple[str, str]:
    """The line for an installed distribution and how it was pinned."""
    import json

    name, version = dist.name, dist.version
    try:
        direct = json.loads(dist.read("direct_url.json") or "{}")
    except ValueError:
        direct = {}
    url = str(direct.get("url") or "")
    vcs = direct.get("vcs_info") or {}
    if vcs.get("vcs") and vcs.get("commit_id"):
        return f"{name} @ {vcs['vcs']}+{url}@{vcs['commit_id']}", f"installed {version} from {vcs['vcs']}"
    if "archive_info" in direct and url.startswith(("https://", "http://")):
        return f"{name} @ {url}", f"installed {version} from {url}"
    public = version.split("+", 1)[0]
    if not _VERSION.match(public):
        return name, f"installed {version}, not a PEP 440 version: unpinned"
    how = f"installed {version}" + (", local label dropped" if public != version else "")
    if "dir_info" in direct:
        how += f", from the local directory {url} (it may not be on the package index)"
    return f"{name}=={public}", how


# PEP 440 public versions, loosely: epoch, release, pre / post / dev parts (a label after "+" is cut first)
_VERSION = re.compile(
    r"^v?(\d+!)?\d+(\.\d+)*([-_.]?(a|b|c|rc|alpha|beta|pre|preview|post|rev|r|dev)[-_.]?\d*)*$", re.IGNORECASE
)


def guess(modules: list[str]) -> tuple[str, str]:
    """The distribution name for a module that is not installed: our table (dotted entries first), then
    pipreqs' table, else the import name itself."""
    for module in modules:
        parts = module.split(".")
        for depth in range(len(parts), 0, -1):
            dotted = ".".join(parts[:depth])
            if dotted in EXTRA_NAMES:
                return EXTRA_NAMES[dotted], f"{dotted} is provided by {EXTRA_NAMES[dotted]}"
    top = modules[0].split(".")[0]
    table = pipreqs_names()
    if top in table:
        return _display(table[top]), "named by pipreqs' table"
    return _display(top), "named as imported"


def _display(name: str) -> str:
    return name.replace("_", "-")


@functools.lru_cache(maxsize=1)
def pipreqs_names() -> dict[str, str]:
    """pipreqs' import-name -> distribution table (its `mapping` data file; pipreqs is not imported)."""
    from importlib.util import find_spec

    try:
        spec = find_spec("pipreqs")
    except (ImportError, ValueError):
        return {}
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        try:
            with open(os.path.join(location, "mapping"), encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            continue
        pairs = (line.strip().split(":", 1) for line in text.splitlines() if ":" in line)
        return {module: name for module, name in pairs if module and name}
    return {}


@dataclass(frozen=True)
class Dist:
    """An installed distribution: its .dist-info (or .egg-info) directory and the top-level modules it
    provides. Name and version are read from its metadata when asked."""

    info: str  # the metadata directory
    key: str  # the canonical project name, from the directory's name

    def read(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.info, name), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return None

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        """Name and Version from METADATA (PKG-INFO for an egg-info): the first lines, up to a blank one."""
        text = self.read("METADATA") or self.read("PKG-INFO") or ""
        found: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                break
            field_name, _, value = line.partition(":")
            if field_name in ("Name", "Version") and field_name not in found:
                found[field_name] = value.strip()
        return found

    @property
    def name(self) -> str:
        return self.headers.get("Name") or self.key

    @property
    def version(self) -> str:
        return self.headers.get("Version", "")

    def files(self) -> list[str]:
        """The paths its RECORD lists (relative to the site dir, "/"-separated)."""
        text = self.read("RECORD") or ""
        return [line.rsplit(",", 2)[0].strip('"') for line in text.splitlines() if line]

    def tops(self) -> set[str]:
        """The top-level modules: top_level.txt, else the first part of each RECORD path (as
        importlib.metadata.packages_distributions infers them)."""
        text = self.read("top_level.txt")
        if text is not None:
            return {
                line.strip().replace("/", ".").split(".")[0] for line in text.splitlines() if line.strip()
            }
        tops: set[str] = set()
        for path in self.files():
            first, slash, _ = path.partition("/")
            name = first if slash else _module_name(first)
            if name and "." not in name and name != "__pycache__":
                tops.add(name)
        return tops


def _module_name(file_name: str) -> str:
    """The module a top-level file is: spam.py, spam.pyc, spam.cpython-311-x86_64-linux-gnu.so -> spam."""
    stem, dot, suffix = file_name.partition(".")
    if dot and (suffix in ("py", "pyc", "pyw") or suffix.endswith(("so", "pyd"))):
        return stem
    return ""


class Installed:
    """The distributions installed on a path (default: this interpreter's sys.path) and the top-level
    modules each provides, as importlib.metadata.packages_distributions() maps them. Read here with one
    directory listing per path entry and the small metadata files as text: importlib.metadata alone costs
    more to import than a whole detection of a small repository."""

    def __init__(self, path: Sequence[str] | None = None) -> None:
        self.path = list(sys.path if path is None else path)
        self._tops: dict[str, list[Dist]] | None = None

    @classmethod
    def of(cls, path: Sequence[str] | None = None) -> Installed:
        """Scanned once per path per process."""
        return _installed(tuple(sys.path if path is None else path))

    @property
    def tops(self) -> dict[str, list[Dist]]:
        if self._tops is None:
            self._tops = self._scan()
        return self._tops

    def _scan(self) -> dict[str, list[Dist]]:
        tops: dict[str, list[Dist]] = {}
        seen: set[str] = set()
        for entry in self.path:
            directory = entry or "."
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                if not name.endswith((".dist-info", ".egg-info")):
                    continue
                key = _canonical(name.rsplit(".", 1)[0].split("-")[0])
                info = os.path.join(directory, name)
                if key in seen or not os.path.isdir(info):  # the first on the path is the one imported
                    continue
                seen.add(key)
                dist = Dist(info, key)
                for top in dist.tops():
                    tops.setdefault(top, []).append(dist)
        return tops

    def provides(self, top: str) -> bool:
        return top in self.tops

    def providing(self, top: str, modules: set[str] | list[str]) -> list[Dist]:
        """The distributions that provide `top`; for a namespace shared by several, those whose files hold
        the modules imported (all of them when none does)."""
        dists = self.tops.get(top, [])
        if len(dists) < 2:
            return list(dists)
        prefixes = [module.replace(".", "/") for module in modules if "." in module]
        matching = [dist for dist in dists if any(_holds(path, prefixes) for path in dist.files())]
        return matching or list(dists)


def _holds(path: str, prefixes: list[str]) -> bool:
    return any(path.startswith(prefix + "/") or path == prefix + ".py" for prefix in prefixes)


@functools.lru_cache(maxsize=8)
def _installed(path: tuple[str, ...]) -> Installed:
    return Installed(path)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ------------------------------------------------------------------------------------------------ readers
def _nothing(path: str) -> None:
    return None


def _memo(read: Reader) -> Reader:
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
        clean = _clean(path)
        if clean == ".." or clean.startswith("../") or posixpath.isabs(clean):
            return None
        if only is not None and clean not in (directories if path.endswith("/") else only):
            return None
        target = os.path.join(base, clean)
        if path.endswith("/"):
            return "" if os.path.isdir(target) else None
        try:
            with open(target, "rb") as handle:
                return _decode(handle.read())
        except OSError:
            return None

    return read


def mapping_reader(files: Mapping[str, str | bytes]) -> Reader:
    """Files held in memory ({root-relative path: content}), e.g. blobs read from a commit."""
    contents = {_clean(path): content for path, content in files.items()}
    directories = _directories(contents)

    def read(path: str) -> str | None:
        clean = _clean(path)
        if path.endswith("/"):
            return "" if clean in directories else None
        content = contents.get(clean)
        return _decode(content) if isinstance(content, bytes) else content

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


def _decode(data: bytes) -> str:
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
    notebooks, pyproject.toml and uv.lock files decide() reads: they include nothing)."""
    if path.endswith(READ_SUFFIXES) or posixpath.basename(path) in ("pyproject.toml", "uv.lock"):
        return []
    found = (_INCLUDE.match(line) for _, line in logical_lines(_decode(content)))
    return [_join_repo(path, include[2].strip()) for include in found if include is not None]


def sys_path_of(python: str) -> list[str]:
    """sys.path of another interpreter (e.g. the project's venv), for `site`; [] when it does not run."""
    import json
    import subprocess

    try:
        done = subprocess.run(
            [python, "-c", "import json, sys; print(json.dumps(sys.path))"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        found = json.loads(done.stdout) if done.returncode == 0 else []
    except (OSError, ValueError, subprocess.SubprocessError):
        return []
    return [str(path) for path in found if path]
