"""How a call reaches the server: HTTP (requests), or the embedded app called in process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import requests

    from clearml_task.server.app import App

Envelope = dict[str, Any]


class TransportError(Exception):
    """The server could not be reached (connection refused, reset, timed out)."""


class Transport(Protocol):
    where: str

    def send(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Envelope]: ...


class HttpTransport:
    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        from urllib.parse import urlsplit

        import requests

        self.where = base_url.rstrip("/")
        self.timeout = timeout
        self.http: requests.Session = requests.Session()
        # A loopback server needs no proxy look-up (it costs ~0.1 ms a call); remote ones keep the env's.
        self.http.trust_env = urlsplit(self.where).hostname not in ("127.0.0.1", "localhost", "::1")

    def send(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Envelope]:
        import requests

        try:
            response = self.http.post(
                f"{self.where}/{path}", data=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as e:
            raise TransportError(f"{type(e).__name__}: {e}") from None
        try:
            envelope = response.json()
            if not isinstance(envelope, dict) or "meta" not in envelope:
                raise ValueError
        except ValueError:
            msg = f"HTTP {response.status_code} with a non-API answer: {response.text[:200]!r}"
            envelope = {"meta": {"result_code": response.status_code, "result_subcode": 0, "result_msg": msg}}
        return response.status_code, envelope


class InProcessTransport:
    """The embedded server, in this process, over the SQLite file in `data_dir` ("ephemeral mode")."""

    def __init__(self, data_dir: Path) -> None:
        from clearml_task.server.app import App

        self.app: App = App(data_dir)
        self.where = f"embedded server in {data_dir}"

    def send(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Envelope]:
        return self.app.handle(
            "/" + path,
            body,
            authorization=headers.get("Authorization"),
            content_type=headers.get("Content-Type", "application/json"),
        )


def encode(data: dict[str, Any] | list[dict[str, Any]]) -> tuple[bytes, str]:
    """A dict goes as JSON; a list (events.add_batch) as json-lines."""
    if isinstance(data, list):
        return "\n".join(json.dumps(item) for item in data).encode(), "application/json-lines"
    return json.dumps(data).encode(), "application/json"
