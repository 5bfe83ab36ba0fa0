"""Assembles the task document (ClearML's shape) from what the CLI gathered."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clearml_task.errors import UserError

TASK_TYPES = (
    "training",
    "testing",
    "inference",
    "data_processing",
    "application",
    "monitor",
    "controller",
    "optimizer",
    "service",
    "qc",
    "custom",
)


@dataclass
class Request:
    """What the user asked for, after flag parsing."""

    project: str
    name: str
    script: Path
    task_type: str = "training"
    args: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    queue: str | None = None


def parse_args(pairs: list[str]) -> dict[str, str]:
    """`--args k=v ...`: the value may contain '=' or be empty; a repeated key: the last one wins."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(
                f"--args takes key=value pairs, got {pair!r}", "write it as name=value", exit_code=2
            )
        out[key.strip().lstrip("-")] = value
    return out


def standalone_script(request: Request) -> dict[str, Any]:
    """The document of a script sent as it is (script.diff holds its literal content)."""
    if request.task_type not in TASK_TYPES:
        raise UserError(f"unknown --task-type {request.task_type!r}", f"use one of {', '.join(TASK_TYPES)}")
    if len(request.name.strip()) < 3:
        raise UserError(f"--name {request.name!r} is too short", "task names need at least 3 characters")
    path = request.script
    if not path.is_file():
        raise UserError(f"--script {path} does not exist", "give the path of a Python or shell script")
    try:
        content = path.read_text()
    except UnicodeDecodeError:
        raise UserError(f"--script {path} is not a text file") from None
    binary = "/bin/bash" if path.suffix == ".sh" else f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return {
        "name": request.name.strip(),
        "type": request.task_type,
        "tags": request.tags,
        "script": {
            "binary": binary,
            "repository": "",
            "branch": "",
            "version_num": "",
            "entry_point": path.name,
            "working_dir": ".",
            "diff": content,
            "requirements": {},
        },
        "hyperparams": {
            "Args": {
                k: {"section": "Args", "name": k, "value": v, "type": "str"} for k, v in request.args.items()
            }
        },
    }
