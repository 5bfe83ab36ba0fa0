"""An `https://` server: the same kept-alive transport over TLS, against the real server behind a TLS front
(a certificate openssl makes for the test, trusted through SSL_CERT_FILE)."""

from __future__ import annotations

import contextlib
import itertools
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clearml_task.api import Client, Session
from clearml_task.api.plain_http import PlainConnection
from clearml_task.api.transport import HttpTransport, ProxiedHttpTransport
from clearml_task.config import ServerConfig
from clearml_task.errors import NoAnswer, UserError
from testing.commands import assert_one_line_error, run
from testing.servers import ServerProcess, TlsFront, certificate

FRONT_NAMES = ("localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def trusted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The front's certificate and key: for localhost and 127.0.0.1."""
    return certificate(tmp_path_factory.mktemp("tls"), *FRONT_NAMES)


@pytest.fixture
def front(http_server: ServerProcess, trusted: tuple[Path, Path]) -> Iterator[TlsFront]:
    served = TlsFront(http_server.url, *trusted)
    yield served
    served.stop()


def config(url: str, server: ServerProcess, tmp_path: Path) -> ServerConfig:
    keys = server.keys
    return ServerConfig(url, None, None, keys["access_key"], keys["secret_key"], "test", tmp_path)


@pytest.mark.parametrize("host", FRONT_NAMES)
def test_calls_over_https_share_one_kept_alive_connection(
    host: str,
    front: TlsFront,
    http_server: ServerProcess,
    trusted: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A task made, queued and read over TLS; the login and every call after it on one connection (the
    server's name, or its address, checked against the certificate)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted[0]))
    session = Session(config(f"https://{host}:{front.port}", http_server, tmp_path), retries=1)
    assert isinstance(session.transport, HttpTransport)
    client = Client(session)
    queue = client.queue_id("tls", create=True)
    task_id = client.create_task({"name": "over tls", "type": "training"})
    client.enqueue(task_id, queue)
    for _ in range(10):
        assert client.get_task(task_id)["status"] == "queued"
    assert front.connections == 1


PROBLEMS = {  # a certificate that does not check out: what the error's hint says to do
    "unknown CA": "point SSL_CERT_FILE at a CA bundle that includes the CA that signed it",
    "another name": "name the server in CLEARML_API_HOST / api.api_server as its certificate does",
    "expired": "the server's certificate must be renewed (or this machine's clock is wrong)",
}


@pytest.mark.parametrize("problem", PROBLEMS)
def test_a_certificate_that_does_not_check_out_is_said_at_once(
    problem: str,
    http_server: ServerProcess,
    trusted: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Signed by a CA this machine does not trust, made for another name, or expired: one error, at the first
    try (trying again cannot help), with what to do about it."""
    if problem == "unknown CA":
        cert = trusted
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate(tmp_path / "other", "localhost")[0]))
    else:
        made_for = "clearml.example" if problem == "another name" else "localhost"
        cert = certificate(tmp_path / "cert", made_for, expired=problem == "expired")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    served = TlsFront(http_server.url, *cert)
    retried: list[str] = []
    try:
        session = Session(config(f"https://localhost:{served.port}", http_server, tmp_path), retries=3,
                          on_retry=retried.append)  # fmt: skip
        with pytest.raises(UserError) as caught:
            session.call("queues.get_all")
    finally:
        served.stop()
    where = f"https://localhost:{served.port}"
    said = f"the ClearML server at {where} has a TLS certificate this machine does not trust"
    assert caught.value.message.startswith(said), caught.value.message
    assert caught.value.hint.startswith(PROBLEMS[problem]), caught.value.hint
    assert retried == []


def test_a_server_that_answers_the_tls_hello_in_plain_http_is_said_at_once(
    http_server: ServerProcess, tmp_path: Path
) -> None:
    """A handshake that cannot succeed (here: the server speaks plain HTTP and answers the hello with a 400,
    as most do) is not a server that is away: one error at the first try, naming the likely mix-up."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_in_plain_http(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    accepted = serve(listener, answer_in_plain_http)
    where = f"https://localhost:{listener.getsockname()[1]}"
    retried: list[str] = []
    session = Session(config(where, http_server, tmp_path), retries=3, on_retry=retried.append)
    try:
        with pytest.raises(UserError) as caught:
            session.call("queues.get_all")
    finally:
        listener.close()
    assert caught.value.message.startswith(f"the TLS handshake with the ClearML server at {where} failed (")
    assert caught.value.hint.startswith("it may speak http://, not https://"), caught.value.hint
    assert retried == [] and accepted == [1]


def test_a_daemon_trusts_a_ca_added_while_it_retries(
    front: TlsFront, http_server: ServerProcess, trusted: tuple[Path, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A patient session (a daemon) retries through an untrusted certificate, and the CA bundle is read
    again: the operator adds the CA to SSL_CERT_FILE's file and the next try gets through, no restart."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(certificate(tmp_path / "other", "localhost")[0].read_text())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    retried: list[str] = []

    def operator_adds_the_ca(message: str) -> None:
        retried.append(message)
        bundle.write_text(bundle.read_text() + trusted[0].read_text())

    session = Session(config(f"https://localhost:{front.port}", http_server, tmp_path), retries=3,
                      backoff=0.01, patient=True, on_retry=operator_adds_the_ca)  # fmt: skip
    assert "queues" in session.call("queues.get_all")
    assert len(retried) == 1 and "CERTIFICATE_VERIFY_FAILED" in retried[0], retried


def test_bytes_past_an_answers_end_over_tls_are_never_the_next_calls_answer(
    trusted: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that sends more than its first answer says (here a forged second answer, in the same TLS
    record): the bytes TLS has decrypted already are not read as the next call's answer; every call gets
    its own."""
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted[0]))
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(*trusted)
    listener = socket.create_server(("127.0.0.1", 0))

    def answer(number: object, pad: int = 0) -> bytes:
        body = json.dumps({"meta": {"result_code": 200}, "data": {"n": number, "pad": "p" * pad}}).encode()
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def answer_over_tls(raw: socket.socket) -> None:
        with server_side.wrap_socket(raw, server_side=True) as conn:
            for number in itertools.count(len(accepted) * 100):
                if not conn.recv(65536):
                    break
                sent = answer(number)
                if number == 100:  # exactly the client's read buffer, and the forgery after it
                    pad = 8192 - len(sent)
                    while len(sent := answer(number, pad)) != 8192:
                        pad -= len(sent) - 8192
                    sent += answer("forged")
                conn.sendall(sent)

    accepted = serve(listener, answer_over_tls)
    transport = HttpTransport(f"https://localhost:{listener.getsockname()[1]}", 5)
    try:
        numbers = [transport.send("x.y", b"{}", {})[1]["data"]["n"] for _ in range(3)]
    finally:
        listener.close()
    assert numbers == [100, 200, 201] and len(accepted) == 2


def test_an_untrusted_certificate_behind_an_https_proxy_is_said_at_once_and_ssl_cert_file_trusts(
    front: TlsFront, http_server: ServerProcess, trusted: tuple[Path, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Through the proxy `https_proxy` names (requests, CONNECT): SSL_CERT_FILE is trusted as without a
    proxy, and a certificate that does not check out is one error at the first try, as without one."""
    proxy = ConnectProxy()
    monkeypatch.setenv("https_proxy", proxy.url)
    for name in ("no_proxy", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    url = f"https://localhost:{front.port}"
    retried: list[str] = []
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(trusted[0]))
        session = Session(config(url, http_server, tmp_path), retries=3, on_retry=retried.append)
        assert isinstance(session.transport, ProxiedHttpTransport)
        assert "queues" in session.call("queues.get_all")
        for bundle in (certificate(tmp_path / "other", "localhost")[0], tmp_path / "not-there.pem"):
            monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # another CA; a file that is not there
            session = Session(config(url, http_server, tmp_path), retries=3, on_retry=retried.append)
            with pytest.raises(UserError, match="has a TLS certificate this machine does not trust"):
                session.call("queues.get_all")
    finally:
        proxy.stop()
    assert retried == [] and proxy.tunnels == [f"localhost:{front.port}"] * 3


def test_an_https_address_of_a_server_that_never_answers_says_it_may_speak_http(
    http_server: ServerProcess, tmp_path: Path
) -> None:
    """The address says https:// and the TLS hello gets no answer (a plain-HTTP server that waits for a
    request line, as waitress alone does): the error says it may speak http://, not only that the server is
    down or overloaded."""
    from testing.servers import SilentServer

    silent = SilentServer()
    try:
        url = silent.url.replace("http://", "https://")
        session = Session(config(url, http_server, tmp_path), retries=3)
        session.transport.timeout = 1.0  # type: ignore[attr-defined]  # a person's 30 s, scaled down
        with pytest.raises(NoAnswer) as caught:
            session.call("queues.get_all")
    finally:
        silent.stop()
    assert caught.value.hint.startswith("it may speak http://, not https://"), caught.value.hint


def test_an_https_address_of_our_http_server_fails_at_once_saying_it_may_speak_http(
    http_server: ServerProcess, tmp_path: Path
) -> None:
    """Ours answers a TLS hello with a plain 400 at once: the handshake fails on the spot, and the error
    says the server may speak http://."""
    url = http_server.url.replace("http://", "https://")
    session = Session(config(url, http_server, tmp_path), retries=3)
    with pytest.raises(UserError) as caught:
        session.call("queues.get_all")
    assert not isinstance(caught.value, NoAnswer) and "WRONG_VERSION_NUMBER" in caught.value.message
    assert caught.value.hint.startswith("it may speak http://, not https://"), caught.value.hint


def serve(listener: socket.socket, handle: Callable[[socket.socket], None]) -> list[int]:
    """Each connection `listener` accepts, handled in turn by `handle` in a thread of the test, until the
    listener is closed; the list returned grows by one as each is accepted."""
    accepted: list[int] = []

    def loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with contextlib.suppress(OSError), conn:
                handle(conn)

    threading.Thread(target=loop, daemon=True).start()
    return accepted


class ConnectProxy:
    """An https proxy on a free loopback port: CONNECT host:port, then bytes both ways; it records the
    tunnels asked for."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.tunnels: list[str] = []
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(4096)
            target = head.split()[1].decode()
            self.tunnels.append(target)
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                ends = [client, upstream]
                while True:
                    for end in select.select(ends, [], [], 30)[0]:
                        data = end.recv(65536)
                        if not data:
                            return
                        (upstream if end is client else client).sendall(data)

    def stop(self) -> None:
        self._listener.close()


def test_clearml_task_says_an_untrusted_certificate_in_one_line(
    front: TlsFront, http_server: ServerProcess, tmp_path: Path
) -> None:
    """The command as a user runs it, with the system's CAs only: one line, not a retry loop nor a
    traceback."""
    keys = http_server.keys
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    where = f"https://localhost:{front.port}"
    env = {"CLEARML_API_HOST": where, "CLEARML_API_ACCESS_KEY": keys["access_key"],
           "CLEARML_API_SECRET_KEY": keys["secret_key"], "SSL_CERT_FILE": "/nonexistent/ca.pem"}  # fmt: skip
    result = run("clearml-task", "--project", "tls", "--name", "untrusted", "--script", str(script), env=env)
    assert_one_line_error(result, 1, f"the ClearML server at {where} has a TLS certificate")


def test_a_patient_session_tries_again_through_an_untrusted_certificate(
    front: TlsFront, http_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon's session waits for a certificate to be renewed (or trusted) as it waits for a server that is
    away: it says why it retries, and gives up only as a person's would, after its tries."""
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca.pem")
    retried: list[str] = []
    session = Session(config(f"https://localhost:{front.port}", http_server, tmp_path), retries=2,
                      backoff=0.01, patient=True, on_retry=retried.append)  # fmt: skip
    with pytest.raises(UserError, match="cannot reach the ClearML server"):
        session.call("queues.get_all")
    assert len(retried) == 1 and "CERTIFICATE_VERIFY_FAILED" in retried[0], retried


def test_an_answer_dripped_over_tls_is_a_timeout_once_the_whole_answer_is_late(
    trusted: tuple[Path, Path],
) -> None:
    """Over TLS as over plain HTTP, the whole answer must come within the timeout: a server that drips it
    (a byte every 0.1 s, for 3 s) is not waited for one timeout per byte."""
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(*trusted)
    listener = socket.create_server(("127.0.0.1", 0))

    def drip() -> None:
        raw, _ = listener.accept()
        with contextlib.suppress(OSError), server_side.wrap_socket(raw, server_side=True) as conn:
            conn.recv(65536)  # the request
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(30):
                conn.sendall(b"X")
                time.sleep(0.1)

    threading.Thread(target=drip, daemon=True).start()
    client_side = ssl.create_default_context(cafile=str(trusted[0]))
    connection = PlainConnection("localhost", listener.getsockname()[1], timeout=0.5, tls=client_side)
    try:
        connection.connect()
        with pytest.raises(TimeoutError, match=r"no whole answer within 0\.5s"):  # not the drip's end
            connection.request("POST", "/x", b"{}", {})
    finally:
        connection.close()
        listener.close()


def test_the_host_header_leaves_out_only_the_schemes_own_port() -> None:
    tls = ssl.create_default_context()
    assert b"\r\nHost: clearml.example\r\n" in PlainConnection("clearml.example", None, 5, tls)._head(
        "POST", "/x", {}
    )
    assert b"\r\nHost: clearml.example:80\r\n" in PlainConnection("clearml.example", 80, 5, tls)._head(
        "POST", "/x", {}
    )
    assert b"\r\nHost: clearml.example\r\n" in PlainConnection("clearml.example", 80, 5)._head(
        "POST", "/x", {}
    )
    assert b"\r\nHost: clearml.example:443\r\n" in PlainConnection("clearml.example", 443, 5)._head(
        "POST", "/x", {}
    )
