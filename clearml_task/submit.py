"""From a checked Request to a task on the server, one way: capture the code (injecting Task.init()),
decide the requirements, check --args against the entry point, assemble the document, then create (or
clone) and enqueue.

Everything that can fail on the user's input is checked before anything is created, and a task created
by a run that then fails is deleted again: no half-created task is left behind.
"""

from __future__ import annotations

import copy
import posixpath
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task import document, requirements
from clearml_task.records import field, record
from clearml_task.request import Request, usage

if TYPE_CHECKING:
    from clearml_task.api import Client
    from clearml_task.arguments import Parser
    from clearml_task.requirements import Decision
    from clearml_task.requirements.installed import SysPathProbe
    from clearml_task.source import EntryPoint, Injector, Source


@record
class Prepared:
    """The task as it will be created: nothing on the server yet."""

    document: dict[str, Any]
    source: Source | None = None
    requirements: Decision | None = None
    notes: list[str] = field(default_factory=list)


@record
class Result:
    task_id: str
    project_id: str | None
    queue_id: str | None
    url: str | None
    prepared: Prepared
    cloned_from: str | None = None


def prepare(request: Request) -> Prepared:
    """Capture the code, decide the requirements, check --args against the entry point and assemble the
    document (reads the local repository; contacts no server). The flags were checked with the request."""
    if request.base_task_id:
        return Prepared(document={})
    from clearml_task import source as source_module

    notes: list[str] = []
    injected: list[str] = []  # the files Task.init() was injected into
    located = None
    if not request.repo:
        located = source_module.locate(_path(request.folder), request.script, request.module, request.cwd)
    root = located[0] if located is not None and not request.skip_repo_detection else None
    site = _Site(root)
    if located is not None and _detects(request, root, located[1]):
        site.start()  # the project's python answers while the code is captured
    try:
        source = _capture(request, _injector(request, notes, injected), located)
        if source.entry_point.endswith(".ipynb") and source.entry_text is not None:
            from clearml_task import notebook

            notebook.code_cells(source.entry_text, source.entry_point)  # magics refused before anything
        decision, site_note = _requirements(request, source, site, add_clearml=bool(injected))
    finally:
        site.close()
    notes += [*decision.notes, *([site_note] if site_note else [])]
    args = _arguments(request, source, notes)
    return Prepared(
        document.build(request, source, decision, args), source, decision, notes + source.warnings
    )


def _detects(request: Request, root: Path | None, entry: EntryPoint) -> bool:
    """Whether the requirements will be detected from the imports (nothing given, and no requirement file
    in the local checkout), so that the project's interpreter will be asked where packages are installed."""
    if request.gives_requirements:
        return False
    if root is None:
        return True
    from clearml_task.requirements.declared import find_declared

    return find_declared(requirements.directory_reader(root), entry.cwd or ".", strict=False) is None


def _capture(
    request: Request, inject: Injector | None, located: tuple[Path | None, EntryPoint] | None
) -> Source:
    """The code as the task will run it: a remote's commit, a local checkout plus its changes, or a script
    (`located`: the local root and entry point, None with --repo)."""
    from clearml_task import source as source_module

    max_patch = request.max_patch_size or source_module.DEFAULT_MAX_PATCH_BYTES
    if located is None:
        assert request.repo, "a capture without a local checkout has --repo"
        entry = source_module.EntryPoint(None, request.module, request.cwd)
        ref = source_module.resolve_remote(request.repo, request.branch, request.commit)
        return source_module.capture_remote(
            request.repo, ref, entry, request.script, inject=inject, max_patch=max_patch,
            files=not request.gives_requirements,
        )  # fmt: skip
    root, entry = located
    if root is not None and not request.skip_repo_detection:
        return source_module.capture_local(
            root, entry, inject=inject, max_patch=max_patch, include_secrets=request.include_secrets,
            requirements=_inside(root, request.requirements),
        )  # fmt: skip
    if entry.script is not None:
        neighbours = _project_dirs(root or _path(request.folder), request.cwd)
        return source_module.capture_standalone(entry.script, inject=inject, neighbours=neighbours)
    raise usage("--module needs a repository", "use --folder or --repo with --module")


def _inside(root: Path, given: str | None) -> list[str]:
    """A --requirements file's path relative to the checkout ("/"-separated), when it is inside it."""
    if not given:
        return []
    try:
        return [Path(given).resolve().relative_to(root.resolve()).as_posix()]
    except (ValueError, OSError):
        return []


def _project_dirs(base: Path | None, cwd: str | None) -> list[Path]:
    """Where a standalone script's own modules may be besides its dir: the working dir and the repository
    root (--folder outside any)."""
    if base is None:
        return []
    return [base / cwd, base] if cwd else [base]


def _requirements(
    request: Request, source: Source, site: _Site, *, add_clearml: bool
) -> tuple[Decision, str]:
    """The requirements decision, and a note on where installed versions were read when they were. The
    project's interpreter is run only when installed versions are needed (detection, or a --module to
    check), or when `prepare` saw they would be and started it early."""
    if not site.started:
        site.root = source.root
    decision = requirements.decide(
        force_none=request.force_no_requirements,
        given=request.given,
        read=source.read,
        working_dir=source.working_dir,
        entry_point=source.entry_point,
        entry_text=source.entry_text,
        add_clearml=add_clearml,
        declared=source.read is not None,
        site=site.path,
        left_behind=source.left_behind,
    )
    if request.module and source.read is not None:
        from clearml_task.entry_module import check_module

        named = decision.lines if decision.source != "detected" else []  # detection names the module itself
        check_module(request.module, source.read, source.working_dir, site.path(), named)
    return decision, site.note if decision.source == "detected" else ""


def _arguments(request: Request, source: Source, notes: list[str]) -> dict[str, dict[str, str]]:
    """hyperparams.Args: --args checked against the entry point's parser (read, not run; a --module's from
    its file in the checkout), and every option the parser has; for an entry point whose parser cannot be
    read (a module the checkout does not hold), the pairs as they are. A Hydra app's overrides are checked
    against its config in the repository. Arguments written after a --module's name count as --args."""
    from clearml_task import arguments

    if source.entry_text is None:
        return arguments.check_and_record(arguments.Parser(), request.overrides)
    parser = arguments.read_parser_cached(source.entry_text, request.script or source.entry_file or "")
    if parser.kind == "hydra" and source.read is not None:
        script = source.entry_file or posixpath.normpath(
            posixpath.join(source.working_dir, source.entry_point)
        )
        arguments.check_hydra_overrides(parser, request.overrides, source.read, script)
    overrides = _module_words(request, parser, notes)
    return arguments.check_and_record(parser, overrides, require=bool(request.queue))


def _module_words(request: Request, parser: Parser, notes: list[str]) -> dict[str, str]:
    """--args, with the arguments written after a --module's name (`pkg.main --epochs 4`) in front: read
    against the module's parser, so that Args holds what runs; words it cannot read are passed as written
    (said in a note), and words it refuses are an error, as --args would be."""
    words = _module_argv(request.module)
    if not words:
        return dict(request.overrides)
    from clearml_task.arguments.inline import read_words

    reading = read_words(parser, words)
    if reading.wrong:
        raise usage(
            f"--module {request.module!r}: {reading.problem} ({parser.script})",
            "check the module's arguments, or give them with --args name=value",
        )
    if reading.problem:
        notes.append(
            f"the arguments after the module's name are passed as written, and Args does not show them "
            f"({reading.problem})"
        )
        return dict(request.overrides)
    from clearml_task.arguments.record import resolve_key

    inline = {given.dest: given.text for given in reading.given}
    for key in request.overrides:
        dest = resolve_key(parser, key)
        if dest in inline:
            raise usage(f"{dest} is given both after --module's name and in --args", "give it once")
    return {**inline, **request.overrides}


def _module_argv(module: str | None) -> list[str]:
    """The words after a --module's name, as the launcher splits them."""
    if not module:
        return []
    import shlex

    try:
        return shlex.split(module)[1:]
    except ValueError:
        raise usage(f"--module {module!r}: its quotes do not close", "quote each argument whole") from None


class _Site:
    """Where installed versions are looked up (None: this interpreter's environment), found on first use
    or started early (`start`), and a note saying which environment that is."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.found: tuple[list[str] | None, str] | None = None
        self.probe: SysPathProbe | None = None
        self.python: str | None = None
        self.started = False

    def start(self) -> None:
        """Run the project's interpreter now, in the background; `path` reads its answer."""
        from clearml_task.requirements.installed import SysPathProbe

        self.started = True
        self.python = requirements.project_python(self.root)
        if self.python is not None:
            self.probe = SysPathProbe(self.python)

    def path(self) -> list[str] | None:
        if self.found is None:
            if not self.started:
                self.start()
            self.found = _site(self.python, self.probe)
        return self.found[0]

    def close(self) -> None:
        """An interpreter started early and not needed after all is stopped."""
        if self.probe is not None:
            self.probe.cancel()

    @property
    def note(self) -> str:
        self.path()
        assert self.found is not None
        return self.found[1]


def _site(python: str | None, probe: SysPathProbe | None) -> tuple[list[str] | None, str]:
    if python is None or probe is None:
        return None, f"installed versions are read from clearml-task's own environment ({sys.executable})"
    found = probe.result()
    if found:
        return found, f"installed versions are read from the environment of {python}"
    return None, f"{python} does not run: installed versions are read from clearml-task's own environment"


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _injector(request: Request, notes: list[str], injected: list[str]) -> Injector | None:
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
        from clearml_task.arguments import counted_dests, read_parser_cached
        from clearml_task.cache import memoized

        def compute() -> dict[str, Any]:
            from dataclasses import asdict

            from clearml_task import inject as injection

            return asdict(injection.inject_task_init(text, path, unbound))

        unbound = counted_dests(read_parser_cached(text, path)) if path.endswith(".py") else []
        # keyed by inject.py's source, read without importing it: a cached answer needs no libcst
        result = memoized("inject", [Path(__file__).with_name("inject.py")], (path, text, *unbound), compute)
        if not isinstance(result.get("note"), str) or not isinstance(result.get("text"), (str, type(None))):
            result = compute()  # an entry of another shape (damaged, or not written by this code)
        notes.append(result["note"])
        text_out: str | None = result["text"]
        if text_out is not None:
            injected.append(path)
        return text_out

    return inject


# --------------------------------------------------------------------------------------- the server
def start_client(request: Request) -> Callable[[], Client]:
    """The client, made in a thread while the code is captured: the server's address read, the HTTP code
    imported, the login and the lookups submit starts with (Client.look_ahead) done. The thread tries each
    call once and says nothing; when anything fails there, the function it returns gives a fresh client,
    so that what failed is done again, in its order, and reported as usual, unless the server did not
    answer in time: that is reported as it is, not waited for twice. (The embedded server is left to the
    main thread: its SQLite connection belongs to the thread that opens it.)"""
    import threading

    from clearml_task.errors import NoAnswer

    made: list[Client] = []
    unanswered: list[NoAnswer] = []

    def make() -> None:
        try:
            from clearml_task import config
            from clearml_task.api import Client, Session

            server = config.resolve()
            if server.embedded:
                return
            session = Session(server)
            normal = session.retries, session.on_retry
            session.retries, session.on_retry = 1, _quiet
            client = Client(session)
            session.token()
            client.look_ahead(request.queue, request.project)
            session.retries, session.on_retry = normal
            made.append(client)
        except NoAnswer as e:
            unanswered.append(e)
        except Exception:  # done again, and reported, by the main thread
            pass

    thread = threading.Thread(target=make, name="clearml-task-client", daemon=True)
    thread.start()

    def client() -> Client:
        thread.join()
        if made:
            return made[0]
        if unanswered:
            raise unanswered[0]
        from clearml_task.api import Client

        fresh = Client()
        fresh.session.token()  # the first contact, and its retries, before the task is made: Ctrl-C not held
        return fresh

    return client


def _quiet(message: str) -> None:
    """A retry the look-ahead does not make (it tries once), so says nothing of."""


def submit(request: Request, prepared: Prepared, client: Client) -> Result:
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


def _clone(request: Request, client: Client) -> tuple[str, str | None]:
    """tasks.clone, then only what was given is overridden; the clone's script is never blanked."""
    assert request.base_task_id
    base = client.get_task(request.base_task_id)
    changes = _clone_changes(request, base)
    overrides = {f"new_task_{key}": changes[key] for key in CLONE_OVERRIDES if key in changes}
    if request.project:
        overrides["new_task_project"] = client.project_id(request.project)
    task_id = client.clone_task(request.base_task_id, **overrides)
    try:
        if "requirements" in changes:
            client.edit_task(task_id, script={"requirements": changes["requirements"]})
        if "output_dest" in changes:
            client.edit_task(task_id, output={"destination": changes["output_dest"]})
        if "type" in changes:
            client.edit_task(task_id, type=changes["type"])
    except BaseException:
        client.call("tasks.delete", {"task": task_id, "force": True})
        raise
    project_id = overrides.get("new_task_project") or base.get("project")
    return task_id, project_id


# What tasks.clone itself overrides (new_task_<field>); the rest is edited on the clone.
CLONE_OVERRIDES = ("name", "tags", "hyperparams", "container")


def _clone_changes(request: Request, base: dict[str, Any]) -> dict[str, Any]:
    """What the flags change in a clone of `base`: name, tags, hyperparams (--args merged into the base's),
    container (merged), requirements, output_dest, type; the project aside (it may need creating)."""
    changes: dict[str, Any] = {}
    if request.name:
        changes["name"] = request.name
    if request.tags:
        changes["tags"] = request.tags
    if request.overrides:
        from clearml_task import arguments

        hyperparams = copy.deepcopy(base.get("hyperparams") or {})
        arguments.check_clone_overrides(
            hyperparams.get("Args") or {}, request.overrides, request.base_task_id or ""
        )
        hyperparams["Args"], _new_keys = arguments.merge_overrides(
            hyperparams.get("Args") or {}, request.overrides
        )
        changes["hyperparams"] = hyperparams
    given_container = document.container(request)
    if given_container:
        merged = {**(base.get("container") or {})}
        merged.update({k: v for k, v in given_container.items() if v})
        changes["container"] = merged
    if request.gives_requirements:
        decision = requirements.decide(
            force_none=request.force_no_requirements, given=request.given, add_clearml=_needs_clearml(base)
        )
        changes["requirements"] = document.recorded_requirements(decision)
    if request.output_uri:
        changes["output_dest"] = request.output_uri
    if request.task_type:
        changes["type"] = request.task_type
    return changes


def _needs_clearml(base: dict[str, Any]) -> bool:
    """Whether the base task's requirements hold clearml (its code calls Task.init(): clearml-task put
    clearml there when it injected the call). A clone given other requirements keeps it: without it the
    injected call is skipped, and the task runs untracked."""
    from clearml_task.requirements.files import name_of

    recorded = (base.get("script") or {}).get("requirements") or {}
    lines = [
        line
        for key in ("pip", "extra")
        if isinstance(recorded.get(key), str)
        for line in recorded[key].splitlines()
    ]
    return any(name_of(line) == "clearml" for line in lines)


def preview_clone(request: Request, client: Client) -> dict[str, Any]:
    """The task a clone would make, for --dry-run: the base task's document (read from the server) with
    what the flags change; nothing is created."""
    assert request.base_task_id
    base = client.get_task(request.base_task_id)
    changes = _clone_changes(request, base)
    project = request.project
    if not project and base.get("project"):
        project = client.call("projects.get_by_id", {"project": base["project"]})["project"]["name"]
    script = copy.deepcopy(base.get("script") or {})
    if "requirements" in changes:
        script["requirements"] = changes["requirements"]
    preview: dict[str, Any] = {
        "project": project,
        "name": changes.get("name", base.get("name")),
        "type": changes.get("type", base.get("type")),
        "tags": changes.get("tags", base.get("tags") or []),
        "parent": request.base_task_id,
        "script": script,
        "hyperparams": changes.get("hyperparams", base.get("hyperparams") or {}),
    }
    container = changes.get("container", base.get("container"))
    if container:
        preview["container"] = container
    destination = changes.get("output_dest", (base.get("output") or {}).get("destination"))
    if destination:
        preview["output_dest"] = destination
    return preview
