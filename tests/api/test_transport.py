"""The client's HTTP transports: http.client with keep-alive (and a reconnect when the server dropped an
idle connection), requests when a proxy applies."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clearml_task.api import Client, Session
from clearml_task.api.transport import HttpTransport, ProxiedHttpTransport, http_transport
from clearml_task.config import ServerConfig
from clearml_task.server.app import App
from testing.servers import LoopbackServer


class CountingSocket(socket.socket):
    """A listening socket that counts the connections it accepts."""

    accepted = 0

    def accept(self) -> tuple[socket.socket, Any]:
        found = super().accept()
        self.accepted += 1
        return found


@dataclass
class Served:
    url: str
    app: App
    listener: CountingSocket
    polled: threading.Event  # set when a long poll (queues.get_next_task) reaches the app

    @property
    def accepted(self) -> int:
        """The connections the server has accepted."""
        return self.listener.accepted


@pytest.fixture
def short_lived_server(tmp_path: Path) -> Iterator[Served]:
    """Our app under waitress, closing idle connections after one second; the server side tells how many
    connections it accepted and when a long poll arrived."""
    from waitress.server import create_server

    app = App(tmp_path / "srv")
    polled = threading.Event()

    def observed(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"].endswith("/queues.get_next_task"):
            polled.set()
        return app(environ, start_response)

    listener = CountingSocket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = create_server(observed, sockets=[listener], channel_timeout=1, cleanup_interval=1)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield Served(f"http://127.0.0.1:{listener.getsockname()[1]}", app, listener, polled)
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


def test_a_dropped_keep_alive_connection_is_opened_again(short_lived_server: Served, tmp_path: Path) -> None:
    served = short_lived_server
    keys = served.app.keys
    config = ServerConfig(served.url, None, None, keys.access_key, keys.secret_key, "test", tmp_path)
    session = Session(config, retries=1)
    session.call("queues.get_all")
    assert isinstance(session.transport, HttpTransport)
    assert served.accepted == 1  # the login and the call: one connection, kept alive
    time.sleep(2.5)  # the server closes it meanwhile
    assert "queues" in session.call("queues.get_all")
    assert served.accepted == 2


def test_calls_one_after_another_share_one_connection_whichever_thread_makes_them(
    short_lived_server: Served, tmp_path: Path
) -> None:
    """clearml-task logs in from a thread while git runs, then calls from the main thread: one connection;
    calls at the same time each get their own (an http.client connection is not thread-safe)."""
    served = short_lived_server
    keys = served.app.keys
    config = ServerConfig(served.url, None, None, keys.access_key, keys.secret_key, "test", tmp_path)
    session = Session(config, retries=1)
    assert isinstance(session.transport, HttpTransport)
    thread = threading.Thread(target=session.call, args=("queues.get_all",))
    thread.start()
    thread.join()
    assert served.accepted == 1
    assert "queues" in session.call("queues.get_all")
    assert served.accepted == 1
    client = Client(session)
    queue = client.queue_id("held", create=True)
    polling = threading.Thread(target=client.take_next, args=([queue], 30))
    polling.start()  # a call under way elsewhere (a daemon's long poll) holds the connection ...
    assert served.polled.wait(30)
    assert "queues" in session.call("queues.get_all")  # ... so this one opens its own
    assert served.accepted == 2
    client.enqueue(client.create_task({"name": "the long poll's answer", "type": "training"}), queue)
    polling.join(60)
    assert not polling.is_alive()


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
    url, app = short_lived_server.url, short_lived_server.app
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
