"""Assembles the task document (ClearML's shape) from what the other modules gathered."""

from __future__ import annotations

import posixpath
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task.errors import UserError

if TYPE_CHECKING:
    from clearml_task.requirements import Decision
    from clearml_task.source import Source

TASK_TYPES = (
    "training", "testing", "inference", "data_processing", "application", "monitor", "controller",
    "optimizer", "service", "qc", "custom",
)  # fmt: skip


@dataclass
class Request:
    """What the user asked for: clearml-task's flags after parsing, nothing resolved yet."""

    project: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    repo: str | None = None
    branch: str | None = None
    commit: str | None = None
    folder: str | None = None
    script: str | None = None
    module: str | None = None
    cwd: str | None = None
    binary: str | None = None
    args: list[str] = field(default_factory=list)
    queue: str | None = None
    requirements: str | None = None
    packages: list[str] | None = None
    docker: str | None = None
    docker_args: str | None = None
    docker_bash_setup_script: str | None = None
    output_uri: str | None = None
    task_type: str | None = None
    skip_task_init: bool = False
    base_task_id: str | None = None
    force_no_requirements: bool = False
    skip_repo_detection: bool = False
    skip_python_env_install: bool = False
    max_patch_size: int | None = None
    dry_run: bool = False


def check_task_type(task_type: str) -> str:
    if task_type not in TASK_TYPES:
        raise UserError(
            f"unknown --task-type {task_type!r}", f"use one of {', '.join(TASK_TYPES)}", exit_code=2
        )
    return task_type


def default_binary(entry: str | None) -> str:
    if entry and entry.endswith(".sh"):
        return "/bin/bash"
    return f"python{sys.version_info[0]}.{sys.version_info[1]}"


def container(request: Request) -> dict[str, str] | None:
    """--docker / --docker_args / --docker_bash_setup_script (a file, or the script itself)."""
    arguments = request.docker_args or ""
    if request.skip_python_env_install:  # as ClearML does: the agent reads it from the container's env
        arguments = f"{arguments} -e CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL=1".strip()
    setup = request.docker_bash_setup_script
    if setup and Path(setup).expanduser().is_file():
        lines = Path(setup).expanduser().read_text().splitlines()
        setup = "\n".join(lines[1:] if lines and lines[0].startswith("#!") else lines)
    if not (request.docker or arguments or setup):
        return None
    return {"image": request.docker or "", "arguments": arguments, "setup_shell_script": setup or ""}


def args_section(request: Request, source: Source) -> dict[str, dict[str, str]]:
    """hyperparams.Args: --args checked against the entry point's parser (read, not run), and every option
    the parser has; for a script whose parser cannot be read, the pairs as they are."""
    from clearml_task import arguments

    overrides = arguments.parse_overrides(request.args)
    if source.entry_text is None:
        return arguments.check_and_record(arguments.Parser(), overrides)
    parser = arguments.read_parser_cached(source.entry_text, request.script or source.entry_point)
    if parser.kind == "hydra" and source.read is not None and not source.entry_point.startswith("-m "):
        script = posixpath.normpath(posixpath.join(source.working_dir, source.entry_point))
        arguments.check_hydra_overrides(parser, overrides, source.read, script)
    return arguments.check_and_record(parser, overrides, require=bool(request.queue))


def build(request: Request, source: Source, requirements: Decision) -> dict[str, Any]:
    """The tasks.create body (without the project id, which needs the server)."""
    script: dict[str, Any] = {
        "binary": request.binary or default_binary(source.entry_point),
        "repository": source.repository,
        "branch": source.branch,
        "tag": source.tag,
        "version_num": source.commit,
        "entry_point": source.entry_point,
        "working_dir": source.working_dir,
        "diff": source.patch,
        "requirements": requirements.script_requirements(),
    }
    section = args_section(request, source)
    doc: dict[str, Any] = {
        "name": request.name,
        "type": check_task_type(request.task_type or "training"),
        "tags": request.tags,
        "script": script,
        "hyperparams": {"Args": section} if section else {},
        "runtime": {"worktree_tree": source.tree} if source.tree else {},
    }
    found = container(request)
    if found:
        doc["container"] = found
    if request.output_uri:
        doc["output_dest"] = request.output_uri
    return doc
