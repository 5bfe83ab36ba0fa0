"""The client's HTTP transports: http.client with keep-alive (and a reconnect when the server dropped an
idle connection), requests when a proxy applies."""

from __future__ import annotations

import http.client
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearml_task.api import Session
from clearml_task.api.transport import HttpTransport, ProxiedHttpTransport, http_transport
from clearml_task.config import ServerConfig
from clearml_task.server.app import App
from testing.servers import LoopbackServer


@pytest.fixture
def short_lived_server(tmp_path: Path) -> Iterator[tuple[str, App]]:
    """Our app under waitress, closing idle connections after one second."""
    from waitress.server import create_server

    app = App(tmp_path / "srv")
    server = create_server(app, host="127.0.0.1", port=0, channel_timeout=1, cleanup_interval=1)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", app
    server.task_dispatcher.shutdown()


def test_transport_choice_follows_the_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "no_proxy",
        "NO_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    assert isinstance(http_transport("http://127.0.0.1:8008"), HttpTransport)
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    assert isinstance(http_transport("http://clearml.example:8008"), ProxiedHttpTransport)
    assert isinstance(http_transport("https://clearml.example"), HttpTransport)  # no https_proxy
    monkeypatch.setenv("no_proxy", "clearml.example")
    assert isinstance(http_transport("http://clearml.example:8008"), HttpTransport)


def test_a_dropped_keep_alive_connection_is_opened_again(
    short_lived_server: tuple[str, App], tmp_path: Path
) -> None:
    url, app = short_lived_server
    config = ServerConfig(url, None, None, app.keys.access_key, app.keys.secret_key, "test", tmp_path)
    session = Session(config, retries=1)
    session.call("queues.get_all")
    assert isinstance(session.transport, HttpTransport)
    first = session.transport.connection
    assert first is not None  # kept alive
    time.sleep(2.5)  # the server closes it meanwhile
    assert "queues" in session.call("queues.get_all")
    assert session.transport.connection is not first


def test_calls_one_after_another_share_one_connection_whichever_thread_makes_them(
    short_lived_server: tuple[str, App], tmp_path: Path
) -> None:
    """clearml-task logs in from a thread while git runs, then calls from the main thread: one connection;
    calls at the same time each get their own (an http.client connection is not thread-safe)."""
    url, app = short_lived_server
    config = ServerConfig(url, None, None, app.keys.access_key, app.keys.secret_key, "test", tmp_path)
    session = Session(config, retries=1)
    assert isinstance(session.transport, HttpTransport)
    thread = threading.Thread(target=session.call, args=("queues.get_all",))
    thread.start()
    thread.join()
    first = session.transport.connection
    assert first is not None
    assert "queues" in session.call("queues.get_all")
    assert session.transport.connection is first
    held = session.transport._take()  # a call under way elsewhere holds it ...
    assert held is first
    assert "queues" in session.call("queues.get_all")  # ... so this one opens its own
    assert session.transport.connection is not first
    held.close()


class _Relay(http.server.BaseHTTPRequestHandler):
    """A forwarding HTTP proxy (absolute-form request lines), counting what it relays."""

    relayed: list[str] = []

    def do_POST(self) -> None:
        from urllib.parse import urlsplit

        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "host")}
        upstream.request("POST", target.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.relayed.append(target.path)
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_calls_go_through_the_proxy_the_environment_names(
    short_lived_server: tuple[str, App], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, app = short_lived_server
    proxy = LoopbackServer(_Relay)
    try:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        # a name other than 127.0.0.1, so that requests does not bypass the proxy for loopback
        named = url.replace("127.0.0.1", "localhost")
        config = ServerConfig(named, None, None, app.keys.access_key, app.keys.secret_key, "test", tmp_path)
        session = Session(config, retries=1)
        assert isinstance(session.transport, ProxiedHttpTransport)
        assert "queues" in session.call("queues.get_all")
        assert _Relay.relayed[-2:] == ["/auth.login", "/queues.get_all"]
    finally:
        proxy.stop()
