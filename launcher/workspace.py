"""A task's code, reproduced: a cached mirror of the repository, a fresh work tree at the recorded commit,
the patch applied (or the standalone script written out), and the result checked against the tree id that
clearml-task recorded.

Mirrors live under the cache directory, one per repository URL, each behind a file lock so two launchers
never fetch into it at once. A mirror that already holds the wanted commit is not fetched: a warm cache
makes no remote call at all. Work trees borrow the mirror's objects (`git clone --shared`), so making one
costs a checkout, not a copy of the history.

Every value of the task document that reaches git or the task's command line is checked first, for what
it may be: a repository git may fetch with the transports it is allowed (never an option, never `ext::`), a
branch or tag that is a ref name, a commit that is hex, an entry point and a working dir that stay inside the
checkout (through symlinks too). Git gets every positional after `--`.

Every failure is a ReproductionError: a reason (for the task's status message), git's own output, and
the likely cause.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearml_task import locks
from clearml_task.git import checkout, run
from clearml_task.git.repository import recordable_ref
from clearml_task.git.urls import public_url, repository_name, repository_problem
from clearml_task.source import patch_stats
from launcher import reuse
from launcher.errors import ReproductionError

Log = Callable[[str], None]

MAX_LISTED_PATHS = 20
COMMIT = re.compile(r"[0-9a-fA-F]{4,40}")
TREE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
UNREACHABLE_HINT = (
    "check the URL and that this machine can reach it; a private repository needs credentials for the "
    "launcher's user (an ssh key, a credential helper or a token in the URL): git runs with "
    "GIT_TERMINAL_PROMPT=0, so it never prompts for them"
)


@dataclass(frozen=True)
class Workspace:
    root: Path  # the task's checkout (repository root), or the dir holding a standalone script
    workdir: Path  # root / script.working_dir
    entry_point: str  # script.entry_point as recorded


@dataclass(frozen=True)
class Code:
    """What the task says to run (its `script` section, plus the tree clearml-task recorded)."""

    repository: str
    branch: str
    tag: str
    commit: str
    entry_point: str
    working_dir: str
    diff: str
    tree: str

    @classmethod
    def of(cls, task: Mapping[str, Any]) -> Code:
        script = task.get("script") or {}
        runtime = task.get("runtime") or {}

        def text(value: Any) -> str:
            return str(value or "").strip()

        return cls(
            repository=text(script.get("repository")),
            branch=text(script.get("branch")),
            tag=text(script.get("tag")),
            commit=text(script.get("version_num")),
            entry_point=text(script.get("entry_point")),
            working_dir=text(script.get("working_dir")) or ".",
            diff=str(script.get("diff") or ""),
            tree=text(runtime.get("worktree_tree")),
        )

    @property
    def is_patch(self) -> bool:
        return self.diff.startswith("diff ")


def prepare(
    task: Mapping[str, Any], dest: Path, cache_dir: Path, log: Log, spares: reuse.Spares | None = None
) -> Workspace:
    """The task's code at `dest` (which must not exist, or be empty), ready to run. With `spares` (the
    daemon's), the previous task's work tree when it has the same code and was proven unchanged
    (launcher.reuse), else a fresh checkout, recorded when the previous task had the same code."""
    code = Code.of(task)
    check(code)
    dest, cache_dir = dest.absolute(), cache_dir.absolute()
    key = reuse.key_of(code.repository, code.commit, code.tree, _on_top(code)) if spares is not None else None
    try:
        _claim(dest)
        start = time.monotonic()
        if spares is not None and key is not None and spares.take(key, dest):
            _say_reused(code, start, log)
        elif code.repository:
            commit = _checkout(code, dest, cache_dir, log)
            _apply(code, dest, commit, log)
            if code.tree:
                _verify(dest, code.tree, commit, log, code.diff if code.is_patch else "")
            if spares is not None and key is not None and not (dest / ".gitmodules").is_file():
                spares.prepared(key, dest)  # (submodules: each task checks them out, as it logs)
        else:
            _standalone(code, dest, log)
        workdir = _workdir(dest, code.working_dir)
        _check_entry_point(dest, workdir, code)
    except OSError as e:
        raise ReproductionError(f"the workspace {dest} could not be prepared: {e}") from None
    return Workspace(dest, workdir, code.entry_point)


def _on_top(code: Code) -> str:
    """What goes on the commit: the patch, or a standalone script and the path it is written to."""
    if not code.diff or code.is_patch:
        return code.diff
    return f"{code.working_dir}\0{code.entry_point}\0{code.diff}"


def _say_reused(code: Code, start: float, log: Log) -> None:
    """What a kept tree is: the previous task's checkout of the same code, unchanged byte for byte since
    it was made (patch applied) and verified (launcher.reuse)."""
    on_top = " with the same patch" if code.diff and code.is_patch else " and script" if code.diff else ""
    verified = ", verified then," if code.tree else ""
    log(
        f"workspace: the previous task's work tree of {code.commit[:12]}{on_top}{verified} unchanged since "
        f"({_since(start)})"
    )


def refused(field: str, value: str, why: str, hint: str = "") -> ReproductionError:
    """The one-line refusal of a task document's value: which field, and why."""
    shown = value if len(value) <= 80 else value[:77] + "..."
    return ReproductionError(f"{field} {shown!r} is refused: {why}", hint=hint)


def check(code: Code) -> None:
    """The task's values that reach git or the command line are what they may be, before anything runs."""
    for field, value in (
        ("script.repository", code.repository), ("script.branch", code.branch), ("script.tag", code.tag),
        ("script.version_num", code.commit), ("script.entry_point", code.entry_point),
        ("script.working_dir", code.working_dir), ("script.diff", code.diff),
    ):  # fmt: skip
        if not encodable(value):
            raise refused(field, value, "it holds a lone surrogate, which is not text")
    if code.repository:
        problem = repository_problem(code.repository)
        if problem:
            raise refused(
                "script.repository", code.repository, problem,
                "use an https://, http://, ssh://, git:// or file:// URL, user@host:path, or a local path",
            )  # fmt: skip
    for field, name in (("script.branch", code.branch), ("script.tag", code.tag)):
        if name and not recordable_ref(name):
            raise refused(
                field, name, "it is not a git branch or tag name", "see `git help check-ref-format`"
            )
    if code.commit:
        _commit_id(code.commit)
    if code.tree and not TREE.fullmatch(code.tree):
        raise refused(
            "runtime.worktree_tree", code.tree, "it is not a git tree id (40 or 64 hex digits)",
            "set it to the tree id clearml-task recorded, or clear it to skip the work tree check",
        )  # fmt: skip
    _check_entry_point_form(code.entry_point)
    if Path(code.working_dir).is_absolute() or _control(code.working_dir):
        raise refused(
            "script.working_dir", code.working_dir, "it must be a relative path inside the checkout"
        )
    for field, path in (("script.entry_point", code.entry_point), ("script.working_dir", code.working_dir)):
        _check_length(field, path)


PATH_MAX, NAME_MAX = 4096, 255  # bytes of a path, and of one of its names, that Linux file systems take


def _check_length(field: str, path: str) -> None:
    """A path no file system here can hold (longer than PATH_MAX, or a name longer than NAME_MAX) is
    refused naming its field, not left to fail as the checkout's files are made."""
    encoded = path.encode("utf-8", "surrogateescape")
    longest = max((len(name) for name in encoded.split(b"/")), default=0)
    if len(encoded) > PATH_MAX or longest > NAME_MAX:
        raise refused(
            field, path, f"it is too long for a path ({len(encoded)} bytes, a name of {longest}; at most "
            f"{PATH_MAX} and {NAME_MAX})",
        )  # fmt: skip


def encodable(text: str) -> bool:
    """Whether `text` can become bytes (a path, an argument, a file): JSON's strings may hold lone
    surrogates, which cannot (those a file name's undecodable bytes become aside)."""
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _control(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def _check_entry_point_form(entry: str) -> None:
    """`-m package.module [args]`, or a relative path that cannot be read as an option."""
    if entry.startswith("-m "):
        module = entry[3:].split()
        if not module or not MODULE.fullmatch(module[0]):
            raise refused("script.entry_point", entry, "-m must be followed by a module name")
        return
    if entry.startswith("-"):
        raise refused(
            "script.entry_point", entry, "it starts with '-', which Python would read as an option",
            "set it to a script's path relative to script.working_dir, or -m module",
        )  # fmt: skip
    if Path(entry).is_absolute() or _control(entry):
        raise refused("script.entry_point", entry, "it must be a relative path inside the checkout")


def _claim(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ReproductionError(
            f"the workspace {dest} is not empty", hint="each task needs a directory of its own"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)


def _since(start: float) -> str:
    return f"{time.monotonic() - start:.2f}s"


# ------------------------------------------------------------------------------------------- git
@contextmanager
def _failing(failure: str, hint: str = "", *, say_why: bool = True) -> Iterator[None]:
    """A git failure in the block becomes a ReproductionError that carries git's own words (in its detail,
    and after `failure` in its reason unless `say_why` is off)."""
    try:
        yield
    except run.GitError as e:
        reason = f"{failure}: {e.reason}" if e.reason and say_why else failure
        raise ReproductionError(reason, detail=e.stderr, hint=hint) from None
    except run.GitUnavailable as e:
        raise ReproductionError("git could not run", detail=str(e.error), hint="install git") from None


# ------------------------------------------------------------------------------------- the cache
def mirror_path(cache_dir: Path, url: str) -> Path:
    """The bare mirror for `url`: keyed by the URL without credentials, named after the repository."""
    digest = hashlib.sha256(public_url(url).encode()).hexdigest()[:16]
    return cache_dir / f"{digest}-{repository_name(url)}.git"


@contextmanager
def _locked(mirror: Path, log: Log) -> Iterator[None]:
    """An exclusive lock on the mirror (a sibling .lock file): one launcher at a time fetches."""
    with locks.exclusive(mirror.with_name(mirror.name + ".lock")) as waited:
        if waited is not None:
            log(f"workspace: waited for another launcher using the repository cache ({waited:.2f}s)")
        yield


def _create_mirror(mirror: Path, url: str) -> None:
    """An empty bare repository; the URL it records carries no credentials (fetches pass the real one)."""
    with _failing("could not create the cache"):
        checkout.init_mirror(mirror)
    with _failing("could not configure the cache"):
        checkout.configure_mirror(mirror, public_url(url))


def _fetch(mirror: Path, url: str) -> None:
    with _failing(f"could not fetch {public_url(url)}", UNREACHABLE_HINT):
        checkout.fetch_mirror(mirror, url)


def _fetch_commit(mirror: Path, url: str, commit: str) -> None:
    """A commit no branch or tag holds (a pull request's, say): asked for by id, which many servers
    allow. Failing is fine: the caller then says the commit is not there."""
    if re.fullmatch(r"[0-9a-f]{40}", commit):
        checkout.fetch_commit(mirror, url, commit)


def _resolve(code: Code, mirror: Path, log: Log) -> str:
    """The commit to check out, fetching only when the mirror does not have it (or a ref must be read)."""
    url, public = code.repository, public_url(code.repository)
    start = time.monotonic()
    fresh = not (mirror / "HEAD").is_file()
    if fresh:
        _create_mirror(mirror, url)
    elif code.commit:
        found = run.commit_of(mirror, _commit_id(code.commit))
        if found:
            log(f"workspace: repository cache hit ({_since(start)})")
            return found
    try:
        _fetch(mirror, url)
    except ReproductionError:
        if fresh:
            shutil.rmtree(mirror, ignore_errors=True)
        raise
    log(f"workspace: {'cloned' if fresh else 'fetched'} {public} ({_since(start)})")
    if code.commit:
        return _fetched_commit(mirror, url, code.commit)
    return _ref_commit(code, mirror)


def _commit_id(commit: str) -> str:
    if not COMMIT.fullmatch(commit):
        shown = commit if len(commit) <= 80 else commit[:77] + "..."
        raise ReproductionError(
            f"script.version_num {shown!r} is not a commit id (4 to 40 hex digits)",
            hint="set it to a commit id, or empty it and set script.branch or script.tag",
        )
    return commit.lower()


def _fetched_commit(mirror: Path, url: str, commit: str) -> str:
    wanted = _commit_id(commit)
    found = run.commit_of(mirror, wanted)
    if not found:
        _fetch_commit(mirror, url, wanted)
        found = run.commit_of(mirror, wanted)
    if not found:
        raise ReproductionError(
            f"commit {wanted[:12]} is not on {public_url(url)}",
            hint="push it, or re-create the task from a pushed commit",
        )
    return found


def _ref_commit(code: Code, mirror: Path) -> str:
    """No commit recorded: the tag's, else the branch's, else the remote's default branch's."""
    public = public_url(code.repository)
    if code.tag:
        found = run.commit_of(mirror, f"refs/tags/{code.tag}")
        if not found:
            raise ReproductionError(f"no tag {code.tag!r} on {public}", hint=_known(mirror, "refs/tags"))
        return found
    branch = code.branch or _default_branch(code.repository, mirror)
    for candidate in (branch, branch.removeprefix("origin/")):
        found = run.commit_of(mirror, f"refs/heads/{candidate}")
        if found:
            return found
    raise ReproductionError(f"no branch {branch!r} on {public}", hint=_known(mirror, "refs/heads"))


def _default_branch(url: str, mirror: Path) -> str:
    with _failing(f"could not read the default branch of {public_url(url)}", UNREACHABLE_HINT):
        default = checkout.default_branch(url, mirror)
    if default:
        return default
    for fallback in ("main", "master"):
        if run.commit_of(mirror, f"refs/heads/{fallback}"):
            return fallback
    raise ReproductionError(
        f"{public_url(url)} has no default branch", hint="set script.branch, script.tag or script.version_num"
    )


def _known(mirror: Path, prefix: str) -> str:
    names = checkout.ref_names(mirror, prefix, 20)
    return f"known: {', '.join(names)}" if names else "the repository has none"


# ------------------------------------------------------------------------------------ the checkout
def _checkout(code: Code, dest: Path, cache_dir: Path, log: Log) -> str:
    """`dest` as a work tree at the task's commit (detached), submodules included; returns the commit."""
    mirror = mirror_path(cache_dir, code.repository)
    with _locked(mirror, log):
        commit = _resolve(code, mirror, log)
        start = time.monotonic()
        with _failing("could not make a work tree from the repository cache"):
            checkout.clone_shared(mirror, dest)
    # Like a clone of the task's repository: relative submodule URLs resolve against it.
    with _failing("could not set the remote"):
        checkout.set_origin(dest, public_url(code.repository))
    with _failing(f"could not check out {commit[:12]}"):
        checkout.check_out(dest, commit)
    log(f"workspace: checked out {commit[:12]} ({_since(start)})")
    if (dest / ".gitmodules").is_file():
        _submodules(dest, log)
    return commit


def _submodules(dest: Path, log: Log) -> None:
    start = time.monotonic()
    hint = "the submodule URLs in .gitmodules must be reachable from this machine; " + UNREACHABLE_HINT
    with _failing("could not check out the submodules", hint):
        count = checkout.update_submodules(dest)
    log(f"workspace: submodules checked out ({count}) ({_since(start)})")


# ----------------------------------------------------------------------------------------- the patch
def _apply(code: Code, dest: Path, commit: str, log: Log) -> None:
    """The patch on the checkout, or, when script.diff is not a git diff, the script it holds written out."""
    if not code.diff:
        return
    if not code.is_patch:
        _write_script(code, dest, log)
        return
    start = time.monotonic()
    hint = (
        "the files it changes differ at that commit: was the task created against another commit? "
        "re-create it with clearml-task"
    )
    with _failing(f"the patch does not apply on {commit[:12]}", hint, say_why=False):
        checkout.apply(dest, code.diff)
    log(f"workspace: applied the patch ({patch_stats(code.diff).files} files) ({_since(start)})")


def _write_script(code: Code, root: Path, log: Log) -> None:
    """A standalone script (script.diff holds its content) at working_dir / entry_point."""
    if not code.entry_point or code.entry_point.startswith("-m "):
        raise ReproductionError(
            "the task holds a standalone script but no script entry point to write it to",
            hint="set script.entry_point to the script's file name",
        )
    _inside(root, code.working_dir, "the working directory", "script.working_dir")
    target = _inside(root, f"{code.working_dir}/{code.entry_point}", "the entry point", "script.entry_point")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(code.diff, encoding="utf-8", errors="surrogateescape")
    log(f"workspace: wrote the script {code.entry_point}")


def _standalone(code: Code, dest: Path, log: Log) -> None:
    if not code.diff:
        raise ReproductionError(
            "the task has no code: no repository and no script",
            hint="set script.repository, or put the script's content in script.diff",
        )
    if code.is_patch:
        raise ReproductionError(
            "the task has a patch but no repository to apply it on", hint="set script.repository"
        )
    dest.mkdir(parents=True, exist_ok=True)
    _inside(dest, code.working_dir, "the working directory", "script.working_dir").mkdir(
        parents=True, exist_ok=True
    )
    _write_script(code, dest, log)


# ---------------------------------------------------------------------------------------- the checks
def _verify(dest: Path, expected: str, commit: str, log: Log, patch: str) -> None:
    """The work tree's git tree id must be the one clearml-task recorded."""
    start = time.monotonic()
    with _failing("could not compute the work tree's tree id"):
        actual = checkout.work_tree_id(dest, patch)
    if actual == expected:
        log(f"workspace: work tree verified ({_since(start)})")
        return
    raise ReproductionError(
        "the reproduced work tree differs from what clearml-task captured",
        detail=_tree_difference(dest, expected, actual, commit),
        hint="the commit or script.diff changed after the task was captured (edited, or the branch was "
        "force-pushed), or a .gitattributes filter (eol, LFS) rewrites files on checkout; re-create the task "
        "with clearml-task, or clear runtime.worktree_tree to skip this check",
    )


def _tree_difference(dest: Path, expected: str, actual: str, commit: str) -> str:
    """Up to MAX_LISTED_PATHS differing paths. The recorded tree is usually not in the repository (it was
    made on the machine that created the task): then what the reproduction changed against the commit."""
    if checkout.has_tree(dest, expected):
        header = f"expected tree {expected}, got {actual}; differing paths:"
        base = expected
    else:
        header = (
            f"expected tree {expected}, got {actual}; the expected tree is not in the repository, so these "
            f"are the paths the reproduced work tree changes against {commit[:12]}:"
        )
        base = commit
    lines = checkout.changed_paths(dest, base, actual)
    listed = lines[:MAX_LISTED_PATHS]
    if len(lines) > MAX_LISTED_PATHS:
        listed.append(f"... and {len(lines) - MAX_LISTED_PATHS} more")
    return "\n".join([header, *(f"  {line}" for line in listed)])


def _inside(root: Path, relative: str, what: str, field: str) -> Path:
    """root / relative, refusing a path that leaves root (through '..' or a symlink) or that is in git's
    own directory (`.git`, of the checkout or of a submodule): what is written there (a config, a hook) is
    what git runs."""
    path = root / relative
    if Path(relative).is_absolute() or not path.resolve().is_relative_to(root.resolve()):
        raise ReproductionError(
            f"{what} {relative} is outside the checkout ({field}, through '..' or a symlink)",
            hint="it must be relative to the repository root",
        )
    if _in_git_dir(root, path):
        raise ReproductionError(
            f"{what} {relative} is in the repository's .git directory ({field})",
            hint="it must be a path of the task's files, relative to the repository root",
        )
    return path


def _in_git_dir(root: Path, path: Path) -> bool:
    """Whether `path` (as written, or with its symlinks followed) has a `.git` part under `root`. Case
    folded: on a case-insensitive file system `.GIT` is the same directory."""
    resolved = path.resolve().relative_to(root.resolve())
    written = Path(os.path.normpath(path.relative_to(root))) if path.is_relative_to(root) else resolved
    return any(part.casefold() == ".git" for part in (*written.parts, *resolved.parts))


def _workdir(root: Path, working_dir: str) -> Path:
    workdir = _inside(root, working_dir, "the working directory", "script.working_dir")
    if not workdir.is_dir():
        raise ReproductionError(
            f"the working directory {working_dir} is not in the checkout",
            hint="script.working_dir is relative to the repository root; was it created after that commit, "
            "or is it ignored by git?",
        )
    return workdir


def _check_entry_point(root: Path, workdir: Path, code: Code) -> None:
    entry = code.entry_point
    if not entry:
        raise ReproductionError(
            "the task has no entry point", hint="set script.entry_point: a script, or -m module"
        )
    if entry.startswith("-m "):
        return
    for candidate in dict.fromkeys((entry, entry.split()[0])):
        path = workdir / candidate
        if not path.resolve().is_relative_to(root.resolve()):
            raise refused(
                "script.entry_point", entry, "it leaves the checkout (through '..' or a symlink)",
                "it must be a file of the task's repository, relative to script.working_dir",
            )  # fmt: skip
    if not ((workdir / entry).is_file() or (workdir / entry.split()[0]).is_file()):
        raise ReproductionError(
            f"the entry point {entry} is not in the checkout (looked in {code.working_dir})",
            hint="script.entry_point is relative to script.working_dir; was the file committed, or is it "
            "ignored by git?",
        )
