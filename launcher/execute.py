"""Running one task: take it, reproduce its code and environment, run it, report how it ended.

Shared by `clearml-launcher execute` (one task, now) and the daemon (tasks from queues)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task import stoppable
from clearml_task.errors import UserError
from clearml_task.git.urls import scrub
from clearml_task.server.files import files_url
from clearml_task.vocabulary import COMPLETED, FAILED, IN_PROGRESS, QUEUED, RUNNABLE_STATUSES, STOPPED
from launcher import reaper, tether, threads
from launcher.backends import Job, Runner, runner_name, write_private
from launcher.backends.local import Local
from launcher.errors import ReproductionError

if TYPE_CHECKING:
    from clearml_task.api import Client
    from launcher.logship import LogShipper
    from launcher.process import Outcome
    from launcher.reuse import Spares


@dataclass
class Settings:
    home: Path  # the launcher's caches and work trees live under it
    worker: str = ""
    gpus: str | None = None  # "0,1": CUDA_VISIBLE_DEVICES for the task; "" for --cpu-only; None: untouched
    grace: float = 10.0
    keep_workspace: bool = False
    echo: bool = True
    sdk_report_subprocess: bool = False  # the SDK's Linux default; its exit then waits 5-11 s
    runner: Runner = field(default_factory=Local)  # where the process runs: the host, or a container
    # Told what a run has on this machine as it starts (its backend, work tree, SDK config; then pid, pgid
    # and the marker its processes inherit): the daemon's record, for cleaning up after a crash.
    on_run: Callable[[dict[str, Any]], None] | None = None
    env_cache_size: int = 20 * 1024**3  # bytes the environment cache may hold (0: no limit)
    spares: Spares | None = None  # the daemon's kept work tree (launcher.reuse); None: every run checks out
    # The server's address and keys for the task's SDK, when the caller serves them for all its runs (a
    # daemon in ephemeral mode: `server_for_tasks`); None: each run finds (or serves) its own.
    server_env: dict[str, str] | None = None

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def work_dir(self) -> Path:
        return self.home / "work"


def default_worker() -> str:
    return f"{socket.gethostname()}:0"


def take(client: Client, task_id: str) -> dict[str, Any]:
    """Mark the task in_progress (a queued one leaves its queue); refuse a task that is not runnable."""
    task = _runnable(client, task_id, None)
    if task["status"] == QUEUED:
        client.call("tasks.dequeue", {"task": task_id, "new_status": IN_PROGRESS})
    else:
        _mark_started(client, task)
    return task


def take_meanwhile(
    client: Client, task_id: str, document: dict[str, Any] | None = None
) -> tuple[dict[str, Any], Callable[[], None]]:
    """`take` of a task already off its queue (a daemon's; `document`: the task as the server gave it with
    its queue entry, read now when None), its `started` call sent in a thread while the run is prepared:
    the task, and the wait for that call (`run` waits before the process starts, and before any final
    status; it raises what the call raised)."""
    task = _runnable(client, task_id, document)
    failed: list[BaseException] = []

    def send() -> None:
        try:
            _mark_started(client, task)
        except BaseException as e:  # raised where the run waits for it
            failed.append(e)

    sending = threads.start(send, name="task-started")

    def wait() -> None:
        sending.join()
        if failed:
            raise failed[0]

    return task, wait


def _mark_started(client: Client, task: dict[str, Any]) -> None:
    """tasks.started; forced for a task still queued (a daemon took its entry off the queue)."""
    client.set_status(task["id"], "started", force=task["status"] == QUEUED)


def _runnable(client: Client, task_id: str, document: dict[str, Any] | None) -> dict[str, Any]:
    task = document if document is not None else client.get_task(task_id)
    if task["status"] not in RUNNABLE_STATUSES:
        raise UserError(
            f"task {task_id} is {task['status']}; it cannot run as it is",
            "run a copy with `clearml-launcher execute --clone --id ...`",
        )
    return task


def run(
    client: Client,
    task: dict[str, Any],
    settings: Settings,
    log: LogShipper,
    stop: threading.Event | None = None,
    report: Callable[[Callable[[], None]], None] | None = None,
    where: dict[str, str] | None = None,
    ready: Callable[[], None] | None = None,
) -> str:
    """Reproduce and run a taken task; returns its final status (completed, failed or stopped). Setting
    `stop` (the daemon is shutting down) aborts the run: the task ends stopped, never completed.

    The final status goes to the server after the log's lines (whoever waits for the end sees every line),
    by `report(action)`: now when it is None; a daemon runs the action in the background, once the run's
    process is gone, while it takes its next task. `where`: the run's `plan`, already in the caller's record
    (made now, and told to `settings.on_run`, when None).
    `ready`: the wait for the task's `started` call (`take_meanwhile`), done before the process starts and
    before the final status."""
    from clearml_task import locks
    from launcher import registry, workspace

    report = report or _now
    ready = ready or _started
    task_id = task["id"]
    if where is None:
        where = plan(settings, task_id)
        if settings.on_run is not None:
            settings.on_run(where)
    dest = Path(where["work_tree"])
    started = time.monotonic()
    ended_cleanly = False  # the process ran and left nothing running: its work tree may be kept
    status, message = "", ""
    preparing = _Preparing(client, task_id, stop, ready)
    try:
        with locks.exclusive(registry.run_lock(dest)), _server_for_the_run(client, settings) as server_env, \
                stoppable.watching(preparing.cancel, _WARDEN):  # fmt: skip
            ws = workspace.prepare(task, dest, settings.cache_dir / "repos", log.write, settings.spares)
            sdk_env = _sdk_config(dest, settings, log)
            job = _job(client, task, settings, log, ws, server_env | sdk_env, stop, preparing.over)
            log.write(f"launcher: the task runs {settings.runner.describe()}")
            ready()  # the task is in_progress on the server before its code runs
            outcome = settings.runner.run(job)
            ended_cleanly = outcome.exit_code is not None and not outcome.aborted and outcome.left == 0
            status, message = _outcome(outcome, log)
    except stoppable.Stopped:  # an abort or a stop while the task was being prepared (git, uv)
        from launcher.process import Outcome as Ended

        here = stop is not None and stop.is_set()
        status, message = _outcome(Ended(None, aborted=True, stopped_here=here), log)
    except ReproductionError as e:
        log.write(f"launcher: {e.reason}", "error")
        for line in e.detail.strip().splitlines()[-40:]:
            log.write(f"  {line}", "error")
        if e.hint:
            log.write(f"launcher: hint: {e.hint}", "error")
        status, message = FAILED, status_message(e.reason)
    except UserError:  # the person's to fix (an engine not installed), or the server is away: as before
        raise
    except Exception as e:  # the launcher's own failure (a full disk, a bug): the task fails, not stranded
        status, message = FAILED, _own_failure(e, log)
    finally:
        preparing.over()
        try:
            _clean_up(dest, settings, log, started, ended_cleanly)
        except Exception as e:  # said, not raised: the run's end is told, and a daemon goes on
            log.write(
                scrub(f"launcher: the clean-up after the run failed: {type(e).__name__}: {e}"), "warning"
            )
        finally:
            if status:  # known: told even if the clean-up failed, never before `started`
                ready()
                report(Ending(client, task_id, status, message, log))
    return status


def _own_failure(error: Exception, log: LogShipper) -> str:
    """The task's status message for an error of the launcher's own; its traceback goes to the task's log
    (credentials in any URL removed), where whoever reports the bug finds it."""
    import traceback

    message = scrub(f"the launcher failed: {type(error).__name__}: {error}")
    log.write(f"launcher: {message}", "error")
    for line in traceback.format_exc().splitlines()[-40:]:
        log.write(f"  {scrub(line)}", "error")
    return status_message(message)


def status_message(text: str) -> str:
    """A failure's text as a task's status message: one line of at most MAX_MESSAGE characters, however
    long the text (a refusal quoting a 100 KB entry point, an error's many lines); the log has it whole."""
    from clearml_task.console import one_line
    from launcher.registry import MAX_MESSAGE

    line = one_line(text)
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def _clean_up(dest: Path, settings: Settings, log: LogShipper, started: float, ended_cleanly: bool) -> None:
    """After a run: its SDK config goes, its work tree goes (or is kept for the next task of its code), the
    environment cache is held to its size."""
    from launcher import envcache, registry

    _sdk_config_path(dest).unlink(missing_ok=True)
    log.write(f"launcher: done in {time.monotonic() - started:.2f}s")
    if settings.keep_workspace:
        registry.run_lock(dest).unlink(missing_ok=True)  # a kept work tree is never swept
    elif not (settings.spares and settings.spares.keep(dest, registry.run_lock(dest), ended_cleanly)):
        _remove_in_background(dest, registry.run_lock(dest))  # unless kept for the next task of its code
    envcache.evict(
        settings.cache_dir / "envs", settings.env_cache_size, lambda line: log.write(f"launcher: {line}")
    )


def plan(settings: Settings, task_id: str) -> dict[str, str]:
    """Where a run of the task lives on this machine (its backend, work tree, SDK config): what the record
    of the run holds before anything is made, for cleaning up after a crash."""
    dest = settings.work_dir / f"{task_id}-{int(time.time() * 1000)}"
    return {"backend": runner_name(settings.runner), "work_tree": str(dest),
            "sdk_config": str(_sdk_config_path(dest))}  # fmt: skip


def _remove_in_background(dest: Path, lock: Path) -> None:
    """The work tree goes in a thread (the next task need not wait for it), then its run lock; the process
    waits for the thread before it exits. Should it die first, the lock left behind gets the tree swept
    (registry.sweep)."""

    def remove() -> None:
        shutil.rmtree(dest, ignore_errors=True)
        lock.unlink(missing_ok=True)

    threading.Thread(target=remove, name="remove-work-tree").start()


def _job(
    client: Client, task: dict[str, Any], settings: Settings, log: LogShipper, ws: Any,
    launcher_env: dict[str, str], stop: threading.Event | None, prepared: Callable[[], None],
) -> Job:  # fmt: skip
    """The run the runner starts: the entry point as it runs (a notebook as its code cells), its parser,
    and what the launcher adds."""
    from clearml_task import arguments
    from launcher import process

    try:
        entry_point = process.runnable(ws.workdir, ws.entry_point)
        parser = arguments.read_parser_file(entry_file(ws.workdir, ws.root, entry_point))
    except UserError as e:
        raise ReproductionError(e.message, hint=e.hint) from None
    if entry_point != ws.entry_point:
        log.write(f"launcher: {ws.entry_point} runs as {entry_point} (its code cells, in order)")
    module_run = _module_words_left(entry_point, parser, task)
    if module_run != entry_point:
        log.write(f"launcher: {entry_point} runs as {module_run} with the values hyperparams.Args holds")
        entry_point = module_run
    extra = {**launcher_env, "CLEARML_TASK_ID": task["id"], "CLEARML_LOG_TASK_TO_BACKEND": "0"}
    if settings.worker:
        extra["CLEARML_WORKER_ID"] = settings.worker
    files = [Path(launcher_env["CLEARML_CONFIG_FILE"])] if "CLEARML_CONFIG_FILE" in launcher_env else []
    return Job(client=client, task=task, root=ws.root, workdir=ws.workdir, entry_point=entry_point,
               parser=parser, extra_env=extra, cache_dir=settings.cache_dir, log=log,
               grace=settings.grace, gpus=settings.gpus, stop=stop, files=files,
               on_start=_on_start(settings, prepared), record=settings.on_run)  # fmt: skip


def _module_words_left(entry_point: str, parser: Any, task: dict[str, Any]) -> str:
    """A module's entry point (`-m pkg.main --epochs 4`) without the arguments hyperparams.Args holds: the
    Args values run, as edited; words Args does not hold (a task made by ClearML's tools) stay."""
    if not entry_point.startswith("-m "):
        return entry_point
    import shlex

    from clearml_task.arguments.inline import words_left

    try:
        module, *words = shlex.split(entry_point[3:])
    except ValueError:
        return entry_point  # as it was: the run says why it cannot start
    given = (task.get("hyperparams") or {}).get("Args") or {}
    if not words or not isinstance(given, dict):
        return entry_point
    recorded = [str(p.get("name") or k) if isinstance(p, dict) else str(k) for k, p in given.items()]
    left = words_left(parser, words, recorded)
    return entry_point if left == words else shlex.join(["-m", module, *left])


def _on_start(settings: Settings, prepared: Callable[[], None]) -> Callable[[int, str], None]:
    """What the runner calls once the task's process has started (its pid, and the marker its processes
    inherit): the preparation is over (the process's own watch takes over), and the daemon's record of the
    run, for cleaning up after a crash."""
    on_run = settings.on_run

    def started(pid: int, marker: str) -> None:
        prepared()
        if on_run is not None:
            on_run({"pid": pid, "pgid": pid, "marker": marker})

    return started


# The preparation's commands (git, uv) die with the launcher, as its runs do (launcher.tether).
_WARDEN = stoppable.Tether(reaper.MARKER, tether.watch, tether.started, tether.ended)


class _Preparing:
    """While a task is prepared (its checkout, its environment: git and uv, which can hang on a remote), a
    watch in a thread: an abort from the server or the launcher's stop sets `cancel`, which ends the command
    running (clearml_task.stoppable). `over()` once the task's process runs (its own watch takes over) or
    the run has ended. The first look comes after the task's `started` call (`ready`): before it, the task
    is still queued, which would read as an abort."""

    def __init__(
        self, client: Client, task_id: str, stop: threading.Event | None, ready: Callable[[], None]
    ) -> None:
        from launcher.process import WATCH_INTERVAL, abort_requested

        self.cancel, self._over = threading.Event(), threading.Event()

        def watch() -> None:
            try:
                ready()
            except BaseException:  # the run says why; there is nothing to watch
                return
            while not self._over.wait(WATCH_INTERVAL):
                try:
                    if (stop is not None and stop.is_set()) or abort_requested(client, task_id):
                        self.cancel.set()
                        return
                except Exception:  # a server hiccup: the next look tries again
                    continue

        self._watch = threads.start(watch, name="preparation-watch")

    def over(self) -> None:
        self._over.set()


def _outcome(outcome: Outcome, log: LogShipper) -> tuple[str, str]:
    """The task's final status from how its process ended (the log says which), and its message."""
    if outcome.aborted and outcome.stopped_here:
        log.write("launcher: stopped: the launcher itself was stopped (Ctrl-C, SIGTERM or --stop)", "warning")
        return STOPPED, "stopped: the launcher running it was stopped"
    if outcome.aborted:
        log.write("launcher: aborted: the task was stopped on the server", "warning")
        return STOPPED, "aborted"
    if outcome.exit_code == 0:
        log.write("launcher: the process exited with code 0")
        return COMPLETED, ""
    log.write(f"launcher: the process ended: {outcome.message}", "error")
    return FAILED, f"worker execution {outcome.message}"


@dataclass(frozen=True)
class Ending:
    """A run's final status, told (when called) after every line the log has so far."""

    client: Client
    task_id: str
    status: str
    message: str
    log: LogShipper

    def __call__(self) -> None:
        self.log.flush()
        self.client.set_status(self.task_id, self.status, force=True, message=self.message)


def _now(action: Callable[[], None]) -> None:
    action()


def _started() -> None:
    """`ready` of a task taken before the run (`take`): nothing to wait for."""


@contextlib.contextmanager
def server_for_tasks(client: Client) -> Iterator[dict[str, str]]:
    """The server's address and keys for the SDK inside tasks. In ephemeral mode the embedded app is
    served on a loopback port for as long as the block runs (the Task.init() in the script needs HTTP):
    `execute` serves it for its one run, a daemon for its whole life (not started and stopped per task)."""
    config = client.session.config
    if not config.embedded:
        assert config.api_server and config.access_key and config.secret_key
        files_server = config.files_server or files_url(config.api_server)
        yield _sdk_env(config.api_server, files_server, config.access_key, config.secret_key)
        return
    from clearml_task.server.serve import in_background

    with in_background(config.server_dir) as served:
        keys = served.app.keys
        yield _sdk_env(served.url, files_url(served.url), keys.access_key, keys.secret_key)


@contextlib.contextmanager
def _server_for_the_run(client: Client, settings: Settings) -> Iterator[dict[str, str]]:
    """What the caller serves for all its runs, else the server for this run alone."""
    if settings.server_env is not None:
        yield settings.server_env
        return
    with server_for_tasks(client) as server_env:
        yield server_env


SDK_CONFIG_SUFFIX = ".clearml.conf"


def _sdk_config_path(dest: Path) -> Path:
    """Beside the checkout, not in it: the task never sees the file among its own."""
    return dest.with_name(dest.name + SDK_CONFIG_SUFFIX)


SDK_SETTINGS = "sdk.development.report_use_subprocess: false\n"


def _sdk_config(dest: Path, settings: Settings, log: LogShipper) -> dict[str, str]:
    """The clearml SDK's config for the task, as ClearML's agent hands one over: the config the SDK would have
    read here (CLEARML_CONFIG_FILE, else ~/clearml.conf), plus the launcher's settings. Reporting from a
    thread instead of a subprocess: the subprocess only notices the end on a fixed 5 s timer, so every task
    would end 5-11 s after its last line. The file (mode 0600: it may hold keys) sits beside the checkout,
    not in it, and is removed after the run. The server's address and keys still come from CLEARML_API_*."""
    if settings.sdk_report_subprocess:
        return {}
    given = os.environ.get("CLEARML_CONFIG_FILE") or os.environ.get("TRAINS_CONFIG_FILE")
    base = Path(os.path.expandvars(os.path.expanduser(given))) if given else Path.home() / "clearml.conf"
    text = ""
    if given or base.exists():
        try:
            text = base.read_text()
        except (OSError, UnicodeDecodeError) as error:
            log.write(f"launcher: warning: the SDK's config {base} cannot be read ({error}); the task's SDK "
                      "gets the launcher's settings only", "warning")  # fmt: skip
    path = _sdk_config_path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, text + ("\n" if text and not text.endswith("\n") else "") + SDK_SETTINGS)
    return {"CLEARML_CONFIG_FILE": str(path), "TRAINS_CONFIG_FILE": str(path)}


def _sdk_env(url: str, files_server: str, access_key: str, secret_key: str) -> dict[str, str]:
    return {
        "CLEARML_API_HOST": url,
        "CLEARML_WEB_HOST": url,
        "CLEARML_FILES_HOST": files_server,
        "CLEARML_API_ACCESS_KEY": access_key,
        "CLEARML_API_SECRET_KEY": secret_key,
    }


def entry_file(workdir: Path, root: Path, entry_point: str) -> Path | None:
    """The Python file an entry point runs (`train.py`, `-m pkg.main`), or None."""
    entry = entry_point.strip()
    if entry.startswith("-m "):
        parts = entry[3:].split()
        if not parts:
            return None
        relative = parts[0].replace(".", "/")
        for base in dict.fromkeys((workdir, root)):
            for candidate in (base / f"{relative}.py", base / relative / "__main__.py"):
                if candidate.is_file():
                    return candidate
        return None
    if not entry or entry.endswith(".sh"):
        return None
    path = workdir / entry.split()[0]
    return path if path.is_file() else None
