"""Shipping a task's console to the server: lines batched into events.add_batch at most every 0.5 s, in
order, nothing lost at exit (close() flushes), and the launcher's own step lines in the same stream."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clearml_task.api import Client

INTERVAL = 0.5
MAX_BATCH = 1000
MAX_LINE = 64 * 1024


class LogShipper:
    def __init__(self, client: Client, task_id: str, worker: str, *, echo: bool = False) -> None:
        from clearml_task.console import line_printer

        self.client, self.task_id, self.worker = client, task_id, worker
        self.echo = line_printer() if echo else None
        self._pending: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one batch in flight at a time: the server sees our order
        self._wake = threading.Event()
        self._closed = False
        self._last_stamp = 0
        self._thread = threading.Thread(target=self._loop, name="log-shipper", daemon=True)
        self._thread.start()
        self.shipped = 0
        self.failures = 0

    def write(self, line: str, level: str = "info") -> None:
        """One line of output (without its newline)."""
        if self.echo is not None:
            self.echo(line, level)
        with self._lock:
            # Strictly increasing millisecond stamps keep the server's order equal to ours.
            stamp = max(int(time.time() * 1000), self._last_stamp + 1)
            self._last_stamp = stamp
            self._pending.append((level, line[:MAX_LINE], stamp))
            if len(self._pending) >= MAX_BATCH:
                self._wake.set()

    def flush(self) -> None:
        """Ship what is pending now (before the task's final status, so a follower sees every line)."""
        self._flush()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join()
        self._flush()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(INTERVAL)
            self._wake.clear()
            self._flush()

    def _flush(self) -> None:
        with self._sending:
            self._send()

    def _send(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        for start in range(0, len(batch), MAX_BATCH):
            chunk = batch[start : start + MAX_BATCH]
            lines = [(level, msg) for level, msg, _stamp in chunk]
            try:
                self.client.send_log(self.task_id, lines, worker=self.worker, stamps=[c[2] for c in chunk])
                self.shipped += len(chunk)
            except Exception:  # the run goes on; the next flush tries again with these lines first
                self.failures += 1
                with self._lock:
                    self._pending = batch[start:] + self._pending
                return
