"""The real server for tests: a `clearml-launcher server` subprocess over loopback HTTP, the app in process,
and raw bytes to either; and the loopback HTTP server the stand-ins for other servers answer on."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pytest
import requests

if TYPE_CHECKING:
    import ssl

from clearml_task.config import ServerConfig
from clearml_task.errors import APICallError
from clearml_task.server.app import App

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServerProcess:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def keys(self) -> dict[str, str]:
        stored: dict[str, str] = json.loads((self.data_dir / "credentials.json").read_text())
        return stored


def start_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> ServerProcess:
    """`clearml-launcher server --port 0` in a subprocess; returns once it listens."""
    log = data_dir.parent / f"{data_dir.name}.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_API_")}
    environ.update(env or {})
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher", "server", "--port", "0", "--data-dir", str(data_dir), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=ROOT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"serving the ClearML API at (http://\S+)", log.read_text())
        if found:
            return ServerProcess(found[1], data_dir, process, log)
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def stop_server(server: ServerProcess) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()


class LoopbackServer:
    """A stand-in's handler (a Kubernetes API, a proxy) served on a free loopback port by a thread of the test
    process, until `stop`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> None:
        """`tls`: a server-side context: the stand-in speaks https."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls is not None:  # each connection's handshake is made as it is accepted
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, name="test-loopback", daemon=True).start()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def certificate(folder: Path, *names: str, expired: bool = False) -> tuple[Path, Path]:
    """A self-signed TLS certificate (its own CA) for `names` (DNS names or IP addresses), valid now or
    (`expired`) for a day in 2020, made by openssl (a test without it is skipped, and fails under CI=true):
    its certificate and key files."""
    import shutil

    from testing.engines import require

    require(None if shutil.which("openssl") else "openssl is not installed (apt-get install openssl)")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key, request = folder / "server.crt", folder / "server.key", folder / "server.csr"
    alt = ",".join(f"IP:{n}" if re.fullmatch(r"[0-9.]+|.*:.*", n) else f"DNS:{n}" for n in names)
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key)]
    subject = ["-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={alt}",
               "-addext", "basicConstraints=critical,CA:TRUE"]  # fmt: skip
    if not expired:
        _openssl("req", "-x509", *new_key, *subject, "-days", "2", "-out", str(cert))
        return cert, key
    # `req -x509` only makes certificates valid from now: `ca -selfsign` takes any dates
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("01\n")
    (folder / "ca.cnf").write_text(
        "[ca]\ndefault_ca = c\n[c]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
        "default_md = sha256\npolicy = p\ncopy_extensions = copy\nunique_subject = no\n"
        "[p]\ncommonName = supplied\n"
    )
    _openssl("req", "-new", *new_key, *subject, "-out", str(request), cwd=folder)
    dates = ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"]
    _openssl("ca", "-batch", "-selfsign", "-config", "ca.cnf", "-keyfile", str(key), "-in", str(request),
             "-out", str(cert), *dates, cwd=folder)  # fmt: skip
    return cert, key


def _openssl(*argv: str, cwd: Path | None = None) -> None:
    subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=cwd)


class TlsFront:
    """An https:// stand-in with the certificate in `cert`/`key` that relays every call to `upstream` (the
    real server over plain HTTP), on a free loopback port; it counts the connections it served."""

    def __init__(self, upstream: str, cert: Path, key: Path) -> None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        served: list[int] = []

        class Relaying(ProxyHandler):
            def setup(self) -> None:
                served.append(1)
                super().setup()

            def do_POST(self) -> None:
                respond(self, *relay(self, upstream, self.body()))

        self._served = served
        self._server = LoopbackServer(Relaying, tls=context)
        self.port = int(self._server.url.rsplit(":", 1)[1])

    @property
    def connections(self) -> int:
        return len(self._served)

    def stop(self) -> None:
        self._server.stop()


class SilentServer:
    """A loopback port that takes every connection and never answers (a server that is there but stuck),
    until `stop`."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._taken: list[socket.socket] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._take, name="test-silent", daemon=True).start()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _take(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._taken.append(connection)  # held open, never read from nor written to

    @property
    def connections(self) -> int:
        """Connections taken so far (a client has got as far as calling)."""
        return len(self._taken)

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self._listener.close()
        for connection in self._taken:
            connection.close()


class ProxyHandler(BaseHTTPRequestHandler):
    """A quiet keep-alive handler for a stand-in in front of another server (`relay`, `respond`)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        return

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


def relay(handler: BaseHTTPRequestHandler, upstream: str, body: bytes) -> tuple[int, str, bytes]:
    """The request a stand-in's `handler` holds, sent on to `upstream` (method, path, body, authorization
    and content type): the answer's status, content type and body."""
    import http.client
    from urllib.parse import urlsplit

    target = urlsplit(upstream)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
    headers = {k: v for k, v in handler.headers.items() if k.lower() in ("authorization", "content-type")}
    connection.request(handler.command, handler.path, body=body or None, headers=headers)
    answer = connection.getresponse()
    data = answer.read()
    connection.close()
    return answer.status, answer.getheader("Content-Type") or "application/json", data


def respond(handler: BaseHTTPRequestHandler, status: int, content_type: str, data: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def http_config(server: ServerProcess, tmp: Path) -> ServerConfig:
    keys = server.keys
    return ServerConfig(server.url, None, None, keys["access_key"], keys["secret_key"], "test", tmp)


def embedded_config(tmp: Path) -> ServerConfig:
    return ServerConfig(None, None, None, None, None, "embedded", tmp)


class Raw:
    """Bytes in, (HTTP status, envelope) out: for transport and auth tests."""

    def __init__(self, mode: str, *, app: App | None = None, url: str = "", keys: tuple[str, str]) -> None:
        self.mode, self.app, self.url, self.keys = mode, app, url, keys

    def send(
        self,
        path: str,
        body: bytes = b"",
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> tuple[int, dict[str, Any]]:
        headers = headers or {}
        if self.app is not None:
            return self.app.handle(
                path,
                body,
                method=method,
                authorization=headers.get("Authorization"),
                content_type=headers.get("Content-Type", ""),
                query=parse_qsl(query),
            )
        response = requests.request(
            method,
            f"{self.url}{path}" + (f"?{query}" if query else ""),
            data=body,
            headers=headers,
            timeout=30,
        )
        return response.status_code, response.json()

    def basic(self, access: str | None = None, secret: str | None = None) -> str:
        pair = f"{access or self.keys[0]}:{secret or self.keys[1]}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def token(self, **login: Any) -> str:
        code, envelope = self.send(
            "/auth.login", json.dumps(login).encode(), headers={"Authorization": self.basic()}
        )
        assert code == 200, envelope
        token: str = envelope["data"]["token"]
        return token

    def call(self, endpoint: str, body: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"}
        headers.update(kw.pop("headers", {}))
        data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        return self.send(f"/{endpoint}", data, headers=headers, **kw)


def api_error(excinfo: pytest.ExceptionInfo[APICallError]) -> tuple[int, int]:
    return excinfo.value.code, excinfo.value.subcode
