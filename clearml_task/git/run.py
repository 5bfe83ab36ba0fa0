"""Running git: one runner, the environment that keeps it non-interactive, and its failures as GitError
(a UserError that says git's own reason, credentials removed)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from clearml_task.errors import UserError
from clearml_task.git.urls import GIT_ALLOW_PROTOCOL, scrub

# Never prompt (no terminal, no credential helper dialogs); ssh in batch mode; no pager, no colour; only
# the transports git may use (never `ext::`, which runs a command, even for a submodule's URL).
QUIET_ENV = {
    "GIT_ALLOW_PROTOCOL": GIT_ALLOW_PROTOCOL,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -oBatchMode=yes"),
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}


class GitError(UserError):
    """git failed: `reason` is the line of its output that says why, `stderr` all of it (both scrubbed)."""

    def __init__(self, args: Sequence[str], stderr: str) -> None:
        self.stderr = scrub(stderr)
        self.reason = reason(self.stderr)
        super().__init__(f"git {' '.join(args[:2])} failed: {self.reason or 'failed'}")


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


def run(
    cwd: Path | str,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> bytes:
    """`git <args>` in `cwd`; its stdout as bytes. A failure raises GitError (unless `check` is off); git
    that cannot start, GitUnavailable."""
    try:
        result = subprocess.run(
            ["git", "-c", "core.quotepath=false", "-c", "color.ui=false", *args],
            cwd=cwd,
            env={**os.environ, **QUIET_ENV, **(env or {})},
            input=input,
            capture_output=True,
        )
    except OSError as e:
        raise GitUnavailable(e) from None
    if check and result.returncode != 0:
        raise GitError(args, result.stderr.decode(errors="replace"))
    return result.stdout


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


def toplevel(path: Path) -> Path | None:
    """The root of the work tree that contains `path`, or None outside a repository."""
    root = out(path if path.is_dir() else path.parent, "rev-parse", "--show-toplevel", check=False)
    return Path(root) if root else None
