"""A task's code, reproduced: a cached mirror of the repository, a fresh work tree at the recorded commit,
the patch applied (or the standalone script written out), and the result checked against the tree id that
clearml-task recorded.

Mirrors live under the cache directory, one per repository URL, each behind a file lock so two launchers
never fetch into it at once. A mirror that already holds the wanted commit is not fetched: a warm cache
makes no remote call at all. Work trees borrow the mirror's objects (`git clone --shared`), so making one
costs a checkout, not a copy of the history.

Every failure is a ReproductionError: a reason (for the task's status message), git's own output, and
the likely cause.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearml_task import git
from clearml_task.source import patch_stats, public_url
from launcher.errors import ReproductionError

Log = Callable[[str], None]

# Branches and tags: what a task can name. (Not refs/* — on hosted forges that drags in every pull request.)
REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
MAX_LISTED_PATHS = 20
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


def prepare(task: Mapping[str, Any], dest: Path, cache_dir: Path, log: Log) -> Workspace:
    """The task's code at `dest` (which must not exist, or be empty), ready to run."""
    code = Code.of(task)
    dest, cache_dir = dest.absolute(), cache_dir.absolute()
    try:
        _claim(dest)
        if code.repository:
            commit = _checkout(code, dest, cache_dir, log)
            _apply(code, dest, commit, log)
            if code.tree:
                _verify(dest, code.tree, commit, log)
        else:
            _standalone(code, dest, log)
        workdir = _workdir(dest, code.working_dir)
        _check_entry_point(workdir, code)
    except OSError as e:
        raise ReproductionError(f"the workspace {dest} could not be prepared: {e}") from None
    return Workspace(dest, workdir, code.entry_point)


def _claim(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ReproductionError(
            f"the workspace {dest} is not empty", hint="each task needs a directory of its own"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)


def _since(start: float) -> str:
    return f"{time.monotonic() - start:.2f}s"


# ------------------------------------------------------------------------------------------- git
def _git(cwd: Path, *args: str, failure: str, hint: str = "", env: Mapping[str, str] | None = None) -> str:
    """`git.out`, with a failure turned into a ReproductionError that carries git's own words."""
    try:
        return git.out(cwd, *args, env=env)
    except git.GitError as e:
        stderr = _scrub(e.stderr)
        message = _git_message(stderr)
        reason = f"{failure}: {message}" if message else failure
        raise ReproductionError(reason, detail=stderr, hint=hint) from None
    except OSError as e:
        raise ReproductionError("git could not run", detail=str(e), hint="install git") from None


def _try_git(cwd: Path, *args: str) -> str:
    """`git.out` where failing is an answer: "" then."""
    try:
        return git.out(cwd, *args, check=False)
    except OSError:
        return ""


def _scrub(text: str) -> str:
    """Credentials in http(s) URLs never reach a log."""
    return re.sub(r"(https?://)[^/\s@]+@", r"\1", text)


def _git_message(stderr: str) -> str:
    """The line of git's output that says what went wrong: its first fatal/error line, else its last."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line.removeprefix(prefix)
    return lines[-1] if lines else ""


def _has_commit(repo: Path, rev: str) -> str:
    """The full id of `rev` as a commit in `repo`, or ""."""
    return _try_git(repo, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}")


# ------------------------------------------------------------------------------------- the cache
def mirror_path(cache_dir: Path, url: str) -> Path:
    """The bare mirror for `url`: keyed by the URL without credentials, named after the repository."""
    public = public_url(url)
    digest = hashlib.sha256(public.encode()).hexdigest()[:16]
    base = re.split(r"[/:]", public.rstrip("/"))[-1].removesuffix(".git")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", base).strip(".") or "repository"
    return cache_dir / f"{digest}-{name}.git"


@contextmanager
def _locked(mirror: Path, log: Log) -> Iterator[None]:
    """An exclusive lock on the mirror (flock on a sibling .lock file): one launcher at a time fetches."""
    mirror.parent.mkdir(parents=True, exist_ok=True)
    with open(mirror.with_name(mirror.name + ".lock"), "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            start = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            log(f"workspace: waited for another launcher using the repository cache ({_since(start)})")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _create_mirror(mirror: Path, url: str) -> None:
    """An empty bare repository; the URL it records carries no credentials (fetches pass the real one)."""
    if mirror.exists():
        shutil.rmtree(mirror)
    _git(mirror.parent, "init", "--bare", "--quiet", str(mirror), failure="could not create the cache")
    settings = [
        ("remote.origin.url", public_url(url)),
        *(("remote.origin.fetch", refspec) for refspec in REFSPECS),
        # gc runs inside the fetch (under the lock), never detached after it
        ("gc.autoDetach", "false"),
        ("maintenance.autoDetach", "false"),
    ]
    for key, value in settings:
        _git(mirror, "config", "--add", key, value, failure="could not configure the cache")


def _fetch(mirror: Path, url: str) -> None:
    _git(
        mirror,
        "fetch",
        "--prune",
        "--tags",
        "--quiet",
        url,
        *REFSPECS,
        failure=f"could not fetch {public_url(url)}",
        hint=UNREACHABLE_HINT,
    )


def _fetch_commit(mirror: Path, url: str, commit: str) -> None:
    """A commit no branch or tag holds (a pull request's, say): asked for by id, which many servers
    allow. Failing is fine: the caller then says the commit is not there."""
    if re.fullmatch(r"[0-9a-f]{40}", commit):
        _try_git(mirror, "fetch", "--quiet", url, commit)


def _resolve(code: Code, mirror: Path, log: Log) -> str:
    """The commit to check out, fetching only when the mirror does not have it (or a ref must be read)."""
    url, public = code.repository, public_url(code.repository)
    start = time.monotonic()
    fresh = not (mirror / "HEAD").is_file()
    if fresh:
        _create_mirror(mirror, url)
    elif code.commit:
        found = _has_commit(mirror, _commit_id(code.commit))
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
    if not re.fullmatch(r"[0-9a-fA-F]{4,40}", commit):
        raise ReproductionError(
            f"script.version_num {commit!r} is not a commit id",
            hint="set it to a commit id, or empty it and set script.branch or script.tag",
        )
    return commit.lower()


def _fetched_commit(mirror: Path, url: str, commit: str) -> str:
    wanted = _commit_id(commit)
    found = _has_commit(mirror, wanted)
    if not found:
        _fetch_commit(mirror, url, wanted)
        found = _has_commit(mirror, wanted)
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
        found = _has_commit(mirror, f"refs/tags/{code.tag}")
        if not found:
            raise ReproductionError(f"no tag {code.tag!r} on {public}", hint=_known(mirror, "refs/tags"))
        return found
    branch = code.branch or _default_branch(code.repository, mirror)
    for candidate in (branch, branch.removeprefix("origin/")):
        found = _has_commit(mirror, f"refs/heads/{candidate}")
        if found:
            return found
    raise ReproductionError(f"no branch {branch!r} on {public}", hint=_known(mirror, "refs/heads"))


def _default_branch(url: str, mirror: Path) -> str:
    listing = _git(
        mirror,
        "ls-remote",
        "--symref",
        url,
        "HEAD",
        failure=f"could not read the default branch of {public_url(url)}",
        hint=UNREACHABLE_HINT,
    )
    for line in listing.splitlines():
        target, _, name = line.partition("\t")
        if name == "HEAD" and target.startswith("ref: refs/heads/"):
            return target.removeprefix("ref: refs/heads/")
    for fallback in ("main", "master"):
        if _has_commit(mirror, f"refs/heads/{fallback}"):
            return fallback
    raise ReproductionError(
        f"{public_url(url)} has no default branch", hint="set script.branch, script.tag or script.version_num"
    )


def _known(mirror: Path, prefix: str) -> str:
    names = _try_git(mirror, "for-each-ref", "--format=%(refname:short)", "--count=20", prefix).split()
    return f"known: {', '.join(names)}" if names else "the repository has none"


# ------------------------------------------------------------------------------------ the checkout
def _checkout(code: Code, dest: Path, cache_dir: Path, log: Log) -> str:
    """`dest` as a work tree at the task's commit (detached), submodules included; returns the commit."""
    mirror = mirror_path(cache_dir, code.repository)
    with _locked(mirror, log):
        commit = _resolve(code, mirror, log)
        start = time.monotonic()
        _git(
            dest.parent,
            "clone", "--shared", "--no-checkout", "--quiet", str(mirror), str(dest),
            failure="could not make a work tree from the repository cache",
        )  # fmt: skip
    # Like a clone of the task's repository: relative submodule URLs resolve against it.
    _git(dest, "remote", "set-url", "origin", public_url(code.repository), failure="could not set the remote")
    _git(dest, "checkout", "--force", "--quiet", commit, failure=f"could not check out {commit[:12]}")
    log(f"workspace: checked out {commit[:12]} ({_since(start)})")
    if (dest / ".gitmodules").is_file():
        _submodules(dest, log)
    return commit


def _submodules(dest: Path, log: Log) -> None:
    start = time.monotonic()
    _git(
        dest,
        "-c", "protocol.file.allow=always",
        "submodule", "update", "--init", "--recursive", "--quiet",
        failure="could not check out the submodules",
        hint="the submodule URLs in .gitmodules must be reachable from this machine; " + UNREACHABLE_HINT,
    )  # fmt: skip
    count = len(_try_git(dest, "submodule", "status", "--recursive").splitlines())
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
    patch = dest / ".git" / "clearml-task.patch"  # inside .git: not part of the work tree
    patch.write_text(code.diff, encoding="utf-8", errors="surrogateescape")
    try:
        git.run(dest, "apply", "--whitespace=nowarn", str(patch))
    except git.GitError as first:
        try:
            git.run(dest, "apply", "--whitespace=nowarn", "--unidiff-zero", str(patch))
        except git.GitError:
            raise ReproductionError(
                f"the patch does not apply on {commit[:12]}",
                detail=first.stderr,
                hint="the files it changes differ at that commit: was the task created against another "
                "commit? re-create it with clearml-task",
            ) from None
    finally:
        patch.unlink(missing_ok=True)
    log(f"workspace: applied the patch ({patch_stats(code.diff).files} files) ({_since(start)})")


def _write_script(code: Code, root: Path, log: Log) -> None:
    """A standalone script (script.diff holds its content) at working_dir / entry_point."""
    if not code.entry_point or code.entry_point.startswith("-m "):
        raise ReproductionError(
            "the task holds a standalone script but no script entry point to write it to",
            hint="set script.entry_point to the script's file name",
        )
    target = _inside(root, f"{code.working_dir}/{code.entry_point}", "the entry point")
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
    _inside(dest, code.working_dir, "the working directory").mkdir(parents=True, exist_ok=True)
    _write_script(code, dest, log)


# ---------------------------------------------------------------------------------------- the checks
def _verify(dest: Path, expected: str, commit: str, log: Log) -> None:
    """The work tree's git tree id must be the one clearml-task recorded. Computed in a copy of the
    checkout's index (its stat cache spares re-hashing unchanged files); the checkout's own is untouched."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clearml-launcher-") as tmp:
        index = Path(tmp) / "index"
        own = dest / ".git" / "index"
        if own.is_file():
            shutil.copyfile(own, index)
        env = {"GIT_INDEX_FILE": str(index)}
        failure = "could not compute the work tree's tree id"
        _git(dest, "add", "-A", "--", ".", env=env, failure=failure)
        actual = _git(dest, "write-tree", env=env, failure=failure)
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
    if _try_git(dest, "rev-parse", "--verify", "-q", f"{expected}^{{tree}}"):
        header = f"expected tree {expected}, got {actual}; differing paths:"
        base = expected
    else:
        header = (
            f"expected tree {expected}, got {actual}; the expected tree is not in the repository, so these "
            f"are the paths the reproduced work tree changes against {commit[:12]}:"
        )
        base = commit
    lines = _try_git(dest, "diff", "--name-status", "--no-renames", base, actual).splitlines()
    listed = lines[:MAX_LISTED_PATHS]
    if len(lines) > MAX_LISTED_PATHS:
        listed.append(f"... and {len(lines) - MAX_LISTED_PATHS} more")
    return "\n".join([header, *(f"  {line}" for line in listed)])


def _inside(root: Path, relative: str, what: str) -> Path:
    """root / relative, refusing a path that leaves root."""
    path = root / relative
    if Path(relative).is_absolute() or not path.resolve().is_relative_to(root.resolve()):
        raise ReproductionError(
            f"{what} {relative} is outside the checkout", hint="it must be relative to the repository root"
        )
    return path


def _workdir(root: Path, working_dir: str) -> Path:
    workdir = _inside(root, working_dir, "the working directory")
    if not workdir.is_dir():
        raise ReproductionError(
            f"the working directory {working_dir} is not in the checkout",
            hint="script.working_dir is relative to the repository root; was it created after that commit, "
            "or is it ignored by git?",
        )
    return workdir


def _check_entry_point(workdir: Path, code: Code) -> None:
    entry = code.entry_point
    if not entry:
        raise ReproductionError(
            "the task has no entry point", hint="set script.entry_point: a script, or -m module"
        )
    if entry.startswith("-m "):
        return
    if not ((workdir / entry).is_file() or (workdir / entry.split()[0]).is_file()):
        raise ReproductionError(
            f"the entry point {entry} is not in the checkout (looked in {code.working_dir})",
            hint="script.entry_point is relative to script.working_dir; was the file committed, or is it "
            "ignored by git?",
        )
