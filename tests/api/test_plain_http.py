"""plain_http against a real loopback socket that answers with the bytes each test gives: the framings an
HTTP/1.1 server (or a proxy in front of ClearML's) may use, and answers that are not HTTP."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from clearml_task.api.plain_http import BadAnswer, PlainConnection
from clearml_task.api.transport import HttpTransport, MaybeDelivered, TransportError


class RawServer:
    """Accepts connections on loopback; for each request read, sends the next canned answer (then closes
    the connection when the answer says so by `close_after`)."""

    def __init__(self, answers: list[bytes], close_after: bool = False) -> None:
        self.answers, self.close_after = list(answers), close_after
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                while self.answers:
                    request = self._read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    conn.sendall(self.answers.pop(0))
                    if self.close_after:
                        break

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(body) < length:
            body += conn.recv(65536)
        return data

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[list[RawServer]]:
    made: list[RawServer] = []
    yield made
    for server in made:
        server.close()


def _exchange(server: RawServer, body: bytes = b'{"a": 1}') -> tuple[int, bool, bytes]:
    connection = PlainConnection("127.0.0.1", server.port, timeout=5)
    connection.connect()
    connection.request("POST", "/v2.13/x.y", body=body, headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    return answer.status, answer.will_close, answer.read()


def test_a_request_goes_with_its_length_host_and_headers_and_a_length_framed_answer_is_read(
    serve: list[RawServer],
) -> None:
    serve.append(server := RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"]))
    assert _exchange(server, b"x" * 300) == (200, False, b"hello")
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v2.13/x.y HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"Content-Length: 300" in lines and b"Content-Type: application/json" in lines
    assert body == b"x" * 300


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (  # chunks with extensions, then trailers
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4;name=x\r\nhell\r\n1\r\no\r\n0\r\nX-Trailer: 1\r\n\r\n",
            (200, False, b"hello"),
        ),
        (  # an informational answer first, then one that closes the connection
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno",
            (404, True, b"no"),
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", (204, False, b"")),  # no body, nothing waited for
    ],
)
def test_framings_an_http_1_1_server_may_use(
    serve: list[RawServer], answer: bytes, expected: tuple[int, bool, bytes]
) -> None:
    serve.append(server := RawServer([answer]))
    assert _exchange(server) == expected


def test_http_1_0_and_answers_without_a_length_end_with_the_connection(serve: list[RawServer]) -> None:
    serve.append(server := RawServer([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"]))
    assert _exchange(server) == (200, True, b"ok")
    serve.append(server := RawServer([b"HTTP/1.1 200 OK\r\n\r\nuntil the end"], close_after=True))
    assert _exchange(server) == (200, True, b"until the end")


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n",  # not HTTP at all
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",  # no status code
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",  # a length that is not one
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a chunk size that is not one
        b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 101 + b"\r\n",  # too many header lines
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n",  # a line too long
    ],
)
def test_answers_that_are_not_http_are_a_bad_answer(serve: list[RawServer], answer: bytes) -> None:
    serve.append(server := RawServer([answer], close_after=True))
    with pytest.raises(BadAnswer):
        _exchange(server)


def test_a_connection_closed_before_the_answer_or_mid_body_is_a_reset(serve: list[RawServer]) -> None:
    serve.append(server := RawServer([b""], close_after=True))
    with pytest.raises(ConnectionResetError):
        _exchange(server)
    serve.append(
        server := RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"], close_after=True)
    )
    with pytest.raises(ConnectionResetError):
        _exchange(server)


def test_the_transport_reports_a_bad_answer_as_maybe_delivered_never_a_traceback(
    serve: list[RawServer],
) -> None:
    """Through HttpTransport: the request went out, so the failure is MaybeDelivered (a TransportError the
    session reports in one line), and a call that may not be sent twice is not sent again."""
    serve.append(server := RawServer([b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]))
    transport = HttpTransport(f"http://127.0.0.1:{server.port}")
    with pytest.raises(MaybeDelivered, match="BadAnswer"):
        transport.send("tasks.create", b"{}", {"Content-Type": "application/json"}, resend=False)
    assert len(server.requests) == 1


def test_a_host_name_is_resolved(serve: list[RawServer]) -> None:
    serve.append(server := RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]))
    connection = PlainConnection("localhost", server.port, timeout=5)
    connection.request("POST", "/x", body=b"{}", headers={})  # connects on the first request
    assert connection.getresponse().read() == b"ok"
    assert f"Host: localhost:{server.port}".encode() in server.requests[0]


def test_bytes_past_an_answer_are_never_read_as_the_next_calls_answer(serve: list[RawServer]) -> None:
    """A server that sends more than its framing says (a body on a 204): the extra bytes are not the next
    call's answer; through the transport, every call gets its own."""

    def answer(n: int) -> bytes:
        body = b'{"meta": {"result_code": 200}, "n": %d}' % n
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    serve.append(server := RawServer([b"HTTP/1.1 204 No Content\r\n\r\n" + answer(0), answer(1), answer(2)]))
    transport = HttpTransport(f"http://127.0.0.1:{server.port}")
    assert transport.send("a.b", b"{}", {})[0] == 204
    assert [transport.send("a.b", b"{}", {})[1].get("n") for _ in range(2)] == [1, 2]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: \xc2\xb2\r\n\r\n",  # a digit that is not ASCII
        b"HTTP/1.1 \xc2\xb200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",  # would overflow
        b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000000\r\n\r\n",  # would be allocated whole
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
    ],
)
def test_lengths_that_are_not_ascii_digits_or_too_large_are_a_bad_answer(
    serve: list[RawServer], answer: bytes
) -> None:
    serve.append(server := RawServer([answer], close_after=True))
    with pytest.raises(BadAnswer):
        _exchange(server)


def test_an_answer_past_the_largest_read_is_a_bad_answer(
    serve: list[RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from clearml_task.api import plain_http

    monkeypatch.setattr(plain_http, "MAX_ANSWER", 1000)  # the limit, scaled down to a test's size
    for answer in (
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 1001,  # until the connection ends
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"1f4\r\n" + b"x" * 500 + b"\r\n") * 3,
    ):
        serve.append(server := RawServer([answer], close_after=True))
        with pytest.raises(BadAnswer, match="more than 1000"):
            _exchange(server)


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/a.b", {"Authorization": "Bearer x\r\nX-Injected: 1"}),  # a token the server gave, say
        ("/a.b", {"X\r\nY": "1"}),
        ("/a b", {}),
        ("/a\x00b", {}),
    ],
)
def test_a_request_that_would_break_its_framing_is_refused_before_it_goes(
    serve: list[RawServer], url: str, headers: dict[str, str]
) -> None:
    serve.append(server := RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]))
    connection = PlainConnection("127.0.0.1", server.port, timeout=5)
    with pytest.raises(ValueError, match=r"control character|line break"):
        connection.request("POST", url, body=b"{}", headers=headers)
    assert server.requests == []


def test_the_transport_reports_an_unsendable_header_in_one_line(serve: list[RawServer]) -> None:
    serve.append(server := RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]))
    transport = HttpTransport(f"http://127.0.0.1:{server.port}")
    with pytest.raises(TransportError, match="cannot send the request"):
        transport.send("a.b", b"{}", {"Authorization": "Bearer x\ny"})
    assert server.requests == []


def test_the_host_header_names_the_port_unless_it_is_80_and_a_name_in_idna() -> None:
    assert b"\r\nHost: example.org\r\n" in PlainConnection("example.org", 80, 5)._head("POST", "/x", {})
    assert b"\r\nHost: [::1]:8008\r\n" in PlainConnection("::1", 8008, 5)._head("POST", "/x", {})
    assert b"\r\nHost: xn--e1afmkfd.xn--p1ai:81\r\n" in PlainConnection("пример.рф", 81, 5)._head(
        "POST", "/x", {}
    )


def test_an_answer_dripped_a_byte_at_a_time_is_a_timeout_once_the_whole_answer_is_late() -> None:
    """Every byte comes well within the timeout, but the answer does not come whole within it: a timeout,
    not a wait of as many timeouts as the server has bytes to drip (it drips for 3 s, then closes)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def drip() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):  # the client goes before the drip ends
            RawServer._read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(30):
                conn.sendall(b"X")
                time.sleep(0.1)

    threading.Thread(target=drip, daemon=True).start()
    connection = PlainConnection("127.0.0.1", listener.getsockname()[1], timeout=0.5)
    try:
        with pytest.raises(TimeoutError, match=r"no whole answer within 0\.5s"):
            connection.request("POST", "/x", b"{}", {})
    finally:
        connection.close()
        listener.close()
