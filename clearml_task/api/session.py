"""One Session per server: finds it, logs in, keeps the token fresh, retries what is worth retrying."""

from __future__ import annotations

import base64
import functools
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from clearml_task import config as config_module
from clearml_task.api.transport import (
    ANSWER_TIMEOUT,
    InProcessTransport,
    MaybeDelivered,
    TlsFailure,
    Transport,
    TransportError,
    encode,
    http_transport,
)
from clearml_task.errors import APICallError, NoAnswer, UserError
from clearml_task.git.urls import public_url, scrub

RETRY_CODES = frozenset({429, 502, 503, 504})
MAX_DELAY = 30.0  # seconds: the longest wait between two tries of a session that never gives up
TRIES_WHEN_STOPPING = 3  # tries a call gets once the session's `stop` is set, however many it had
PATIENT_TIMEOUT = 60.0  # seconds a patient session's try waits for an answer (a person's: ANSWER_TIMEOUT)
STOPPING_TIMEOUT = 5.0  # seconds a try waits for an answer once the session's `stop` is set


def _warn(message: str) -> None:
    from clearml_task.console import program

    print(f"{program()}: {message}", file=sys.stderr)


class Session:
    """Calls `<service>.<action>` endpoints and returns their `data`, or raises APICallError."""

    def __init__(
        self,
        server: config_module.ServerConfig | None = None,
        *,
        retries: int | None = 6,
        backoff: float = 0.5,
        on_retry: Callable[[str], None] = _warn,
        patient: bool | None = None,
    ) -> None:
        """`retries`: tries of a call the server did not answer (refused, reset, 502...); None: until it
        answers, however long that takes, with the wait between tries doubling up to MAX_DELAY (what a
        daemon needs to ride out a server's restart or an outage). `patient` (the default with
        retries=None): what runs unattended (a daemon, a run's `execute`, the cluster glue) waits
        PATIENT_TIMEOUT for an answer and tries again after a try that got none, unless stopping; a
        person's command waits ANSWER_TIMEOUT once: a server that takes the connection but does not answer
        (stuck, or an address that drops packets) is said so at once."""
        self.config = server or config_module.resolve()
        self.retries = retries
        self.patient = retries is None if patient is None else patient
        self.backoff = backoff
        self.on_retry = on_retry
        # Set when the process is leaving (a daemon's SIGTERM): a call the server does not answer gets
        # TRIES_WHEN_STOPPING tries from then on, so a server that is away is not waited out.
        self.stop: threading.Event | None = None
        self._token: str | None = None
        self.transport: Transport
        if self.config.api_server is None:
            inprocess = InProcessTransport(self.config.server_dir)
            self.transport = inprocess
            self._keys = (inprocess.app.keys.access_key, inprocess.app.keys.secret_key)
        else:
            timeout = PATIENT_TIMEOUT if self.patient else ANSWER_TIMEOUT
            self.transport = http_transport(self.config.api_server, timeout)
            self._keys = (self.config.access_key or "", self.config.secret_key or "")

    @functools.cached_property
    def where(self) -> str:
        """The server's address as it may be printed (without credentials); every answer names it."""
        return public_url(self.transport.where)

    def call(
        self, endpoint: str, data: dict[str, Any] | list[dict[str, Any]] | None = None, *, resend: bool = True
    ) -> Answer:
        """`resend=False`: a call the server may have received is never sent again; its failure is then
        MaybeDelivered, for the caller to find out (a call it never received is retried as any other)."""
        body, content_type = encode(data if data is not None else {})
        for attempt in (1, 2):
            headers = {"Content-Type": content_type, "Authorization": f"Bearer {self.token()}"}
            code, envelope = self._send(endpoint, body, headers, resend)
            if code == 401 and attempt == 1:  # the token expired or the server was reset: log in again
                self._token = None
                continue
            return self._data(endpoint, code, envelope)
        raise AssertionError("unreachable")

    def token(self) -> str:
        if self._token is None:
            self._token = self._login()
        return self._token

    def _login(self) -> str:
        basic = base64.b64encode(f"{self._keys[0]}:{self._keys[1]}".encode()).decode()
        headers = {"Content-Type": "application/json", "Authorization": f"Basic {basic}"}
        code, envelope = self._send("auth.login", b"{}", headers)
        if code == 401:
            raise UserError(
                f"the server at {self.where} rejected the credentials from {self.config.source}",
                "check the access key and secret key (CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY or "
                "api.credentials in clearml.conf)",
            )
        token = self._data("auth.login", code, envelope).get("token")
        if not isinstance(token, str):
            raise UserError(f"the server at {self.where} answered auth.login without a token")
        return token

    def _send(
        self, endpoint: str, body: bytes, headers: dict[str, str], resend: bool = True
    ) -> tuple[int, dict[str, Any]]:
        delay = self.backoff
        attempt, stopped_at = 0, 0
        while True:
            attempt += 1
            if not stopped_at and self.stop is not None and self.stop.is_set():
                stopped_at = attempt
                if getattr(self.transport, "timeout", 0) > STOPPING_TIMEOUT:  # leaving: no long waits
                    self.transport.timeout = STOPPING_TIMEOUT  # type: ignore[attr-defined]
            last = attempt == self.retries or bool(
                stopped_at and attempt - stopped_at + 1 >= TRIES_WHEN_STOPPING
            )
            try:
                code, envelope = self.transport.send(endpoint, body, headers, resend=resend)
            except TransportError as e:
                if isinstance(e, MaybeDelivered) and not resend:
                    raise
                if isinstance(e, TlsFailure) and not self.patient:  # a daemon waits for a renewed one
                    raise _tls_error(e, self.where) from None
                stopping = self.stop is not None and self.stop.is_set()
                if e.timed_out and (not self.patient or stopping):
                    waited = getattr(self.transport, "timeout", ANSWER_TIMEOUT)
                    hint = "check that it is up and not overloaded, or fix CLEARML_API_HOST / api.api_server"
                    from clearml_task.api.plain_http import NO_HANDSHAKE

                    if NO_HANDSHAKE in str(e):  # the server read the hello and waits for more
                        hint = f"it may speak http://, not https://; {hint}"
                    raise NoAnswer(
                        f"the ClearML server at {self.where} did not answer {endpoint} within {waited:g}s",
                        hint,
                    ) from None
                if last:
                    raise UserError(
                        f"cannot reach the ClearML server at {self.where} ({endpoint}: {scrub(str(e))})",
                        "start one with `clearml-launcher server`, or fix CLEARML_API_HOST / api.api_server",
                    ) from None
                problem = scrub(str(e))
            else:
                if code not in RETRY_CODES or last:
                    return code, envelope
                if not resend:  # a gateway's answer: whether the server behind it acted is not known
                    raise MaybeDelivered(f"HTTP {code}")
                problem = f"HTTP {code}"
            of = f"/{self.retries - 1}" if self.retries is not None else ""
            pause = min(delay, 1.0) if stopped_at else delay  # once stopped, the tries left come quickly
            self.on_retry(f"{endpoint}: {problem}; retrying in {pause:.1f}s ({attempt}{of})")
            if self.stop is not None and not stopped_at:
                self.stop.wait(pause)  # a stop meanwhile cuts the wait short
            else:
                time.sleep(pause)
            delay = min(delay * 2, MAX_DELAY if self.retries is None else 10.0)

    def _data(self, endpoint: str, code: int, envelope: dict[str, Any]) -> Answer:
        meta = envelope.get("meta") or {}
        if not isinstance(meta, dict):
            raise Answer(endpoint, self.where).wrong("is not a ClearML API answer")
        result, subcode = meta.get("result_code", code), meta.get("result_subcode", 0)
        if not all(isinstance(number, int) and not isinstance(number, bool) for number in (result, subcode)):
            raise Answer(endpoint, self.where).wrong("is not a ClearML API answer")
        if code != 200 or result != 200:
            raise APICallError(endpoint, result, subcode, str(meta.get("result_msg", "")))
        data = envelope.get("data")
        return Answer(endpoint, self.where, data if isinstance(data, dict) else {})


# OpenSSL's verify codes, and how ssl words them (behind a proxy only the words are known)
_EXPIRED = ({9, 10}, ("certificate is not yet valid", "certificate has expired"))
_OTHER_NAME = ({62, 64}, ("Hostname mismatch", "IP address mismatch"))
# what a handshake gets from a server that answers it in plain HTTP
_PLAIN_HTTP = ("WRONG_VERSION_NUMBER", "record layer failure", "packet length too long")


def _tls_error(failure: TlsFailure, where: str) -> UserError:
    """The one line for a TLS handshake that failed, with what to do about it, by ssl's reason."""
    reason, setting = scrub(str(failure)), "CLEARML_API_HOST / api.api_server"

    def said(kind: tuple[set[int], tuple[str, ...]]) -> bool:
        return failure.code in kind[0] or any(words in reason for words in kind[1])

    if not failure.certificate:
        hint = f"check that {setting} is the server's https:// address (it must speak TLS 1.2 or later)"
        if any(words in reason for words in _PLAIN_HTTP):
            hint = f"it may speak http://, not https://: fix {setting}"
        return UserError(f"the TLS handshake with the ClearML server at {where} failed ({reason})", hint)
    error = f"the ClearML server at {where} has a TLS certificate this machine does not trust ({reason})"
    if said(_EXPIRED):
        return UserError(error, "the server's certificate must be renewed (or this machine's clock is wrong)")
    if said(_OTHER_NAME):
        return UserError(error, f"name the server in {setting} as its certificate does")
    return UserError(
        error, f"point SSL_CERT_FILE at a CA bundle that includes the CA that signed it, or fix {setting}"
    )


class Answer(dict[str, Any]):
    """An endpoint's `data`. A field the caller needs that it lacks, or holds in another shape, is the
    server's fault, and says so in one line (a UserError), never a KeyError or TypeError."""

    def __init__(self, endpoint: str, where: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(data or {})
        self.endpoint, self.where = endpoint, where

    def wrong(self, what: str) -> UserError:
        return UserError(
            f"the server at {self.where} answered {self.endpoint} with an answer that {what}",
            "check that CLEARML_API_HOST (or api.api_server) names a ClearML API server",
        )

    def __missing__(self, key: str) -> Any:
        raise self.wrong(f"has no {key!r}")

    def records(self, key: str) -> list[Answer]:
        """The list of objects under `key` (each an Answer of its own)."""
        found = self[key]
        if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
            raise self.wrong(f"has no list of objects in {key!r}")
        return [Answer(self.endpoint, self.where, item) for item in found]

    def record(self, key: str) -> Answer:
        """The object under `key`."""
        found = self[key]
        if not isinstance(found, dict):
            raise self.wrong(f"has no object in {key!r}")
        return Answer(self.endpoint, self.where, found)

    def id(self, key: str = "id") -> str:
        """The id under `key`: a non-empty string."""
        found = self[key]
        if not isinstance(found, str) or not found:
            raise self.wrong(f"has no id in {key!r}")
        return found
