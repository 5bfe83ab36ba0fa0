"""A loopback HTTP proxy in front of our server that records every API call it forwards (endpoint and task
id, in the order they came) and holds the first call of one endpoint before forwarding it, until a call of
another endpoint for another task has come (before it or while it waits), or `patience` seconds pass:
whoever waits for the held answer is seen to wait, or not, for the other call. `look`, if given, is called
once the other call has come, while the held one still waits (what the test sees then is in `looked`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from testing.servers import LoopbackServer, ProxyHandler, relay, respond


@dataclass
class HoldingProxy:
    upstream: str  # our server's URL
    hold: str  # the endpoint whose first call is held, e.g. "tasks.completed"
    until: str  # the endpoint whose call, for another task than the held one, lets it go
    patience: float = 60.0
    look: Callable[[], Any] | None = None
    looked: Any = None
    calls: list[tuple[str, str]] = field(default_factory=list)  # (endpoint, task id or "") as forwarded
    released_in_time: bool | None = None  # None: nothing was held
    released_at: float = 0.0  # time.time() when the held call went on
    _held_task: str | None = None
    _until_tasks: set[str] = field(default_factory=set)
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> str:
        proxy = self

        class Handler(ProxyHandler):
            def do_GET(self) -> None:  # the SDK's auth.login in the task
                self.do_POST()

            def do_POST(self) -> None:
                body = self.body()
                proxy._arrived(self.path.split("?", 1)[0].rsplit("/", 1)[-1], body)
                respond(self, *relay(self, proxy.upstream, body))

        self._server = LoopbackServer(Handler)
        return self._server.url

    @property
    def holding(self) -> bool:
        """The call to hold has come (it may have gone on since)."""
        return self._held_task is not None

    def stop(self) -> None:
        self._release.set()
        self._server.stop()

    def _arrived(self, endpoint: str, body: bytes) -> None:
        """Record the call; hold it when it is the first of `hold`; let the held one go on `until`."""
        try:
            task = json.loads(body or b"{}").get("task")
        except (ValueError, AttributeError):
            task = None
        task = task if isinstance(task, str) else ""
        with self._lock:
            if endpoint == self.until:
                self._until_tasks.add(task)
            first_held = endpoint == self.hold and self._held_task is None
            if first_held:
                self._held_task = task
            else:
                self.calls.append((endpoint, task))  # before the held call can go on
            if self._held_task is not None and self._until_tasks - {self._held_task}:
                self._release.set()  # the other call came (before the held one, or now)
        if first_held:
            self.released_in_time = self._release.wait(self.patience)
            self.released_at = time.time()
            if self.look is not None:
                self.looked = self.look()
            with self._lock:
                self.calls.append((endpoint, task))
