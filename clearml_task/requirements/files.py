"""Requirements-file syntax, the one reader of it in the project: logical lines (comments dropped,
continuations joined), PEP 508 lines, direct references, the pip options uv accepts, and -r / -c includes
followed relative to the including file. Also --requirements / --packages, the lines given on clearml-task's
command line."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence

from clearml_task.errors import UserError
from clearml_task.records import record

INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=^-[rc]))(\S.*)$")
_OPTION_WITH_VALUE = {
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--no-binary",
    "--only-binary", "-e", "--editable", "--config-settings", "--use-feature",
}  # fmt: skip
_FLAG = {"--no-index", "--pre", "--prefer-binary", "--require-hashes"}
_PER_REQUIREMENT_OPTION = re.compile(r"\s--(hash|global-option|install-option|config-settings)\b.*$")
_DIRECT = re.compile(r"^([.~/\\]|[A-Za-z][A-Za-z0-9+.-]*://|[A-Za-z]:[\\/]|git\+|hg\+|svn\+|bzr\+)")
_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|tar\.bz2|zip)$", re.IGNORECASE)
# The common requirement lines, which PEP 508 (and packaging) always accepts: a name, extras, and version
# clauses of plain release numbers (numpy, numpy>=1.24,<2, torch==2.3.*, pkg[a,b]~=1.4). Any other line is
# checked with packaging.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_CLAUSE = r"(?:(?:==|!=)\d+(?:\.\d+)*(?:\.\*)?|(?:>=|<=|>|<)\d+(?:\.\d+)*|~=\d+(?:\.\d+)+)"
_PLAIN_REQUIREMENT = rf"{_NAME}(?:\[{_NAME}(?:,{_NAME})*\])?(?:\s*{_CLAUSE}(?:,{_CLAUSE})*)?"


@record(frozen=True)
class Requirement:
    line: str  # as it is installed: "PyYAML==6.0.3", "opencv-python", "torch>=2 ; sys_platform == 'linux'"
    origin: str  # where it came from: "--packages", "requirements.txt:3", "import yaml (train.py:3), ..."


@record(frozen=True)
class Entry:
    kind: str  # "requirement" | "constraint" | "include" (the -r / -c line itself)
    line: str
    where: str  # "requirements.txt:3"


@record(frozen=True)
class Given:
    """What --requirements / --packages give, read once: the requirements and what was left out, and why."""

    requirements: tuple[Requirement, ...] = ()
    notes: tuple[str, ...] = ()


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


def read_entries(
    path: str,
    read: Callable[[str], str | None],
    join: Callable[[str, str], str],
    show: Callable[[str], str],
    kind: str = "requirement",
    seen: set[str] | None = None,
    *,
    strict: bool = True,
) -> list[Entry]:
    """The entries of a requirements file with its -r / -c includes followed (relative to the including
    file), each include line followed by what it includes; everything under a -c include is a constraint.
    `strict` (clearml-task): every line is checked (PEP 508 or a pip option) and a file that cannot be read is
    an error. Otherwise (the launcher, which hands the files to uv and lets uv say what is wrong) the lines
    are taken as they are and a file that cannot be read holds nothing."""
    seen = set() if seen is None else seen
    if path in seen:
        return []
    text = read(path)
    if text is None:
        if strict:
            raise UserError(f"{show(path)} cannot be read")
        return []
    seen.add(path)
    entries: list[Entry] = []
    for number, line in logical_lines(text):
        where = f"{show(path)}:{number}"
        include = INCLUDE.match(line)
        if include is None:
            if strict:
                check_line(line, where)
            entries.append(Entry(kind, line, where))
            continue
        target = join(path, include[2].strip())
        if strict and read(target) is None:
            raise UserError(f"{where}: {line!r} includes {show(target)}, which does not exist")
        nested = "constraint" if include[1] in ("-c", "--constraint") else kind
        entries.append(Entry("include", line, where))
        entries += read_entries(target, read, join, show, nested, seen, strict=strict)
    return entries


def requirement_lines(text: str) -> list[str]:
    """The logical lines of a requirements file (or of script.requirements.pip, or of `uv export`)."""
    return [line for _, line in logical_lines(text)]


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
    reason = _pep508_error(_PER_REQUIREMENT_OPTION.sub("", line))
    if reason is not None:
        raise UserError(
            f"{where}: {line!r} is not a valid requirement ({reason})",
            "write it as PEP 508, e.g. numpy>=1.26, torch==2.3.1 or pkg[extra]; see "
            "https://peps.python.org/pep-0508/",
        )


def _pep508_error(text: str) -> str | None:
    """Why `text` is not a PEP 508 requirement (None: it is one). The answer is remembered by content and
    packaging's version, so packaging (~40 ms to import) is only imported for a line not seen before; a
    plain line (a name, extras, release-number clauses) needs neither."""
    if re.fullmatch(_PLAIN_REQUIREMENT, text.strip()):
        return None
    import packaging

    from clearml_task.cache import memoized

    def parse() -> dict[str, str | None]:
        from packaging.requirements import InvalidRequirement
        from packaging.requirements import Requirement as Parsed

        try:
            Parsed(text)
        except InvalidRequirement as error:
            return {"error": str(error).splitlines()[0]}
        return {"error": None}

    key = (packaging.__version__, text)
    error: str | None = memoized("pep508", sys.modules[__name__], key, parse)["error"]
    return error


def read_given(requirements_file: str | None, packages: Sequence[str] | None) -> Given:
    """The --requirements file (includes resolved, constraints applied) then --packages; lines checked."""
    entries: list[Entry] = []
    if requirements_file:
        path = os.path.expanduser(requirements_file)
        if os.path.isdir(path):
            hint = "give the requirements file in it"
            raise UserError(f"--requirements {requirements_file} is a directory", hint)
        if not os.path.isfile(path):
            raise UserError(f"--requirements {requirements_file} does not exist")
        entries = read_local_file(path)
    for package in packages or []:
        text = " ".join(package.split())
        if not text:
            continue
        if INCLUDE.match(text):
            raise UserError(f"--packages {text!r}: files cannot be included here", "use --requirements FILE")
        check_line(text, "--packages")
        entries.append(Entry("requirement", text, "--packages"))
    notes: list[str] = []
    requirements = apply_constraints(entries, notes)
    return Given(tuple(requirements), tuple(notes))


def apply_constraints(entries: list[Entry], notes: list[str]) -> list[Requirement]:
    """Requirements in order (exact duplicates once); a constraint narrows the requirement of the same name
    (its specifier added); a constraint on a name nothing requires is left out, with a note."""
    constraints: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.kind == "constraint":
            name = name_of(entry.line)
            if name:
                constraints.setdefault(name, []).append(entry)
            else:
                notes.append(f"constraint {entry.line!r} ({entry.where}) names no package: left out")
    result: list[Requirement] = []
    used: set[str] = set()
    for entry in entries:
        if entry.kind != "requirement" or any(entry.line == r.line for r in result):
            continue
        name = name_of(entry.line)
        matching = constraints.get(name, []) if name else []
        if not matching or entry.line.startswith("-") or _DIRECT.match(entry.line):
            result.append(Requirement(entry.line, entry.where))
            continue
        from packaging.requirements import Requirement as Parsed  # only when a constraint applies
        from packaging.utils import canonicalize_name

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


def name_of(line: str) -> str:
    """The canonical project name of a requirement line, "" for options, paths and URLs."""
    if line.startswith("-") or _DIRECT.match(line):
        return ""
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", found[1]).lower() if found else ""


def read_local_file(path: str, *, strict: bool = True) -> list[Entry]:
    """The entries of a requirements file on disk, its includes followed on disk (see read_entries)."""
    return read_entries(os.path.realpath(path), read_text, _join_local, _show_local, strict=strict)


def read_text(path: str) -> str | None:
    """A requirements file's text on disk (undecodable bytes replaced; a leading byte-order mark dropped, as
    pip and uv drop it), None when it cannot be read."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def include_path(including: str, target: str) -> str:
    """Where an include (`-r target`) of the file at `including` points on disk (links not resolved)."""
    return os.path.join(os.path.dirname(including), os.path.expanduser(target))


def _join_local(including: str, target: str) -> str:
    return os.path.realpath(include_path(including, target))


def _show_local(path: str) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else path
