"""Both commands run as a user runs them: real subprocesses, and what a refusal must look like."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testing.servers import ROOT


def run(
    *argv: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`clearml-task ...` or `clearml-launcher ...` as a subprocess of this interpreter, in `cwd`."""
    module = "launcher" if argv[0] == "clearml-launcher" else "clearml_task"
    return subprocess.run(
        [sys.executable, "-m", module, *argv[1:]],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr
