"""A task's processes die with the launcher that runs them, however it dies (kill -9 included).

On Linux the task's command runs under this module, started as a script (`python -I -S tether.py PARENT
ARGV...`: stdlib only, nothing from the task's environment on its path). It asks the kernel to signal it
when its parent dies (prctl PR_SET_PDEATHSIG; set in the process itself, so no `preexec_fn` runs in a
launcher with threads), leads the run's process group, forks the task's command and passes its exit
status on as its own. When the launcher dies it ends the whole run — the process group and every process
carrying the run's marker (launcher.reaper), setsid escapees included. A signal to the group while the
launcher lives (an abort) is left to the task: the tether waits for it and reports how it ended.

The kernel sends the signal when the *thread* that started the process ends, not the process: the
launcher starts a run from the thread that waits for it (the main thread, or a services-mode slot's thread),
which lives until the run has ended.

Elsewhere (macOS, Windows) there is no such signal: the command runs as it is, and a dead launcher's run is
ended when a launcher takes its worker id again (launcher.registry)."""

from __future__ import annotations

# _signal, not signal: the same functions and numbers without importing enum (this module starts every task)
import _signal as signal
import os
import sys

PR_SET_PDEATHSIG = 1
DEATH_SIGNAL = signal.SIGHUP  # no pathlib either
GRACE = 2.0  # seconds between SIGTERM and SIGKILL for what a dead launcher's run left


def available() -> bool:
    return sys.platform.startswith("linux")


def command(argv: list[str]) -> list[str]:
    """`argv` tethered to this process (Linux); as it is elsewhere."""
    if not available():
        return argv
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), str(os.getpid()), *argv]


def _ask_for_death_signal() -> bool:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _end_the_run() -> None:
    """The launcher is gone: end the run's processes (the group, the marked ones), then this one."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    from launcher import reaper

    for signum in (signal.SIGTERM, signal.SIGINT, DEATH_SIGNAL):
        signal.signal(signum, signal.SIG_IGN)
    reaper.end(None, os.environ.get(reaper.MARKER), grace=GRACE)  # never this process itself
    os.killpg(os.getpgrp(), signal.SIGKILL)  # whatever in the group has no marker; this process last


def main(args: list[str]) -> int:
    parent, argv = int(args[0]), args[1:]
    orphaned = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal orphaned
        if os.getppid() != parent and not orphaned:  # the launcher died; else the task handles it
            orphaned = True
            _end_the_run()

    for signum in (signal.SIGTERM, signal.SIGINT, DEATH_SIGNAL):
        signal.signal(signum, on_signal)
    _ask_for_death_signal()
    if os.getppid() != parent:  # it died before the kernel was asked to tell us
        return 1
    child = os.fork()
    if child == 0:
        for signum in (signal.SIGTERM, signal.SIGINT, DEATH_SIGNAL):
            signal.signal(signum, signal.SIG_DFL)
        try:
            os.execvp(argv[0], argv)
        except OSError as error:
            os.write(2, f"launcher: cannot start the process: {error}\n".encode(errors="replace"))
        os._exit(127)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except ChildProcessError:
            return 1
    if os.WIFSIGNALED(status):
        ended_by = os.WTERMSIG(status)  # ended by a signal: so is this process, for whoever waits
        if ended_by not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(ended_by, signal.SIG_DFL)
        os.kill(os.getpid(), ended_by)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
