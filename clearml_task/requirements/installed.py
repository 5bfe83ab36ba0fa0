"""Installed distributions: which provides an imported module and at what version (read from the .dist-info
directories on a path: this interpreter's, or the project's own environment's), the line that pins it, and the
name of a module that is not installed (our table, then pipreqs' import-name table)."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clearml_task.requirements.files import Requirement, name_of

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads it the same way)
if TYPE_CHECKING:
    from pathlib import Path

    from clearml_task.requirements.closure import Use

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


def to_requirements(uses: Iterable[Use], installed: Installed, notes: list[str]) -> list[Requirement]:
    """One line per distribution: pinned to the installed version, else named through the tables and left
    unpinned; an optional import that is not installed is left out (with a note)."""
    lines: dict[str, Requirement] = {}
    for use in sorted(uses, key=lambda u: (not u.required, u.top.lower())):
        dists = installed.providing(use.top, use.modules)
        if dists:
            for dist in dists:
                line, how = pin(dist)
                key = name_of(line) or line
                lines.setdefault(key, Requirement(line, f"{use.origin}; {how}"))
            continue
        if not use.required:
            notes.append(f"optional {use.origin} is not installed here: left out")
            continue
        name, how = guess(sorted(use.modules))
        key = name_of(name)
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


def project_python(root: Path | None) -> str | None:
    """The interpreter of the project's own environment, when it is not this one: the active virtualenv
    ($VIRTUAL_ENV), else the active conda env ($CONDA_PREFIX), else the checkout's .venv, else the first
    `python3` on PATH (the one the user runs the script with; clearml-task itself may live elsewhere, e.g.
    under pipx). None means this interpreter's environment is the project's."""
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
    return _python_on_path()


def _python_on_path() -> str | None:
    """The first `python3` on PATH (`python` on Windows), unless it is this interpreter's own (the bin dir
    of this environment)."""
    import shutil

    found = shutil.which("python" if os.name == "nt" else "python3")
    if found is None:
        return None
    ours = {
        os.path.dirname(os.path.abspath(sys.executable)),
        os.path.join(os.path.abspath(sys.prefix), "bin"),
    }
    return None if os.path.abspath(os.path.dirname(found)) in ours else found


def sys_path_of(python: str) -> list[str]:
    """sys.path of another interpreter (e.g. the project's venv), for `site`; [] when it does not run."""
    return SysPathProbe(python).result()


class SysPathProbe:
    """sys.path of another interpreter, asked for at once and read when needed: the interpreter starts
    (a pyenv shim, a conda python: 0.1-0.4 s) while clearml-task captures the code."""

    def __init__(self, python: str) -> None:
        import subprocess

        self.python = python
        try:
            self._child: subprocess.Popen[str] | None = subprocess.Popen(
                [python, "-c", "import json, sys; print(json.dumps(sys.path))"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
        except (OSError, ValueError):
            self._child = None
        self._found: list[str] | None = None

    def result(self, timeout: float = 30.0) -> list[str]:
        """The interpreter's sys.path; [] when it does not run, fails or takes longer than `timeout`."""
        import json
        import subprocess

        if self._found is None:
            self._found = []
            if self._child is not None:
                try:
                    out, _ = self._child.communicate(timeout=timeout)
                    found = json.loads(out) if self._child.returncode == 0 else []
                except (ValueError, subprocess.SubprocessError):
                    self.cancel()
                    found = []
                self._found = [str(path) for path in found if path] if isinstance(found, list) else []
        return self._found

    def cancel(self) -> None:
        """Stop the interpreter if it still runs (its answer is not needed)."""
        child, self._child = self._child, None
        if child is not None and child.poll() is None:
            child.kill()
        if child is not None:
            child.communicate()
