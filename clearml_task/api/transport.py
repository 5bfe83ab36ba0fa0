"""How a call reaches the server: HTTP, or the embedded app called in process.

HTTP goes over kept-alive connections, each used by one call at a time (a connection is not thread-safe:
threads sharing one collide mid-request) and handed to the next call when it is done, whichever thread makes
it (calls one after another share one): plain_http's, over TLS (ssl) for an `https://` server, unless a proxy
applies to the server's host: then through requests, which speaks to proxies. (requests takes ~75 ms to
import and http.client ~30 ms, most of a short command's run time, so the common cases go without them.)"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import ssl

    from clearml_task.server.app import App

Envelope = dict[str, Any]


class TransportError(Exception):
    """The server could not be reached (connection refused, reset, timed out). `timed_out`: it did not
    answer within the transport's timeout (a server that is there but stuck, or an address that drops
    packets), rather than refusing or dropping the connection."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class TlsFailure(TransportError):
    """The TLS handshake failed in a way trying again cannot help: the server's certificate does not check
    out (`certificate`: an unknown CA, another host's name, expired; `code`: OpenSSL's verify code, when
    known), or the server refused this client, or does not speak TLS at all."""

    def __init__(self, message: str, *, certificate: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.certificate, self.code = certificate, code


class MaybeDelivered(TransportError):
    """The connection failed after the request went out: the server may have acted on it (sending it again
    may do it twice, on a server that does not recognise a request it has seen)."""


class Transport(Protocol):
    where: str

    def send(
        self, path: str, body: bytes, headers: dict[str, str], *, resend: bool = True
    ) -> tuple[int, Envelope]:
        """`resend=False`: a request that may have reached the server is never sent again here."""
        ...


ANSWER_TIMEOUT = 30.0  # seconds one try waits to connect, and then for the server's answer


def http_transport(base_url: str, timeout: float = ANSWER_TIMEOUT) -> Transport:
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    if not any(value and name.lower() == f"{parts.scheme}_proxy" for name, value in os.environ.items()):
        return HttpTransport(base_url, timeout)  # no proxy for this scheme: urllib.request is not needed
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    if parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or ""):
        return ProxiedHttpTransport(base_url, timeout)
    return HttpTransport(base_url, timeout)


class HttpTransport:
    """plain_http (over TLS for https://) on kept-alive connections each used by one call at a
    time (a pool shared by the threads). A kept-alive connection the server has closed (it reads as ended) is
    opened again before the request goes;
    one that fails as the request goes out is opened again once for a call that may be sent twice
    (`resend`), and is MaybeDelivered for one that may not: the server may have closed it just as the request
    arrived."""

    def __init__(self, base_url: str, timeout: float = ANSWER_TIMEOUT) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"{base_url!r} is not an http(s) URL")
        self.where = base_url.rstrip("/")
        self.prefix = parts.path.rstrip("/")
        self.secure = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self._idle: list[Any] = []  # kept-alive connections no call is using
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None  # made at the first https connection (again after a failure)

    def _take(self) -> Any:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _keep(self, connection: Any) -> None:
        with self._lock:
            self._idle.append(connection)

    def _connect(self) -> Any:
        from clearml_task.api.plain_http import PlainConnection

        if self.secure and self._tls is None:
            import ssl

            # the system's CAs, or SSL_CERT_FILE / SSL_CERT_DIR when set; the host's name is checked
            self._tls = ssl.create_default_context()
        return PlainConnection(self.host, self.port, self.timeout, tls=self._tls)

    def send(
        self, path: str, body: bytes, headers: dict[str, str], *, resend: bool = True
    ) -> tuple[int, Envelope]:
        for attempt in (1, 2):
            connection = self._open(reuse=attempt == 1)
            reused = connection.sock is not None
            try:
                if not reused:
                    connection.connect()
            except OSError as e:  # nothing went out
                connection.close()
                if self.secure:
                    self._tls = None  # the CAs are read again: one the operator has just added counts
                    _raise_tls_failure(e)
                raise TransportError(_said(e), timed_out=isinstance(e, TimeoutError)) from None
            connection.timeout = self.timeout  # as it is now (a session that is leaving shortens it)
            try:
                connection.request("POST", f"{self.prefix}/{path}", body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except OSError as e:  # first: ssl's errors can also be ValueErrors, and come after the request
                connection.close()
                if reused and attempt == 1 and isinstance(e, _DROPPED) and resend:
                    continue  # the server closed an idle kept-alive connection: a new one
                raise MaybeDelivered(_said(e), timed_out=isinstance(e, TimeoutError)) from None
            except ValueError as e:  # a URL or header that cannot go (a line break in it): nothing went
                connection.close()
                raise TransportError(f"cannot send the request: {e}") from None
            if not response.will_close:
                self._keep(connection)
            return response.status, _envelope(response.status, data)
        raise AssertionError("unreachable")

    def _open(self, *, reuse: bool) -> Any:
        """A kept-alive connection from the pool (`reuse`), unless the server closed it meanwhile, else a new
        one, not yet connected."""
        import select

        while reuse and (connection := self._take()) is not None:
            if connection.sock is None:
                continue
            try:
                readable = select.select([connection.sock], [], [], 0)[0]
            except (OSError, ValueError):
                readable = [connection.sock]
            if not readable:  # an idle connection has nothing to read unless the server ended it
                return connection
            connection.close()
        return self._connect()


class ProxiedHttpTransport:
    """requests, for servers behind the proxy the environment names."""

    def __init__(self, base_url: str, timeout: float = ANSWER_TIMEOUT) -> None:
        self.where = base_url.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    def send(
        self, path: str, body: bytes, headers: dict[str, str], *, resend: bool = True
    ) -> tuple[int, Envelope]:
        import requests

        http = getattr(self._local, "http", None)
        if http is None:  # a requests.Session is not thread-safe either: one per thread
            http = self._local.http = requests.Session()
            bundle = os.environ.get("SSL_CERT_FILE", "")
            if os.path.isfile(bundle):  # the CAs trusted without a proxy (REQUESTS_CA_BUNDLE first)
                http.verify = bundle
        try:
            response = http.post(f"{self.where}/{path}", data=body, headers=headers, timeout=self.timeout)
        except requests.ConnectTimeout as e:
            raise TransportError(_said(e), timed_out=True) from None
        except requests.exceptions.SSLError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e):
                raise TlsFailure(_said(e), certificate=True) from None
            raise MaybeDelivered(_said(e)) from None
        except requests.RequestException as e:  # through a proxy, where it failed is not known
            raise MaybeDelivered(_said(e), timed_out=isinstance(e, requests.Timeout)) from None
        except OSError as e:  # not requests' own (those are OSErrors too): a CA bundle not there
            raise TransportError(_said(e)) from None
        return response.status_code, _envelope(response.status_code, response.content)


def _raise_tls_failure(error: OSError) -> None:
    """Raise TlsFailure for a handshake's error that will not go by itself; an EOF (the server dropped the
    connection, as when it restarts) and a timeout are tried again as any other."""
    import ssl

    if isinstance(error, ssl.SSLCertVerificationError):
        raise TlsFailure(_said(error), certificate=True, code=error.verify_code)
    if isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLEOFError):
        raise TlsFailure(_said(error), certificate=False)


def _said(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


# How a kept-alive connection that the server closed while idle fails on its next use
# (plain_http's, as http.client's RemoteDisconnected, is a ConnectionResetError).
_DROPPED = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def _envelope(status: int, data: bytes) -> Envelope:
    """The answer's envelope; a non-API answer (a proxy's HTML page, say) becomes one with its status."""
    try:
        envelope = json.loads(data)
        if isinstance(envelope, dict) and "meta" in envelope:
            return envelope
    except ValueError:
        pass
    text = data[:200].decode(errors="replace")
    msg = f"HTTP {status} with a non-API answer: {text!r}"
    return {"meta": {"result_code": status, "result_subcode": 0, "result_msg": msg}}


class InProcessTransport:
    """The embedded server, in this process, over the SQLite file in `data_dir` ("ephemeral mode")."""

    def __init__(self, data_dir: Path) -> None:
        from clearml_task.server.app import App

        self.app: App = App(data_dir)
        self.where = f"embedded server in {data_dir}"

    def send(
        self, path: str, body: bytes, headers: dict[str, str], *, resend: bool = True
    ) -> tuple[int, Envelope]:
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
