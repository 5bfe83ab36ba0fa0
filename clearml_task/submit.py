"""From a Request to a task on the server: capture, inject, assemble, then create (or clone) and enqueue.

Everything that can fail on the user's input is checked before anything is created, and a task created
by a run that then fails is deleted again: no half-created task is left behind.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task import document, requirements
from clearml_task.errors import UserError

if TYPE_CHECKING:
    from clearml_task.api import Client
    from clearml_task.requirements import Decision
    from clearml_task.source import Injector, Source

SOURCE_FLAGS = ("repo", "folder", "script", "module", "branch", "commit", "cwd", "binary")


@dataclass
class Prepared:
    """The task as it will be created: nothing on the server yet."""

    document: dict[str, Any]
    source: Source | None = None
    requirements: Decision | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    task_id: str
    project_id: str | None
    queue_id: str | None
    url: str | None
    prepared: Prepared
    cloned_from: str | None = None


def usage(message: str, hint: str = "") -> UserError:
    return UserError(message, hint, exit_code=2)


def check(request: document.Request) -> None:
    """Flag combinations, before any work."""
    if request.base_task_id:
        given = [f"--{flag}" for flag in SOURCE_FLAGS if getattr(request, flag)]
        if given:
            raise usage(
                f"--base-task-id clones a task's code as it is; {', '.join(given)} cannot go with it",
                "create a new task instead, or drop those flags",
            )
        return
    if not request.name:
        raise usage("--name is required", "name the task with --name NAME (or clone one with --base-task-id)")
    if len(request.name.strip()) < 3:
        raise usage(f"--name {request.name!r} is too short", "ClearML task names have at least 3 characters")
    if not request.project:
        raise usage("--project is required", "pass --project NAME (it is created when missing)")
    if len(request.project.rstrip("/").rpartition("/")[2].strip()) < 3:
        raise usage(
            f"--project {request.project!r} is too short", "ClearML project names have at least 3 characters"
        )
    if not request.script and not request.module:
        raise usage(
            "--script or --module is required", "the entry point: --script train.py or --module pkg.main"
        )
    if request.script and request.module:
        raise usage("--script and --module exclude each other")
    if request.repo and request.folder:
        raise usage("--repo and --folder exclude each other", "--repo is a URL, --folder a local checkout")
    if (request.branch or request.commit) and not request.repo:
        raise usage(
            "--branch and --commit go with --repo",
            "a local checkout is sent at its upstream commit plus every local change",
        )
    if request.task_type:
        document.check_task_type(request.task_type)


def prepare(request: document.Request) -> Prepared:
    """Capture the code, decide the requirements and build the document (reads the local repository;
    contacts no server)."""
    from clearml_task import source as source_module

    check(request)
    if request.base_task_id:
        return Prepared(document={})
    given = _given(request)  # a bad --requirements line fails here, before any capture (read once)
    notes: list[str] = []
    injected: list[str] = []  # the files Task.init() was injected into
    inject = _injector(request, notes, injected)
    max_patch = request.max_patch_size or source_module.DEFAULT_MAX_PATCH_BYTES
    entry = source_module.EntryPoint(None, request.module, request.cwd)
    if request.repo:
        ref = source_module.resolve_remote(request.repo, request.branch, request.commit)
        source = source_module.capture_remote(
            request.repo, ref, entry, request.script, inject=inject, max_patch=max_patch,
            files=not (request.force_no_requirements or (given and given.requirements)),
        )  # fmt: skip
    else:
        root, entry = source_module.locate(_path(request.folder), request.script, request.module, request.cwd)
        if root is not None and not request.skip_repo_detection:
            source = source_module.capture_local(root, entry, inject=inject, max_patch=max_patch)
        elif entry.script is not None:
            source = source_module.capture_standalone(entry.script, inject=inject)
        else:
            raise usage("--module needs a repository", "use --folder or --repo with --module")
    if source.entry_point.endswith(".ipynb") and source.entry_text is not None:
        from clearml_task import notebook

        notebook.code_cells(source.entry_text, source.entry_point)  # magics refused before anything is made
    site, site_note = _site(source.root)
    decision = requirements.decide(
        force_none=request.force_no_requirements,
        given=given,
        read=source.read,
        working_dir=source.working_dir,
        entry_point=source.entry_point,
        entry_text=source.entry_text,
        add_clearml=bool(injected),
        declared=source.read is not None,
        site=site,
        left_behind=source.left_behind,
    )
    if request.module and source.read is not None:
        from clearml_task.entry_module import check_module

        named = decision.lines if decision.source != "detected" else []  # detection names the module itself
        check_module(request.module, source.read, source.working_dir, site, named)
    notes += [*decision.notes, *([site_note] if site_note and decision.source == "detected" else [])]
    return Prepared(document.build(request, source, decision), source, decision, notes + source.warnings)


def _site(root: Path | None) -> tuple[list[str] | None, str]:
    """Where installed versions are looked up (None: this interpreter's environment), and a note saying
    which environment that is."""
    python = requirements.project_python(root)
    if python is None:
        return None, f"installed versions are read from clearml-task's own environment ({sys.executable})"
    found = requirements.sys_path_of(python)
    if found:
        return found, f"installed versions are read from the environment of {python}"
    return None, f"{python} does not run: installed versions are read from clearml-task's own environment"


def _given(request: document.Request) -> requirements.Given | None:
    """What --requirements / --packages give (their lines checked now); None when they are not used."""
    if request.force_no_requirements or not (request.requirements or request.packages):
        return None
    return requirements.read_given(request.requirements, request.packages)


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _injector(request: document.Request, notes: list[str], injected: list[str]) -> Injector | None:
    """The Task.init() injection hook, or None where it does not apply (and why, in `notes`); the hook
    notes what it did, and the paths it injected into go to `injected`."""
    if request.skip_task_init:
        notes.append("Task.init() not injected (--skip-task-init)")
        if request.args:
            notes.append(
                "--args reach the script through clearml-launcher's command line; ClearML's own agent "
                "passes none without Task.init()"
            )
        return None
    if request.module:
        notes.append("Task.init() not injected: the entry point is a module (--module)")
        return None
    if request.script and not request.script.endswith(".py"):
        notes.append(f"Task.init() not injected: {Path(request.script).name} is not a Python file")
        return None

    def inject(path: str, text: str) -> str | None:
        from dataclasses import asdict

        from clearml_task import inject as injection
        from clearml_task.arguments import counted_dests, read_parser_cached
        from clearml_task.cache import memoized

        unbound = counted_dests(read_parser_cached(text, path)) if path.endswith(".py") else []
        result = memoized(
            "inject", injection, (path, text, *unbound),
            lambda: asdict(injection.inject_task_init(text, path, unbound)),
        )  # fmt: skip
        notes.append(result["note"])
        text_out: str | None = result["text"]
        if text_out is not None:
            injected.append(path)
        return text_out

    return inject


# --------------------------------------------------------------------------------------- the server
def submit(request: document.Request, prepared: Prepared, client: Client) -> Result:
    queue_id = client.queue_id(request.queue) if request.queue else None  # an unknown queue: nothing created
    if request.base_task_id:
        task_id, project_id = _clone(request, client)
        cloned: str | None = request.base_task_id
    else:
        assert request.project
        project_id = client.project_id(request.project)
        task_id = client.create_task({**prepared.document, "project": project_id})
        cloned = None
    try:
        if queue_id:
            client.enqueue(task_id, queue_id)
    except BaseException:
        client.call("tasks.delete", {"task": task_id, "force": True})
        raise
    url = client.session.config.task_url(project_id, task_id)
    return Result(task_id, project_id, queue_id, url, prepared, cloned)


def _clone(request: document.Request, client: Client) -> tuple[str, str | None]:
    """tasks.clone, then only what was given is overridden; the clone's script is never blanked."""
    assert request.base_task_id
    base = client.get_task(request.base_task_id)
    overrides: dict[str, Any] = {}
    if request.name:
        overrides["new_task_name"] = request.name
    if request.project:
        overrides["new_task_project"] = client.project_id(request.project)
    if request.tags:
        overrides["new_task_tags"] = request.tags
    if request.args:
        from clearml_task import arguments

        hyperparams = copy.deepcopy(base.get("hyperparams") or {})
        given = arguments.parse_overrides(request.args)
        arguments.check_clone_overrides(hyperparams.get("Args") or {}, given, request.base_task_id)
        hyperparams["Args"], _new_keys = arguments.merge_overrides(hyperparams.get("Args") or {}, given)
        overrides["new_task_hyperparams"] = hyperparams
    given_container = document.container(request)
    if given_container:
        merged = {**(base.get("container") or {})}
        merged.update({k: v for k, v in given_container.items() if v})
        overrides["new_task_container"] = merged
    task_id = client.clone_task(request.base_task_id, **overrides)
    try:
        listed = _given(request)
        if request.force_no_requirements or (listed and listed.requirements):
            decision = requirements.decide(force_none=request.force_no_requirements, given=listed)
            client.edit_task(task_id, script={"requirements": decision.script_requirements()})
        if request.output_uri:
            client.edit_task(task_id, output={"destination": request.output_uri})
        if request.task_type:
            client.edit_task(task_id, type=request.task_type)
    except BaseException:
        client.call("tasks.delete", {"task": task_id, "force": True})
        raise
    project_id = overrides.get("new_task_project") or base.get("project")
    return task_id, project_id
