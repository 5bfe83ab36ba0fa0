"""Running git: one runner, the environment that keeps it non-interactive, and its failures as GitError
(a UserError that says git's own reason, credentials removed)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from clearml_task.errors import UserError
from clearml_task.git.urls import GIT_ALLOW_PROTOCOL, scrub

# Never prompt (no terminal, no credential helper dialogs); ssh in batch mode; no pager, no colour; only
# the transports git may use (never `ext::`, which runs a command, even for a submodule's URL); no optional
# locks, so no git (nor the `git status` that `git add` runs in each submodule) refreshes a user's index.
# A remote that stalls (under 1 KB/s for 5 minutes over http(s); no answer to ssh's keep-alives for a minute)
# is given up, unless the environment says otherwise: an unattended daemon does not wait on it for ever.
QUIET_ENV = {
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_ALLOW_PROTOCOL": GIT_ALLOW_PROTOCOL,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_SSH_COMMAND": os.environ.get(
        "GIT_SSH_COMMAND", "ssh -oBatchMode=yes -oServerAliveInterval=15 -oServerAliveCountMax=4"
    ),
    "GIT_HTTP_LOW_SPEED_LIMIT": os.environ.get("GIT_HTTP_LOW_SPEED_LIMIT", "1000"),
    "GIT_HTTP_LOW_SPEED_TIME": os.environ.get("GIT_HTTP_LOW_SPEED_TIME", "300"),
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}


class GitError(UserError):
    """git failed: `reason` is the line of its output that says why, `stderr` all of it (both scrubbed)."""

    def __init__(self, args: Sequence[str], stderr: str) -> None:
        self.stderr = scrub(stderr)
        self.reason = reason(self.stderr)
        super().__init__(f"git {' '.join(command(args)[:2])} failed: {self.reason or 'failed'}")


def command(args: Sequence[str]) -> Sequence[str]:
    """`args` from the git subcommand on: the `-c name=value` settings before it left out (they say how
    git ran, not what it was asked)."""
    at = 0
    while at + 1 < len(args) and args[at] == "-c":
        at += 2
    return args[at:]


class GitUnavailable(UserError):
    """git could not be started (not installed, or the directory to run it in is gone)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(f"git could not run: {error}", "install git")
        self.error = error


# What git adds after any failure to reach a remote: never the reason itself.
_BOILERPLATE = frozenset({
    "Could not read from remote repository.",
    "Please make sure you have the correct access rights",
    "and the repository exists.",
})  # fmt: skip
_FAILURE_PREFIXES = ("fatal: ", "error: ", "ERROR: ")


def reason(stderr: str) -> str:
    """The line of git's output that says what went wrong: its first fatal/error line that says more than
    git's boilerplate; else the last line that does (ssh's or the remote's own words); else the first
    fatal/error line; else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if _without_prefix(line) not in _BOILERPLATE]
    for line in said:
        if line.startswith(_FAILURE_PREFIXES):
            return _without_prefix(line)
    if said:
        return said[-1]
    failures = [line for line in lines if line.startswith(_FAILURE_PREFIXES)]
    if failures:
        return _without_prefix(failures[0])
    return lines[-1] if lines else ""


def _without_prefix(line: str) -> str:
    for prefix in _FAILURE_PREFIXES:
        if line.startswith(prefix):
            return line.removeprefix(prefix)
    return line


# What a user's config must not change in what git prints for us to read (paths unquoted, no colour, diffs
# in git's default shape), and no hook (the user's, a checkout's) runs: git does only what it is asked; `-c`
# outranks every config file. DIFF_OPTIONS cover what `-c` cannot reset.
NEUTRAL_CONFIG = (
    f"core.hooksPath={os.devnull}",
    "core.quotepath=false", "color.ui=false", "color.diff=false", "color.status=false",
    "diff.noprefix=false", "diff.mnemonicPrefix=false", "diff.relative=false", "diff.renames=true",
    "diff.context=3", "diff.interHunkContext=0", "diff.suppressBlankEmpty=false", "diff.algorithm=default",
    "diff.indentHeuristic=true",
)  # fmt: skip
# On every diff read: no colour, no external diff tool or textconv filter (diff.external, attributes), the
# a/ b/ prefixes, and no diff.orderFile (an empty order file).
DIFF_OPTIONS = (
    "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/", f"-O{os.devnull}",
)  # fmt: skip


def _argv(args: Sequence[str]) -> list[str]:
    return ["git", *(part for setting in NEUTRAL_CONFIG for part in ("-c", setting)), *args]


def _env(env: Mapping[str, str] | None) -> dict[str, str]:
    return {**os.environ, **QUIET_ENV, **(env or {})}


def run(
    cwd: Path | str,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> bytes:
    """`git <args>` in `cwd`; its stdout as bytes. A failure raises GitError (unless `check` is off); git
    that cannot start, GitUnavailable; a stop while it runs (a launcher's preparation), stoppable.Stopped."""
    from clearml_task import stoppable

    try:
        result = stoppable.run(_argv(args), cwd=cwd, env=_env(env), input=input)
    except OSError as e:
        raise GitUnavailable(e) from None
    if check and result.returncode != 0:
        raise GitError(args, result.stderr.decode(errors="replace"))
    return result.stdout


class Pending:
    """A git command started in the background (`start`), so that several independent ones run at once:
    `result()` waits for it and answers as `run` would; `close()` waits for it without asking (when what
    started it failed first)."""

    def __init__(self, args: Sequence[str], process: subprocess.Popen[bytes] | OSError, check: bool) -> None:
        self.args, self.process, self.check = args, process, check
        self.done: bytes | None = None
        self.said = ""  # what git said on stderr (its warnings, when it succeeded)

    def result(self) -> bytes:
        if isinstance(self.process, OSError):
            raise GitUnavailable(self.process)
        if self.done is None:
            stdout, stderr = self.process.communicate()
            self.said = stderr.decode(errors="surrogateescape")
            if self.check and self.process.returncode != 0:
                raise GitError(self.args, stderr.decode(errors="replace"))
            self.done = stdout
        return self.done

    def out(self) -> str:
        return self.result().decode(errors="surrogateescape").strip()

    def close(self) -> None:
        if not isinstance(self.process, OSError) and self.process.returncode is None:
            self.process.communicate()


def start(cwd: Path | str, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> Pending:
    """`git <args>` in `cwd`, started now and answered by `Pending.result()` (no input)."""
    try:
        process: subprocess.Popen[bytes] | OSError = subprocess.Popen(
            _argv(args), cwd=cwd, env=_env(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    except OSError as e:
        process = e
    return Pending(args, process, check)


def out(cwd: Path | str, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """`git <args>` output as text, stripped."""
    return run(cwd, *args, env=env, check=check).decode(errors="surrogateescape").strip()


def answer(cwd: Path | str, *args: str) -> str:
    """`git <args>` where failing is an answer: "" then (git missing too)."""
    try:
        return out(cwd, *args, check=False)
    except GitUnavailable:
        return ""


def commit_of(repo: Path | str, rev: str) -> str:
    """The full id of `rev` as a commit in `repo`, or ""."""
    return answer(repo, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}")


# What `toplevel` learnt of a work tree with the same git call, by its root: its `GitPaths`; the capture's
# snapshot needs them next, and takes them (once: a later snapshot of the same path asks git again).
_GIT_PATHS: dict[str, GitPaths] = {}
_PATH_ARGS = (
    "--git-path", "objects", "--git-path", "index", "--git-path", "info/sparse-checkout",
    "--show-object-format",
)  # fmt: skip


class GitPaths(NamedTuple):
    objects: Path  # the object dir (absolute)
    index_file: Path  # the index (absolute)
    sparse_checkout: Path  # the sparse checkout's patterns (absolute), whether or not there are any
    object_format: str  # sha1, sha256


def toplevel(path: Path) -> Path | None:
    """The root of the work tree that contains `path`, or None outside a repository."""
    where = path if path.is_dir() else path.parent
    lines = out(where, "rev-parse", "--path-format=absolute", "--show-toplevel", *_PATH_ARGS, check=False)
    found = lines.splitlines()
    if len(found) != 5:
        return None
    _GIT_PATHS[found[0]] = _git_paths(found[1:])
    return Path(found[0])


def git_paths(repo: Path) -> GitPaths:
    """Where `repo`'s git keeps what a snapshot of it needs, and its object format."""
    known = _GIT_PATHS.pop(str(repo), None)
    if known is not None:
        return known
    return _git_paths(out(repo, "rev-parse", "--path-format=absolute", *_PATH_ARGS).splitlines())


def _git_paths(lines: list[str]) -> GitPaths:
    objects, index, sparse_checkout, object_format = lines
    return GitPaths(Path(objects), Path(index), Path(sparse_checkout), object_format)
