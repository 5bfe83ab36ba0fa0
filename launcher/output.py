"""A task's stdout and stderr into log lines, as the user printed them.

- stdout lines go at level `info`, stderr lines at `error` (the level ClearML's SDK gives them).
- `\\r` progress updates collapse to their latest state: a finished line keeps what it showed last; while a
  bar keeps redrawing, its state is logged at most every CR_PERIOD seconds.
- Bytes that are not UTF-8 stay visible as backslash escapes.
- Nothing waits on a pipe for ever: `stop()` ends the reading after taking what is already there (a
  process that escaped the task's process group may hold the pipe open long after the task ended)."""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO

from launcher import threads

CR_PERIOD = 10.0  # seconds between two logged states of one `\r` progress line
MAX_PARTIAL = 1024 * 1024  # bytes without a newline logged as they are (the log ships them in pieces)
READ_SIZE = 64 * 1024
ERROR_TAIL = 20  # stderr lines kept: why a process that never ran did not (a container engine's refusal)

Write = Callable[[str, str], None]  # (line, level)


def text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


class Lines:
    """One stream's bytes → its lines (one level), with `\\r` updates collapsed."""

    def __init__(self, write: Write, level: str, cr_period: float = CR_PERIOD) -> None:
        self.write, self.level, self.cr_period = write, level, cr_period
        self.partial = b""  # bytes after the last newline (and after the last `\\r` of a redrawn line)
        self.latest = b""  # the newest complete state of a line being redrawn
        self.shown = b""  # the state of it logged last
        self.shown_at = 0.0

    def feed(self, data: bytes) -> None:
        self.partial += data
        *complete, self.partial = self.partial.split(b"\n")
        for line in complete:
            self._line(line)
        if b"\r" in self.partial:
            self._progress()
        if len(self.partial) >= MAX_PARTIAL:
            cut = _char_boundary(self.partial)
            self._line(self.partial[:cut])
            self.partial = self.partial[cut:]

    def end(self) -> None:
        if self.partial or self.latest:
            self._line(self.partial)
            self.partial = b""

    def _line(self, line: bytes) -> None:
        final = _latest(line) or self.latest
        if not (self.shown and final == self.shown):  # a bar's last state is logged once
            self.write(text(final), self.level)
        self.latest = self.shown = b""

    def _progress(self) -> None:
        """A line being redrawn: its newest complete state, logged at most every cr_period seconds."""
        drawn, _, self.partial = self.partial.rpartition(b"\r")
        self.latest = _latest(drawn) or self.latest
        now = time.monotonic()
        if self.latest and self.latest != self.shown and now - self.shown_at >= self.cr_period:
            self.write(text(self.latest), self.level)
            self.shown, self.shown_at = self.latest, now


def _latest(line: bytes) -> bytes:
    """What a line redrawn with `\\r` shows last (a trailing `\\r`, as in `\\r\\n`, draws nothing)."""
    parts = [part for part in line.split(b"\r") if part]
    return parts[-1] if parts else b""


class Output:
    """Reads the task's stdout and stderr in one thread, in the order their bytes arrive."""

    def __init__(self, stdout: IO[bytes], stderr: IO[bytes], write: Write) -> None:
        self.error_tail: deque[str] = deque(maxlen=ERROR_TAIL)  # the last stderr lines that are not blank

        def error(line: str, level: str) -> None:
            if line.strip():
                self.error_tail.append(line)
            write(line, level)

        self.streams = {stdout.fileno(): Lines(write, "info"), stderr.fileno(): Lines(error, "error")}
        self._stop = threading.Event()
        self._work: threads.Work | None = None

    def start(self) -> Output:
        self._work = threads.start(self._pump, name="output-reader")
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait until both streams ended (or `timeout`); True when they did."""
        assert self._work is not None, "start() first"
        self._work.join(timeout)
        return not self._work.is_alive()

    def stop(self) -> None:
        """Take what the pipes hold now and stop reading (whoever still holds them open)."""
        self._stop.set()
        if self._work is not None:
            self._work.join()

    def _pump(self) -> None:
        selector = selectors.DefaultSelector()
        for fd in self.streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        open_fds = set(self.streams)
        while open_fds:
            stopping = self._stop.is_set()
            ready = selector.select(0 if stopping else 0.1)
            if stopping and not ready:
                break
            for key, _ in ready:
                fd = int(key.fd)
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    continue
                if data:
                    self.streams[fd].feed(data)
                else:
                    selector.unregister(fd)
                    open_fds.discard(fd)
        selector.close()
        for lines in self.streams.values():
            lines.end()


def _char_boundary(data: bytes) -> int:
    """The length of `data`, or up to 3 bytes less, so that a UTF-8 character at its end is not cut in two:
    a long line logged in pieces keeps its text (bytes that are no UTF-8 are cut where they are)."""
    end = len(data)
    for back in range(1, min(4, end + 1)):
        byte = data[end - back]
        if byte < 0x80:  # ASCII: nothing is open
            return end
        if byte >= 0xC0:  # a lead byte: does its character end before the end?
            size = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return end if back >= size else end - back
    return end
