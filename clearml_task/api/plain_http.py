"""One kept-alive HTTP/1.1 connection over a socket (TLS-wrapped for `https://`): what the API's JSON POSTs
need, and nothing else.

http.client imports `email` (its header parser): ~30 ms of CPU, an eighth of a clearml-task run, for a
request and an answer whose framing is a status line, headers and a Content-Length (or chunks); and it times
out each read, not the answer (a server that drips an answer a byte at a time holds it a timeout per byte).
Here the whole answer must come within the timeout, over `http://` and `https://` alike. The interface is the
part of `http.client.HTTPConnection` the transport uses (`sock`, `connect`, `request`, `getresponse`,
`close`), and every failure of the exchange is an OSError (ssl's included): a connection the server closed
before answering is a ConnectionResetError, as http.client's RemoteDisconnected; an answer that is not HTTP,
or larger than MAX_ANSWER, is a `BadAnswer`. A URL or header that would break the request's framing is a
ValueError before anything is sent, as with http.client."""

from __future__ import annotations

import io
import re
import socket
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ssl

MAX_LINE = 65536  # one status or header line, as http.client's limit
MAX_HEADERS = 100
MAX_ANSWER = 1 << 30  # the largest body read (a task's whole log is far less); past it: BadAnswer
NO_HANDSHAKE = "no TLS handshake"  # how a TLS server that never answered the hello is said (an http:// one?)
PIECE = 1 << 20  # a body is read in pieces of at most this, never allocated whole from what it claims


_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")
_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f]")
_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is allowed in a value


class BadAnswer(OSError):
    """The server's answer is not HTTP/1.x as this client reads it."""


class Answer:
    """A response read whole: its status, whether the server closes the connection after it, the body."""

    def __init__(self, status: int, will_close: bool, data: bytes) -> None:
        self.status, self.will_close, self._data = status, will_close, data

    def read(self) -> bytes:
        return self._data


class _Deadline(io.RawIOBase):
    """The socket's bytes until `deadline` (time.monotonic()); past it a read is a TimeoutError."""

    def __init__(self, sock: socket.socket, deadline: float, timeout: float) -> None:
        self.sock, self.deadline, self.timeout = sock, deadline, timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            return self.sock.recv_into(buffer)
        except TimeoutError:
            raise TimeoutError(f"no whole answer within {self.timeout:g}s") from None


class PlainConnection:
    """A connection to host:port, opened by `connect()`, for one request at a time; through TLS with `tls`
    (the server's certificate checked against the host's name)."""

    def __init__(
        self, host: str, port: int | None, timeout: float, tls: ssl.SSLContext | None = None
    ) -> None:
        self.host, self.timeout, self.tls = host, timeout, tls
        self.default_port = 80 if tls is None else 443
        self.port = port or self.default_port
        self.sock: socket.socket | None = None
        self._reader: Any = None
        self._answer: Answer | None = None

    def connect(self) -> None:
        # an ASCII host goes as bytes: as text, the resolver imports the idna codec first (~4 ms)
        host: str | bytes = self.host.encode("ascii") if self.host.isascii() else self.host
        sock = socket.create_connection((host, self.port), timeout=self.timeout)  # type: ignore[arg-type]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:  # the handshake, within the same timeout
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            except TimeoutError:
                sock.close()
                raise TimeoutError(f"{NO_HANDSHAKE} within {self.timeout:g}s") from None
            except BaseException:
                sock.close()
                raise
        self.sock = sock

    def close(self) -> None:
        sock, reader, self.sock, self._reader = self.sock, self._reader, None, None
        for part in (reader, sock):
            if part is not None:
                part.close()

    def request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Send the request and read its answer (kept for getresponse). A URL or header that would change
        the request's framing (a control character, a line break) is a ValueError, before anything goes."""
        head = self._head(method, url, {**headers, "Content-Length": str(len(body))})
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        self.sock.settimeout(self.timeout)
        self.sock.sendall(head + body)
        # a reader for this answer only (as http.client's): bytes a server sends past an answer's end
        # are never read as the next call's answer; the whole answer must come within `timeout` (a server
        # that drips it a byte at a time is not waited for byte after byte)
        self._reader = io.BufferedReader(_Deadline(self.sock, time.monotonic() + self.timeout, self.timeout))
        try:
            answer = self._read_answer()
        finally:
            reader, self._reader = self._reader, None
            reader.close()
        if self.tls is not None and self.sock.pending():  # type: ignore[attr-defined]
            # bytes past the answer's end that TLS has decrypted already (select cannot see them): the
            # connection is not used again, or they would be read as the next call's answer
            answer.will_close = True
        self._answer = answer

    def _head(self, method: str, url: str, headers: dict[str, str]) -> bytes:
        """The request line and headers, checked."""
        if _UNSAFE_IN_URL.search(url) or not url.startswith("/"):
            raise ValueError(f"a URL path with control characters or spaces: {url!r}")
        host = self.host if self.host.isascii() else self.host.encode("idna").decode("ascii")
        host = f"[{host}]" if ":" in host else host
        port = "" if self.port == self.default_port else f":{self.port}"
        lines = [f"{method} {url} HTTP/1.1", f"Host: {host}{port}"]
        for name, value in {"Accept-Encoding": "identity", **headers}.items():
            if _UNSAFE_IN_HEADER.search(name + value) or ":" in name:
                raise ValueError(f"a request header with a control character or line break: {name!r}")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

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
            return Answer(status, will_close, self._exactly(_size(length.strip(), 10, "Content-Length")))
        return Answer(status, True, self._until_closed())  # the body ends where the connection does

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
        if not version.startswith("HTTP/1.") or not _DIGITS.fullmatch(code):
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

    def _exactly(self, size: int, before: int = 0) -> bytes:
        """`size` bytes of the body (`before` read already), in pieces."""
        if before + size > MAX_ANSWER:
            raise BadAnswer(f"an answer of more than {MAX_ANSWER} bytes")
        parts, left = [], size
        while left:
            piece: bytes = self._reader.read(min(left, PIECE))
            if not piece:
                raise ConnectionResetError(f"the answer ended after {size - left} of {size} bytes")
            parts.append(piece)
            left -= len(piece)
        return b"".join(parts)

    def _until_closed(self) -> bytes:
        parts, total = [], 0
        while piece := self._reader.read(PIECE):
            total += len(piece)
            if total > MAX_ANSWER:
                raise BadAnswer(f"an answer of more than {MAX_ANSWER} bytes")
            parts.append(piece)
        return b"".join(parts)

    def _chunks(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_text = self._line().split(b";", 1)[0].strip().decode("latin-1")
            size = _size(size_text, 16, "chunk size")
            if size == 0:
                self._headers()  # trailers, if any, up to the blank line
                return b"".join(parts)
            parts.append(self._exactly(size, total))
            total += size
            self._line()  # the CRLF after the chunk


def _size(text: str, base: int, what: str) -> int:
    """A length the server sent (ASCII digits of `base`, at most 15 of them), or BadAnswer."""
    if not (_HEX if base == 16 else _DIGITS).fullmatch(text) or len(text) > 15:
        raise BadAnswer(f"bad {what} {text[:20]!r}")
    return int(text, base)
