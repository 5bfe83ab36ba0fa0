"""Assembles the task document (ClearML's shape) from what the other modules gathered."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from clearml_task.git.urls import scrub

if TYPE_CHECKING:
    from clearml_task.request import Request
    from clearml_task.requirements import Decision
    from clearml_task.source import Source

DEFAULT_TASK_TYPE = "training"


def default_binary(entry: str | None) -> str:
    if entry and entry.endswith(".sh"):
        return "/bin/bash"
    return f"python{sys.version_info[0]}.{sys.version_info[1]}"


def container(request: Request) -> dict[str, str] | None:
    """--docker / --docker_args / --docker_bash_setup_script (a file, or the script itself)."""
    arguments = request.docker_args or ""
    if request.skip_python_env_install:  # as ClearML does: the agent reads it from the container's env
        arguments = f"{arguments} -e CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL=1".strip()
    setup = request.docker_bash_setup_script  # the script itself (Request read a file it named)
    if not (request.docker or arguments or setup):
        return None
    return {"image": request.docker or "", "arguments": arguments, "setup_shell_script": setup or ""}


def recorded_requirements(decision: Decision) -> dict[str, object]:
    """script.requirements as recorded: no credentials in any URL of its lines (a git+https requirement's,
    an index's)."""
    recorded = decision.script_requirements()
    return {key: scrub(value) if isinstance(value, str) else value for key, value in recorded.items()}


def build(
    request: Request, source: Source, requirements: Decision, args: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """The tasks.create body (without the project id, which needs the server); `args` is hyperparams.Args."""
    script: dict[str, Any] = {
        "binary": request.binary or default_binary(source.entry_point),
        "repository": source.repository,
        "branch": source.branch,
        "tag": source.tag,
        "version_num": source.commit,
        "entry_point": source.entry_point,
        "working_dir": source.working_dir,
        "diff": source.patch,
        "requirements": recorded_requirements(requirements),
    }
    doc: dict[str, Any] = {
        "name": request.name,
        "type": request.task_type or DEFAULT_TASK_TYPE,
        "tags": request.tags,
        "script": script,
        "hyperparams": {"Args": args} if args else {},
        "runtime": {"worktree_tree": source.tree} if source.tree else {},
    }
    found = container(request)
    if found:
        doc["container"] = found
    if request.output_uri:
        doc["output_dest"] = request.output_uri
    return doc
