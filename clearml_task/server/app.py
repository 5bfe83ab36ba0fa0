"""The WSGI app and ClearML's transport rules.

- Paths: `/v<major.minor>/<service>.<action>` or unversioned `/<service>.<action>`.
- GET with a JSON body or POST; query-string arguments are merged into the body; `events.add_batch`
  takes json-lines (one JSON document per line) or a JSON list.
- Every answer is the meta/data envelope, with HTTP status == meta.result_code; an unknown endpoint or a
  malformed body is a 400 envelope, never an HTML page.
- Bearer tokens on every endpoint but auth.login (HTTP Basic) and debug.ping.

`App.handle` is the whole server minus HTTP: the WSGI entry point and the client's in-process transport
both call it, so ephemeral mode and HTTP mode behave identically.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import traceback
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from clearml_task.server import API_VERSION, errors
from clearml_task.server.auth import Tokens, load_keys
from clearml_task.server.endpoints import ENDPOINTS, Call, Endpoint
from clearml_task.server.store import Store

_PATH = re.compile(r"^/*(?:v(?P<version>\d+\.\d+)/+)?(?P<name>[a-z_]+\.[a-z_]+)/*$")
DB_FILE = "clearml.db"

Envelope = dict[str, Any]


class App:
    """The embedded ClearML-API server over one SQLite file in `data_dir`."""

    def __init__(
        self, data_dir: Path | str, environ: Mapping[str, str] = os.environ, *,
        non_responsive_timeout: float | None = None,
    ) -> None:  # fmt: skip
        """`non_responsive_timeout`: the watchdog's (None: from the environment); opening the store runs
        one pass, so that ephemeral mode, with no server process living on, has the watchdog too."""
        from clearml_task.server import services, watchdog

        self.data_dir = Path(data_dir)
        self.store = Store(self.data_dir / DB_FILE)
        self.keys = load_keys(self.data_dir, environ)
        self.tokens = Tokens(self.keys)
        given = non_responsive_timeout
        self.non_responsive_timeout = watchdog.timeout_from(environ) if given is None else given
        with self.store.transaction(write=True) as tx:
            services.bootstrap(tx)
            watchdog.stop_non_responsive(tx, self.non_responsive_timeout)

    # the server minus HTTP ------------------------------------------------------------------------
    def handle(
        self,
        path: str,
        body: bytes,
        *,
        method: str = "POST",
        authorization: str | None = None,
        content_type: str = "application/json",
        query: Iterable[tuple[str, str]] = (),
    ) -> tuple[int, Envelope]:
        match = _PATH.match(path)
        name = match["name"] if match else path.strip("/")
        version = (match["version"] if match else None) or API_VERSION
        try:
            if method not in ("GET", "POST"):
                raise errors.bad_request(f"method {method} is not supported, use GET or POST")
            found = ENDPOINTS.get(name) if match else None
            if found is None:
                raise errors.unknown_endpoint(name=name, version=version)
            identity = self._authenticate(found, authorization)
            data = _merge_query(_parse_body(body, content_type, found), query)
            with self.store.transaction(write=found.write) as tx:
                result = found.handler(Call(name, data, tx, self, identity))
            return 200, _envelope(name, version, 200, 0, "OK", result)
        except errors.APIError as e:
            return e.code, _envelope(name, version, e.code, e.subcode, e.msg, None)
        except Exception as e:  # a bug of ours: say so in the envelope and the server's log
            traceback.print_exc(file=sys.stderr)
            return 500, _envelope(name, version, 500, 0, f"Internal error: {type(e).__name__}: {e}", None)

    def _authenticate(self, found: Endpoint, authorization: str | None) -> dict[str, Any]:
        if not found.auth:
            return {}
        scheme, _, value = (authorization or "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and value:
            claims = self.tokens.verify(value.strip())
            return dict(claims.get("identity", {}))
        if scheme == "basic" and value and found.name == "auth.login":
            try:
                access, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise errors.bad_credentials() from None
            self.tokens.check_credentials(access, secret)
            return {}
        if not authorization:
            raise errors.missing_credentials()
        raise errors.bad_auth_type(f"{found.name} takes Authorization: Bearer <token> from auth.login")

    # WSGI -----------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        request = Request(environ)
        code, envelope = self.handle(
            request.path,
            request.get_data(cache=False),
            method=request.method,
            authorization=request.headers.get("Authorization"),
            content_type=request.headers.get("Content-Type", ""),
            query=request.args.items(multi=True),
        )
        payload = json.dumps(envelope).encode()
        start_response(
            f"{code} {'OK' if code == 200 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]


def _parse_body(body: bytes, content_type: str, found: Endpoint) -> dict[str, Any]:
    try:
        text = body.decode("utf-8").strip() if body else ""
    except UnicodeDecodeError:
        raise errors.bad_request("the body is not UTF-8") from None
    if not text:
        return {}
    parsed: Any
    if "json-lines" in content_type or "jsonlines" in content_type:
        parsed = _json_lines(text)
    else:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            if "\n" not in text:
                raise errors.bad_request(f"body is not valid JSON ({e.msg} at char {e.pos})") from None
            parsed = _json_lines(text)
    if isinstance(parsed, list) and found.batch:
        return {"requests": parsed}
    if not isinstance(parsed, dict):
        raise errors.bad_request("the body must be a JSON object")
    return parsed


def _json_lines(text: str) -> list[Any]:
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise errors.bad_request(f"line {number} is not valid JSON ({e.msg})") from None
    return items


def _merge_query(data: dict[str, Any], query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query-string arguments join the body; a repeated argument becomes a list."""
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(value)
    for key, values in grouped.items():
        data[key] = values[0] if len(values) == 1 else values
    return data


def _envelope(name: str, version: str, code: int, subcode: int, msg: str, data: Any) -> Envelope:
    trx = uuid.uuid4().hex
    return {
        "meta": {
            "id": trx,
            "trx": trx,
            "endpoint": {"name": name, "requested_version": version, "actual_version": API_VERSION},
            "result_code": code,
            "result_subcode": subcode,
            "result_msg": msg,
            "error_stack": "",
            "error_data": {},
        },
        "data": data if data is not None else {},
    }
