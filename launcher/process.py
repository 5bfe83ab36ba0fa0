"""Running the task's process: the command line, its environment, its output line by line into the log,
tasks.ping while it runs, and an abort from the server (status stopped, or "stopping" in status_message)
ending the whole process group: SIGTERM, then SIGKILL after a grace period. When the main process ends,
whatever it started ends too (launcher.reaper), and the launcher never waits on a pipe they hold. When the
launcher dies, the run dies with it (launcher.tether's warden, on Linux)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task.vocabulary import CLOSED, CREATED, FAILED, QUEUED, STOPPED
from launcher import threads
from launcher.workspace import encodable, refused

if TYPE_CHECKING:
    from clearml_task.api import Client
    from launcher.logship import LogShipper

WATCH_INTERVAL = 0.5  # seconds between looks at the task's status
PING_INTERVAL = 30.0
GRACE = 10.0  # seconds between SIGTERM and SIGKILL
DRAIN = 1.0  # seconds the output may take to end after the main process did, before what holds it is ended
LEFTOVER_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for what the task left behind
EXEC_FAILED = 127  # the exit code of a command that could not start, as a shell (and the old tether) gives


@dataclass
class Outcome:
    exit_code: int | None  # None when it never started
    aborted: bool = False
    left: int = 0  # processes it left running, which were ended
    reason: str = ""  # why it never started (the system's words)
    stopped_here: bool = False  # aborted because the launcher itself was stopped (Ctrl-C, SIGTERM, --stop)
    error_tail: tuple[str, ...] = ()  # its last stderr lines, as the log has them

    @property
    def message(self) -> str:
        if self.aborted:
            return "aborted"
        if self.reason:
            return f"exit code {self.exit_code} ({self.reason})"
        if self.exit_code is not None and self.exit_code < 0:
            return f"killed by signal {signal.Signals(-self.exit_code).name}"
        return f"exit code {self.exit_code}"


def runnable(workdir: Path, entry_point: str) -> str:
    """The entry point as it runs: a notebook's code cells are written, in order, to a script beside it
    (`.<name>.py`, so its neighbours import as they do in Jupyter); anything else as it is. A notebook
    with IPython magics or shell escapes is a UserError naming the cell."""
    if not entry_point.endswith(".ipynb") or entry_point.startswith("-m "):
        return entry_point
    from clearml_task import notebook
    from clearml_task.errors import UserError

    path = workdir / entry_point
    script = path.with_name(f".{path.name}.py")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{entry_point} is not a Jupyter notebook (not UTF-8 text)") from None
    text = notebook.as_script(content, path.name)
    try:  # a new file: never written through a symlink the checkout holds at that name
        script.unlink(missing_ok=True)
        with os.fdopen(
            os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644),
            "w",
            encoding="utf-8",
        ) as out:
            out.write(text)
    except OSError as e:
        raise UserError(
            f"the notebook's code cells could not be written to {script.name}: {e.strerror}"
        ) from None
    return str(Path(entry_point).with_name(script.name))


def command(python: Path, entry_point: str, argv: list[str]) -> list[str]:
    """`python -u <entry_point> <argv>`; `-m module ...` for modules; bash for shell scripts. A NUL, which
    no command line can hold, fails the task naming the field."""
    check_word("script.entry_point", entry_point)
    for word in argv:
        check_word("hyperparams.Args", word)
    if entry_point.startswith("-m "):
        return [str(python), "-u", "-m", *shlex.split(entry_point[3:]), *argv]
    if entry_point.endswith(".sh"):
        return ["/bin/bash", entry_point, *argv]
    return [str(python), "-u", entry_point, *argv]


def environment(
    task: Mapping[str, Any], extra: Mapping[str, str], workdir: Path, root: Path
) -> dict[str, str]:
    """The child's environment: ours, the task's `Environment` hyperparams, and what the launcher adds."""
    env = dict(os.environ)
    for param in ((task.get("hyperparams") or {}).get("Environment") or {}).values():
        if param.get("name"):
            name, value = str(param["name"]), str(param.get("value", ""))
            env[check_variable(name, value)] = value
    paths = [str(workdir), str(root)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def check_word(field: str, word: str) -> None:
    """A word a command line can hold: no NUL, no lone surrogate (else the task fails naming `field`)."""
    if "\0" in word or not encodable(word):
        raise refused(field, word, "a command line cannot hold a NUL or a lone surrogate")


def check_variable(name: str, value: str) -> str:
    """A variable of the task's `Environment` hyperparams that an environment can hold: a name without `=`
    or NUL, a value without NUL, neither with a lone surrogate (else the task fails naming it, before
    anything starts); returns `name`."""
    if "=" in name or "\0" in name or not encodable(name):
        raise refused(
            "hyperparams.Environment", name, "a variable's name cannot hold '=', a NUL or a lone surrogate"
        )
    if "\0" in value or not encodable(value):  # (the value itself is not shown: it may be a secret)
        raise refused(
            "hyperparams.Environment",
            name,
            "its value holds a NUL or a lone surrogate, which no environment can",
        )
    return name


def run(
    argv: list[str], *, cwd: Path, env: Mapping[str, str], client: Client, task_id: str, log: LogShipper,
    grace: float = GRACE, stop: threading.Event | None = None,
    started: Callable[[int, str], None] | None = None, meanwhile: Callable[[], None] | None = None,
    linger: float = 0.0,
) -> Outcome:  # fmt: skip
    """Run the task's process to its end. `started(pid, marker)` is told the process (its pid is its
    process group) and the marker its descendants inherit, for whoever must clean up after a crash.
    `meanwhile` runs once the process runs and its output is read: work that need not delay the task (a
    failure is a warning in the log). `linger`: seconds what the process left may take to end by itself
    before it is ended (a container engine's monitor, which writes down the container's exit code)."""
    from clearml_task.arguments.masking import shown_line
    from launcher import reaper, tether

    log.write(f"launcher: running {shown_line(argv)} (in {cwd})")  # a --password's value is not shown
    token = uuid.uuid4().hex
    tether.watch(token)  # told to the warden first: the run dies with this process, even a kill -9 (Linux)
    try:
        child = subprocess.Popen(
            argv, cwd=cwd, env={**env, reaper.MARKER: token}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    except OSError as e:
        tether.ended(token)
        log.write(f"launcher: cannot start the process: {e}", "error")
        return Outcome(EXEC_FAILED if tether.available() else None, reason=f"cannot start: {e.strerror or e}")
    tether.started(token, child.pid)
    reaper.running(child.pid, token)
    try:
        return _follow(child, token, client, task_id, log, grace, stop, started, meanwhile, linger)
    except BaseException:  # the launcher failed while the task ran: the task does not outlive the run
        reaper.end(child.pid, token, grace, ours=True)
        raise
    finally:
        reaper.finished(child.pid)
        tether.ended(token)


def _follow(
    child: subprocess.Popen[bytes], token: str, client: Client, task_id: str, log: LogShipper, grace: float,
    stop: threading.Event | None, started: Callable[[int, str], None] | None,
    meanwhile: Callable[[], None] | None, linger: float = 0.0,
) -> Outcome:  # fmt: skip
    """The started process to its end: the abort watch, its output into the log, what it leaves ended."""
    from launcher import output, reaper

    if started is not None:
        started(child.pid, token)
    aborted, by_launcher = threading.Event(), threading.Event()  # the abort, and whether the launcher's stop
    done = threading.Event()
    watcher = threads.start(_watch, child, client, task_id, aborted, by_launcher, done, grace, stop,
                            name="abort-watch")  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    reader = output.Output(child.stdout, child.stderr, log.write).start()
    if meanwhile is not None:
        try:
            meanwhile()
        except Exception as e:
            log.write(f"launcher: warning: {e}", "warning")
    code = child.wait()
    reader.join(DRAIN)  # the output ends with the process, unless something it left holds it open
    if linger and not aborted.is_set():
        reaper.settle(child.pid, token, linger)
    left = reaper.end(child.pid, token, grace=LEFTOVER_GRACE, ours=True)
    reader.stop()
    if left:
        log.write(f"launcher: the task left {left} process(es) running; they were stopped", "warning")
    child.stdout.close()
    child.stderr.close()
    done.set()
    watcher.join()
    return Outcome(code, aborted.is_set(), left, stopped_here=by_launcher.is_set(),
                   error_tail=tuple(reader.error_tail))  # fmt: skip


def _watch(
    child: subprocess.Popen[bytes], client: Client, task_id: str, aborted: threading.Event,
    by_launcher: threading.Event, done: threading.Event, grace: float, stop: threading.Event | None,
) -> None:  # fmt: skip
    """Until `done`: an abort from the server, or `stop` (the launcher's own), ends the process group and
    sets `aborted` (and `by_launcher` when it was the launcher's stop); pings meanwhile."""
    last_ping = time.monotonic()
    while not done.wait(WATCH_INTERVAL):
        try:
            here = stop is not None and stop.is_set()
            if here or abort_requested(client, task_id):
                if here:
                    by_launcher.set()
                aborted.set()
                stop_group(child, grace, done)
                return
            if time.monotonic() - last_ping >= PING_INTERVAL:
                client.ping(task_id)
                last_ping = time.monotonic()
        except Exception:  # a server hiccup must not kill the run; the next look tries again
            continue


def abort_requested(client: Client, task_id: str) -> bool:
    found = client.tasks(id=[task_id], only_fields=["status", "status_message"])
    if not found:
        return True  # deleted under us
    status, message = found[0].get("status"), found[0].get("status_message") or ""
    return status in (STOPPED, FAILED, CLOSED, QUEUED, CREATED) or "stopping" in message


def stop_group(child: subprocess.Popen[bytes], grace: float, done: threading.Event | None = None) -> None:
    """SIGTERM to the child's whole process group, SIGKILL to what is left after `grace` seconds."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if child.poll() is not None and not _group_alive(child.pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
