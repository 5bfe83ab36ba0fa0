"""One kept-alive HTTP/1.1 connection over a plain socket: what the API's JSON POSTs to an `http://` server
need, and nothing else.

http.client imports `email` (its header parser) and `ssl`: ~30 ms of CPU, an eighth of a clearml-task
run, for a request and an answer whose framing is a status line, headers and a Content-Length (or chunks).
`https://` servers keep going through http.client (and ssl). The interface is the part of
`http.client.HTTPConnection` the transport uses (`sock`, `connect`, `request`, `getresponse`, `close`),
and every failure is an OSError: a connection the server closed before answering is a
ConnectionResetError, as http.client's RemoteDisconnected; an answer that is not HTTP is a
`BadAnswer`."""

from __future__ import annotations

import socket
from typing import Any

MAX_LINE = 65536  # one status or header line, as http.client's limit
MAX_HEADERS = 100


class BadAnswer(OSError):
    """The server's answer is not HTTP/1.x as this client reads it."""


class Answer:
    """A response read whole: its status, whether the server closes the connection after it, the body."""

    def __init__(self, status: int, will_close: bool, data: bytes) -> None:
        self.status, self.will_close, self._data = status, will_close, data

    def read(self) -> bytes:
        return self._data


class PlainConnection:
    """A connection to host:port, opened by `connect()`, for one request at a time."""

    def __init__(self, host: str, port: int | None, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port or 80, timeout
        self.sock: socket.socket | None = None
        self._reader: Any = None
        self._answer: Answer | None = None

    def connect(self) -> None:
        # an ASCII host goes as bytes: as text, the resolver imports the idna codec first (~4 ms)
        host: str | bytes = self.host.encode("ascii") if self.host.isascii() else self.host
        self.sock = socket.create_connection((host, self.port), timeout=self.timeout)  # type: ignore[arg-type]
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self.sock.makefile("rb")

    def close(self) -> None:
        sock, reader, self.sock, self._reader = self.sock, self._reader, None, None
        for part in (reader, sock):
            if part is not None:
                part.close()

    def request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Send the request and read its answer (kept for getresponse)."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        host = self.host if ":" not in self.host else f"[{self.host}]"
        lines = [f"{method} {url} HTTP/1.1", f"Host: {host}:{self.port}", "Accept-Encoding: identity"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self._answer = self._read_answer()

    def getresponse(self) -> Answer:
        answer, self._answer = self._answer, None
        if answer is None:
            raise BadAnswer("no request was sent")
        return answer

    def _read_answer(self) -> Answer:
        while True:
            status, version = self._status_line()
            fields = self._headers()
            if status >= 200 or status < 100:
                break  # 1xx (informational) answers precede the real one
        connection = fields.get("connection", "").lower()
        will_close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
        if status in (204, 304):
            return Answer(status, will_close, b"")  # no body, whatever the headers say
        if "chunked" in fields.get("transfer-encoding", "").lower():
            return Answer(status, will_close, self._chunks())
        length = fields.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise BadAnswer(f"bad Content-Length {length!r}")
            return Answer(status, will_close, self._exactly(int(length)))
        return Answer(status, True, self._reader.read())  # the body ends where the connection does

    def _line(self) -> bytes:
        line: bytes = self._reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise BadAnswer("an answer line is too long")
        return line

    def _status_line(self) -> tuple[int, str]:
        line = self._line()
        if not line:
            raise ConnectionResetError("the server closed the connection without answering")
        version, _, rest = line.decode("latin-1").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise BadAnswer(f"not an HTTP answer: {line[:80]!r}")
        return int(code), version

    def _headers(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                return fields
            name, colon, value = line.decode("latin-1").partition(":")
            if colon:
                key = name.strip().lower()
                fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
        raise BadAnswer(f"more than {MAX_HEADERS} header lines")

    def _exactly(self, size: int) -> bytes:
        data: bytes = self._reader.read(size)
        if len(data) < size:
            raise ConnectionResetError(f"the answer ended after {len(data)} of {size} bytes")
        return data

    def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadAnswer(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                self._headers()  # trailers, if any, up to the blank line
                return b"".join(parts)
            parts.append(self._exactly(size))
            self._line()  # the CRLF after the chunk
