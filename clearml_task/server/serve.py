"""Serving the app over HTTP with waitress (`clearml-launcher server`), and the config block it prints."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearml_task.server.app import App
from clearml_task.server.body import NO_LIMIT
from clearml_task.server.endpoints import MAX_WAIT
from clearml_task.server.files import files_url


@dataclass
class Served:
    app: App
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def api_block(url: str, access_key: str, secret_key: str) -> str:
    """A ready `api { ... }` section for ~/clearml.conf (the web UI and the file server are served on
    the same port)."""
    return (
        "api {\n"
        f"    api_server: {url}\n"
        f"    web_server: {url}\n"
        f"    files_server: {files_url(url)}\n"
        f"    credentials {{\n"
        f'        "access_key" = "{access_key}"\n'
        f'        "secret_key" = "{secret_key}"\n'
        "    }\n"
        "}\n"
    )


# Idle connections (a half-sent request too) are closed after this many seconds, checked every
# CLEANUP_INTERVAL; with CONNECTION_LIMIT well above what clients need, idle ones do not lock others out.
CHANNEL_TIMEOUT = 30
CLEANUP_INTERVAL = 5
CONNECTION_LIMIT = 500
# Threads that waiting calls leave to the others (among them the enqueue that ends a wait).
RESERVED_THREADS = 2


def create_server(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8008,
    threads: int = 8,
    *,
    max_body_mb: int | None = None,
    max_upload_mb: int | None = None,
    non_responsive_timeout: float | None = None,
    channel_timeout: float = CHANNEL_TIMEOUT,
    cleanup_interval: float = CLEANUP_INTERVAL,
    max_wait: float = MAX_WAIT,
) -> tuple[Any, Served]:
    """A waitress server bound to host:port (port 0 = any free port), not yet serving. Bodies past the
    app's limits (an API call's, a file upload's) are refused by waitress before they are read. Calls
    that wait (queues.get_next_task's `wait`) may hold all but RESERVED_THREADS of the threads; waitress
    reads ahead on a connection whose request runs, so that a waiting call sees its client hang up."""
    from waitress.server import create_server as waitress_server

    app = App(data_dir, max_body_mb=max_body_mb, non_responsive_timeout=non_responsive_timeout,
              max_wait=max_wait, max_waiters=max(1, threads - RESERVED_THREADS),
              max_upload_mb=max_upload_mb)  # fmt: skip
    try:
        server = waitress_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="clearml-task",
            max_request_body_size=max(app.max_body, app.max_upload or NO_LIMIT),
            channel_timeout=channel_timeout,
            cleanup_interval=cleanup_interval,
            connection_limit=CONNECTION_LIMIT,
            channel_request_lookahead=1,
        )
    except OSError as e:
        from clearml_task.errors import UserError

        raise UserError(
            f"cannot listen on {host}:{port}: {e.strerror}", "pick another --port, or stop what uses it"
        ) from None
    channel = _plain_http_channel()
    for listener in list((getattr(server, "map", None) or server._map).values()):
        if hasattr(listener, "channel_class"):
            listener.channel_class = channel
    return server, Served(app, host, int(server.effective_port))


# What a client told https:// for this plain-HTTP server gets, at once: a TLS client reads it as a
# wrong protocol version and fails, instead of waiting out its timeout for a handshake that never comes.
NOT_TLS = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 44\r\n\r\n"
    b"this server speaks plain HTTP: use http://\r\n"
)


def _plain_http_channel() -> type:
    """waitress's channel, which answers a connection that opens with a TLS handshake with NOT_TLS and
    closes it (waitress alone waits for a request line that never comes)."""
    from waitress.channel import HTTPChannel

    class PlainHTTPChannel(HTTPChannel):
        opened = False

        def received(self, data: bytes) -> bool:
            if not self.opened and data:
                self.opened = True
                if data[:2] == b"\x16\x03":  # a TLS record: handshake, version 3.x
                    self.write_soon(NOT_TLS)
                    self.close_when_flushed = True
                    return False
            return bool(super().received(data))

    return PlainHTTPChannel


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def in_background(data_dir: Path, host: str = "127.0.0.1") -> Iterator[Served]:
    """The app on a free loopback port in a thread of this process, for as long as the block runs
    (a launcher in ephemeral mode serves it so that the SDK inside a task can reach the server)."""
    import threading

    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    app = App(data_dir)
    server = make_server(host, 0, app, threaded=True, request_handler=Quiet)
    # A short poll interval: shutdown() waits for it (at the end of each `execute`, of each daemon).
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="embedded-server", daemon=True)
    thread.start()
    try:
        yield Served(app, host, int(server.server_port))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
