"""What Ctrl-C does in both commands: KeyboardInterrupt in the main thread, as Python's own handler raises
it, but never inside the import machinery, never in the middle of creating a task, and never twice.

Imported before either command's own modules (clearml_task.__main__): built-in modules only."""

import _signal
import _thread
import sys
import time

REDELIVERY = 0.005  # seconds after which a Ctrl-C that came during an import comes again

_holds: list[tuple[str, str]] = []  # (command, what it is finishing) of the blocks in `Held`, innermost last
_pending = False  # a Ctrl-C came during a hold


def install() -> None:
    """Ctrl-C handled as below from now on, unless SIGINT is not Python's to handle (the command was started
    with it ignored, as a shell's background job is: it stays ignored)."""
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, _handler)


def _handler(signum: int, frame: object) -> None:
    global _pending
    if _holds and not _pending:
        _pending = True
        prog, what = _holds[-1]
        _say(f"{prog}: Ctrl-C: {what} first (Ctrl-C again to leave now)")
        return
    interrupt(frame)


def interrupt(frame: object) -> None:
    """Raise KeyboardInterrupt from a SIGINT handler that was given `frame`, unless the main thread is in
    the import machinery (the commands import lazily, in several threads): raised there it can leave an
    import lock held, so that the next import waits forever, or be swallowed as "Exception ignored" and
    lost. Then SIGINT comes again a moment later, until no import runs. Once raised, a second Ctrl-C ends
    the process at once (no second message, no traceback from the interpreter's shutdown)."""
    current = frame
    while current is not None:
        if current.f_code.co_filename.startswith("<frozen importlib"):  # type: ignore[attr-defined]
            _thread.start_new_thread(_again, (_thread.get_ident(),))  # a handler runs in the main thread
            return
        current = current.f_back  # type: ignore[attr-defined]
    _raise()


def _raise() -> None:
    """KeyboardInterrupt now; a second Ctrl-C ends the process at once."""
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    raise KeyboardInterrupt


def _again(main_thread: int) -> None:
    time.sleep(REDELIVERY)
    _signal.pthread_kill(main_thread, _signal.SIGINT)  # a signal, not a flag: it ends a blocking wait


class Held:
    """`with Held("clearml-task", "the task is being created"):` a Ctrl-C during the block is held until
    it ends (and says so at once), then raised; a second one is raised at once."""

    def __init__(self, prog: str, what: str) -> None:
        self.prog, self.what = prog, what

    def __enter__(self) -> None:
        _holds.append((self.prog, self.what))

    def __exit__(self, kind: object, *exc: object) -> None:
        global _pending
        _holds.pop()
        if not _holds and _pending:
            _pending = False
            if kind is None:  # the block is done: the Ctrl-C it held ends the command now
                _raise()


def _say(line: str) -> None:
    try:  # noqa: SIM105 (contextlib is not imported this early)
        print(line, file=sys.stderr, flush=True)
    except (OSError, RuntimeError):  # stderr closed, or being written to as the signal came
        pass
