"""The commands' entry points (`clearml-task`, `python -m clearml_task`; `clearml-launcher` goes through
`guarded` too) and what a Ctrl-C does: at any moment after the interpreter's own start it ends the command
in one line and exit code 130, never a traceback nor a hang. Only built-in modules are imported before the
guard is up."""

import _signal
import _thread
import sys
import time


def guarded(prog: str, module: str) -> int:
    """`module`'s main(), with a Ctrl-C before its own handling begins (imports, parsing the flags) told
    as one line."""
    try:
        interrupt_outside_imports()
        command = __import__(module, fromlist=["main"]).main
        return int(command() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted", file=sys.stderr)
        return 130


REDELIVERY = 0.005  # seconds after which a Ctrl-C that came during an import is raised again


def interrupt_outside_imports() -> None:
    """Ctrl-C raises KeyboardInterrupt in the main thread, as Python's own handler does, but never inside
    the import machinery (`interrupt`)."""
    _signal.signal(_signal.SIGINT, lambda signum, frame: interrupt(frame))


def interrupt(frame: object) -> None:
    """Raise KeyboardInterrupt from a SIGINT handler that was given `frame`, unless the main thread is in
    the import machinery (the commands import lazily, in several threads): raised there it can leave an
    import lock held, so that the next import waits forever, or be swallowed as "Exception ignored" and
    lost. Then SIGINT comes again a moment later, until no import runs."""
    current = frame
    while current is not None:
        if current.f_code.co_filename.startswith("<frozen importlib"):  # type: ignore[attr-defined]
            _thread.start_new_thread(_again, (_thread.get_ident(),))  # a handler runs in the main thread
            return
        current = current.f_back  # type: ignore[attr-defined]
    raise KeyboardInterrupt


def _again(main_thread: int) -> None:
    time.sleep(REDELIVERY)
    _signal.pthread_kill(main_thread, _signal.SIGINT)  # a signal, not a flag: it ends a blocking wait


def main() -> int:
    return guarded("clearml-task", "clearml_task.cli")


if __name__ == "__main__":
    sys.exit(main())
