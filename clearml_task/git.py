"""Running git: one function, the environment that keeps it non-interactive, errors as UserError."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from clearml_task.errors import UserError

# Never prompt (no terminal, no credential helper dialogs); ssh in batch mode; no pager, no colour.
QUIET_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -oBatchMode=yes"),
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}


class GitError(UserError):
    def __init__(self, args: Sequence[str], stderr: str) -> None:
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else "failed"
        super().__init__(f"git {' '.join(args[:2])} failed: {detail}")
        self.stderr = stderr


def run(
    cwd: Path | str,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
) -> bytes:
    """`git <args>` in `cwd`; its stdout as bytes. A failure raises GitError with git's last line."""
    result = subprocess.run(
        ["git", "-c", "core.quotepath=false", "-c", "color.ui=false", *args],
        cwd=cwd,
        env={**os.environ, **QUIET_ENV, **(env or {})},
        input=input,
        capture_output=True,
    )
    if check and result.returncode != 0:
        raise GitError(args, result.stderr.decode(errors="replace"))
    return result.stdout


def out(cwd: Path | str, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """`git <args>` output as text, stripped."""
    return run(cwd, *args, env=env, check=check).decode(errors="surrogateescape").strip()


def toplevel(path: Path) -> Path | None:
    """The root of the work tree that contains `path`, or None outside a repository."""
    result = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=path if path.is_dir() else path.parent,
        env={**os.environ, **QUIET_ENV},
        capture_output=True,
        text=True,
    )
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def available() -> bool:
    try:
        subprocess.run(["git", "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True
