"""What both commands show a person: errors as one line, tables, and the command wrapper that does it."""

from __future__ import annotations

import sys

from clearml_task.errors import UserError

TYPE_CHECKING = False  # as typing's, without importing typing for --help (mypy reads the name so too)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


_PROGRAM = ["clearml-task"]  # the command running (`run` sets it): it leads the lines printed on its behalf


def program() -> str:
    """The name of the command running (clearml-task, clearml-launcher)."""
    return _PROGRAM[0]


def error(prog: str, message: str, hint: str = "") -> None:
    line = f"{prog}: error: {message}"
    if hint:
        line += f" (hint: {hint})"
    print(line, file=sys.stderr)


def run(prog: str, command: Callable[[], int | None], *, debug: bool = False) -> int:
    """Run a command; a UserError becomes one line on stderr and its exit code, never a traceback. Ctrl-C is
    `interrupted` and 130, also when something raised another error as the Ctrl-C unwound it (a library's
    clean-up that fails half-way: libcst's position bookkeeping raises KeyError there)."""
    _PROGRAM[0] = prog
    try:
        return command() or 0
    except KeyboardInterrupt:
        error(prog, "interrupted")
        return 130
    except BrokenPipeError:  # `clearml-launcher tasks | head`: the reader has what it wanted
        if not stdout_closed():
            raise
        return 0
    except Exception as e:
        if not debug and _during_ctrl_c(e):
            error(prog, "interrupted")
            return 130
        if not isinstance(e, UserError):
            raise
        if debug:
            import traceback

            traceback.print_exc()
        error(prog, e.message, e.hint)
        return e.exit_code


def stdout_closed() -> bool:
    """Whether stdout is a pipe its reader closed (poll says so of the pipe: a BrokenPipeError may come
    from a socket too); if so it is pointed at /dev/null, so that the interpreter's last flush does not
    fail on it as well."""
    import os
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        closed = any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll here, or no file behind stdout
        return False
    if closed:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    return closed


def _during_ctrl_c(error: BaseException) -> bool:
    """The error was raised while a KeyboardInterrupt was being handled (its context chain holds one)."""
    seen: set[int] = set()
    cause: BaseException | None = error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__context__
    return False


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on a terminal; plain aligned columns when piped (nothing folded, easy to grep)."""
    cells = [[("" if cell is None else one_line(str(cell))) for cell in row] for row in rows]
    if not sys.stdout.isatty():
        widths = [max(len(c) for c in column) for column in zip(columns, *cells, strict=False)]
        for line in [list(columns), *cells]:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip())
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column, overflow="fold")
    for row in cells:
        view.add_row(*(escape(cell) for cell in row))  # a task's name is not markup
    Console().print(view)


STEP_PREFIXES = ("launcher:", "workspace:", "environment:")
# What a log line (the task's output, or any event a key holder added) may not hand a terminal: control
# characters other than tab and newline (escape sequences: a window title, a cleared screen, the clipboard),
# C1 controls, and lone surrogates (which no terminal encoding can print).
_UNSHOWABLE = "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]"
_unshowable: Any = None


def visible(line: str) -> str:
    """`line` safe to print on a terminal: each character it may not hand one as a backslash escape
    (`\\x1b`, `\\x9b`, `\\ud800`)."""
    global _unshowable
    if _unshowable is None:
        import re

        _unshowable = re.compile(_UNSHOWABLE)
    return _unshowable.sub(_escape, line)


def one_line(text: str) -> str:
    """`text` as `visible` shows it, its line breaks and tabs as escapes too: a value in a table's cell."""
    return visible(text).replace("\n", "\\n").replace("\t", "\\t")


def _escape(match: Any) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def line_printer() -> Callable[[str, str], None]:
    """Prints a task's log lines as they happen: on a terminal the launcher's own steps (with their
    timings) stand out from the task's output and errors are red; piped, plain lines."""
    if not sys.stdout.isatty():

        def plain(line: str, level: str) -> None:
            print(visible(line), flush=True)

        return plain
    from rich.console import Console
    from rich.markup import escape

    out = Console(highlight=False, soft_wrap=True)

    def styled(line: str, level: str) -> None:
        line = visible(line)
        if level in ("error", "critical"):
            out.print(f"[red]{escape(line)}[/]")
        elif line.startswith(STEP_PREFIXES):
            name, _, rest = line.partition(":")
            out.print(f"[bold cyan]{escape(name)}[/][cyan]:{escape(rest)}[/]")
        else:
            out.print(escape(line))

    return styled
