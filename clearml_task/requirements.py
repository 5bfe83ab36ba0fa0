"""What the task needs installed. For now as ClearML's clearml-task does: --requirements file lines plus
--packages (plus clearml when Task.init is injected); with neither, nothing is sent and the agent installs
the repository's requirements.txt. (Detection and pinning come with the requirements issue.)"""

from __future__ import annotations

import re
from pathlib import Path

from clearml_task.errors import UserError

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def given(
    requirements_file: str | None, packages: list[str] | None, *, add_clearml: bool
) -> list[str] | None:
    """The requirement lines to record, or None to leave the decision to the agent."""
    lines: list[str] = []
    if requirements_file:
        path = Path(requirements_file).expanduser()
        if not path.is_file():
            raise UserError(f"--requirements {requirements_file} does not exist")
        lines += [
            ln.strip()
            for ln in path.read_text().splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")
        ]
    lines += [p.strip() for p in packages or [] if p.strip()]
    if not lines:
        return None
    if add_clearml and not any(_name(line) == "clearml" for line in lines):
        lines.append("clearml")
    return lines


def _name(line: str) -> str:
    found = _NAME.match(line)
    return found[1].lower().replace("_", "-") if found else ""
