"""A stand-in for ClearML's server where our server's log de-duplication is concerned: a loopback HTTP proxy
in front of our server that removes every event's `seq` from `events.add_batch` (ClearML's server gives each
log event an id of its own, so a batch stored twice shows twice), and that loses the calls it is told to:
`answer` forwards the call and drops the connection instead of answering (the batch is stored, the client
does not know), `request` drops the connection without forwarding (nothing is stored, the client does not
know that either)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from testing.servers import LoopbackServer, ProxyHandler, relay, respond


@dataclass
class ForgetfulProxy:
    upstream: str  # our server's URL
    losses: list[str] = field(default_factory=list)  # what becomes of the next add_batch calls, in order
    batches: int = 0  # add_batch calls seen
    stripped: int = 0  # events whose seq was removed

    def start(self) -> str:
        proxy = self

        class Handler(ProxyHandler):
            def do_POST(self) -> None:
                body = self.body()
                loss = ""
                if self.path.endswith("/events.add_batch"):
                    body, loss = proxy._batch(body)
                if loss == "request":
                    self.close_connection = True
                    return
                answer = relay(self, proxy.upstream, body)
                if loss == "answer":
                    self.close_connection = True
                    return
                respond(self, *answer)

        self._server = LoopbackServer(Handler)
        return self._server.url

    def stop(self) -> None:
        self._server.stop()

    def _batch(self, body: bytes) -> tuple[bytes, str]:
        self.batches += 1
        events = [json.loads(line) for line in body.splitlines() if line.strip()]
        for event in events:
            if event.pop("seq", None) is not None:
                self.stripped += 1
        loss = self.losses.pop(0) if self.losses else ""
        return b"\n".join(json.dumps(event).encode() for event in events), loss
