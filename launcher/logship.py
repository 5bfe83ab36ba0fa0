"""Shipping a task's console to the server: lines batched into events.add_batch at most every 0.5 s, in
order, each exactly once, nothing lost at exit (close() flushes) or while the server is away.

- Every line gets its real time (never moved forward to make stamps unique: lines of one millisecond share
  it, and the server keeps them in the order they came) and a sequence number unique in the run (`seq`):
  our server stores a line it already has once.
- ClearML's server gives every log event an id of its own (whatever the client sends): a batch stored
  twice shows twice. So a batch is never sent again blindly: when its call failed after the request went
  out (the answer lost, a gateway's 502), the task's log since the batch's first stamp is read back first,
  and only the lines the server does not hold are sent (a batch stored in part is completed).
- A line longer than MAX_LINE goes as several events, in order; nothing is cut.
- While the server cannot be reached, lines wait: up to MAX_MEMORY in memory, the rest in a spill file,
  sent in their order once it answers again."""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import IO, TYPE_CHECKING

from clearml_task.api.transport import MaybeDelivered
from clearml_task.errors import APICallError
from launcher import threads

if TYPE_CHECKING:
    from clearml_task.api import Client

INTERVAL = 0.5
MAX_BATCH = 1000
MAX_LINE = 64 * 1024  # characters per event (the server's limit); longer lines go as several events
MAX_MEMORY = 20_000  # lines waiting in memory; more wait in a spill file
CLOSE_TRIES = 5  # flushes at close while lines wait and the server may hold some of them

Entry = tuple[str, str, int, str]  # level, message, millisecond stamp, seq
Key = tuple[str, int, str, str]  # worker, stamp, level, message: a line as the server gives it back


def chunks(line: str, size: int = MAX_LINE) -> list[str]:
    """A line as pieces of at most `size` characters, in order (one piece for a short or empty line)."""
    return [line[i : i + size] for i in range(0, len(line), size)] or [""]


class Spill:
    """Lines waiting on disk, oldest first (json lines appended, read back from a moving offset)."""

    def __init__(self, directory: Path | None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = tempfile.TemporaryFile(  # noqa: SIM115 - open as long as lines wait in it
            "w+", encoding="utf-8", dir=directory, prefix="log-spill-"
        )
        self.read_at = 0
        self.count = 0

    def append(self, entry: Entry) -> None:
        self.file.seek(0, 2)
        self.file.write(json.dumps(entry) + "\n")
        self.count += 1

    def take(self, limit: int) -> list[Entry]:
        self.file.flush()
        self.file.seek(self.read_at)
        out: list[Entry] = []
        while len(out) < limit:
            line = self.file.readline()
            if not line:
                break
            level, msg, stamp, seq = json.loads(line)
            out.append((level, msg, stamp, seq))
        self.read_at = self.file.tell()
        self.count -= len(out)
        return out

    def close(self) -> None:
        self.file.close()


class LogShipper:
    def __init__(
        self, client: Client, task_id: str, worker: str, *, echo: bool = False, spill_dir: Path | None = None
    ) -> None:
        from clearml_task.console import line_printer

        self.client, self.task_id, self.worker = client, task_id, worker
        self.echo = line_printer() if echo else None
        self.run = uuid.uuid4().hex[:12]
        self.spill_dir = spill_dir
        self._pending: deque[Entry] = deque()
        self._spill: Spill | None = None
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one batch in flight at a time: the server sees our order
        self._wake = threading.Event()
        self._closed = False
        self._last_stamp = 0
        self._count = 0
        self._work = threads.start(self._loop, name="log-shipper")
        self.shipped = 0
        self.failures = 0
        self.dropped = 0  # lines the server refused (not a connection problem): not sent again
        self._unsure = False  # the oldest batch's last try may have reached the server
        self._tail_stamp, self._tail = 0, Counter[Key]()  # the lines shipped at the latest stamp

    def write(self, line: str, level: str = "info") -> None:
        """One line of output (without its newline)."""
        if self.echo is not None:
            self.echo(line, level)
        with self._lock:
            # Real time, never backwards: the server orders by stamp, then by arrival.
            stamp = max(int(time.time() * 1000), self._last_stamp)
            self._last_stamp = stamp
            for piece in chunks(line):
                self._count += 1
                entry = (level, piece, stamp, f"{self.run}:{self._count}")
                if self._spill is None and len(self._pending) < MAX_MEMORY:
                    self._pending.append(entry)
                else:
                    if self._spill is None:
                        self._spill = Spill(self.spill_dir)
                    self._spill.append(entry)
            if len(self._pending) >= MAX_BATCH:
                self._wake.set()

    @property
    def waiting(self) -> int:
        """Lines not yet shipped."""
        with self._lock:
            return len(self._pending) + (self._spill.count if self._spill else 0)

    def flush(self) -> None:
        """Ship what is pending now (before the task's final status, so a follower sees every line)."""
        self._flush()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._work.join()
        self._flush()
        for attempt in range(CLOSE_TRIES):
            if not self.waiting:
                break
            time.sleep(0.2 * 2**attempt)
            self._flush()
        if self.waiting:  # never silently: the launcher's own output says so
            print(f"launcher: {self.waiting} log line(s) of task {self.task_id} could not be shipped",
                  file=sys.stderr, flush=True)  # fmt: skip
        with self._lock:
            if self._spill is not None:
                self._spill.close()
                self._spill = None

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(INTERVAL)
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        with self._sending:
            while self._send_one():
                pass

    def _next_batch(self) -> list[Entry]:
        with self._lock:
            if not self._pending and self._spill is not None:
                self._pending.extend(self._spill.take(MAX_MEMORY))
                if self._spill.count == 0:
                    self._spill.close()
                    self._spill = None
            return [self._pending[i] for i in range(min(MAX_BATCH, len(self._pending)))]

    def _send_one(self) -> bool:
        """Ship the oldest batch; True when it went (or was refused for good) and more may follow."""
        batch = self._next_batch()
        if not batch:
            return False
        todo: list[Entry] | None = batch
        if self._unsure:
            todo = self._not_stored(batch)
            if todo is None:  # cannot tell yet: the next flush looks again
                self.failures += 1
                return False
            self._unsure = False
        try:
            if todo:
                lines = [(level, msg) for level, msg, _, _ in todo]
                self.client.send_log(self.task_id, lines, worker=self.worker, stamps=[e[2] for e in todo],
                                     seqs=[e[3] for e in todo], resend=False)  # fmt: skip
        except MaybeDelivered:  # it may be stored: the next try reads back what is
            self._unsure = True
            self.failures += 1
            return False
        except APICallError:  # refused (the task was deleted, say): sending it again cannot help
            self.dropped += len(batch)
            self.failures += 1
        except Exception:  # not reached: these lines stay first in line; the next flush tries again
            self.failures += 1
            return False
        else:
            self.shipped += len(batch)
        self._stored(batch)
        with self._lock:
            for _ in batch:
                self._pending.popleft()
        return True

    def _key(self, entry: Entry) -> Key:
        return (self.worker, entry[2], entry[0], entry[1])

    def _stored(self, batch: list[Entry]) -> None:
        """Remember the lines the server holds at the latest stamp (a later read-back starts there)."""
        for entry in batch:
            if entry[2] != self._tail_stamp:
                self._tail_stamp, self._tail = entry[2], Counter()
            self._tail[self._key(entry)] += 1

    def _not_stored(self, batch: list[Entry]) -> list[Entry] | None:
        """The lines of `batch` the server does not hold, read back from the task's log (None: it cannot
        be read now). A line is its worker, stamp, level and text; those shipped before at the batch's first
        stamp are discounted."""
        try:
            found = self.client.task_log(self.task_id, after=batch[0][2] - 1)
        except Exception:
            return None
        held = Counter((str(e.get("worker", "")), int(e.get("timestamp") or 0), str(e.get("level", "")),
                        str(e.get("msg", ""))) for e in found)  # fmt: skip
        if batch[0][2] == self._tail_stamp:
            held.subtract(self._tail)
        todo = []
        for entry in batch:
            key = self._key(entry)
            if held[key] > 0:
                held[key] -= 1
            else:
                todo.append(entry)
        return todo
