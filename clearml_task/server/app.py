"""The WSGI app and ClearML's transport rules.

- Paths: `/v<major.minor>/<service>.<action>` or unversioned `/<service>.<action>`.
- GET with a JSON body or POST; query-string arguments are merged into the body; `events.add_batch`
  takes json-lines (one JSON document per line) or a JSON list.
- Every answer is the meta/data envelope, with HTTP status == meta.result_code; an unknown endpoint or a
  malformed body is a 400 envelope, never an HTML page.
- Bearer tokens on every endpoint but auth.login (HTTP Basic) and debug.ping; the web UI's pages call
  with their session cookie plus its CSRF header instead (web/session.py).
- `/files/...` is the file server the SDK uploads artifacts, models and images to (files.py); a logged-in
  browser reads from it (GET/HEAD only) with its session cookie, so the UI's images and links load.
- The web UI's paths (`/`, `/static/`, `/projects/...`, `/workers-and-queues/...`) go to web/routes.py.

`App.handle` is the whole server minus HTTP: the WSGI entry point and the client's in-process transport
both call it, so ephemeral mode and HTTP mode behave identically.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from clearml_task.errors import UserError
from clearml_task.server import errors, fields, files
from clearml_task.server.auth import Tokens, first_user, identity, load_keys
from clearml_task.server.body import UNAUTHENTICATED_MAX_BODY, max_body, max_upload, merge_query, parse
from clearml_task.server.endpoints import ENDPOINTS, MAX_WAIT, Call, Endpoint
from clearml_task.server.store import Store
from clearml_task.server.users import Users
from clearml_task.server.web import is_page, session
from clearml_task.vocabulary import API_VERSION

_PATH = re.compile(r"^/*(?:v(?P<version>\d+\.\d+)/+)?(?P<name>[a-z_]+\.[a-z_]+)/*$")
DB_FILE = "clearml.db"

Envelope = dict[str, Any]


class App:
    """The embedded ClearML-API server over one SQLite file in `data_dir`."""

    def __init__(
        self, data_dir: Path | str, environ: Mapping[str, str] = os.environ, *,
        max_body_mb: int | None = None, non_responsive_timeout: float | None = None,
        max_wait: float = MAX_WAIT, max_waiters: int | None = None, max_upload_mb: int | None = None,
    ) -> None:  # fmt: skip
        """`non_responsive_timeout`: the watchdog's (None: from the environment); opening the store runs
        one pass, so that ephemeral mode, with no server process living on, has the watchdog too.
        `max_wait`: the longest a call waits (queues.get_next_task's `wait`); `max_waiters`: how many calls
        may wait at once (None: any number). Past it a call answers at once, as without `wait`: waiting
        calls each hold one of the HTTP server's threads, and the calls that end a wait need threads too."""
        from clearml_task.server import services, watchdog

        self.data_dir = Path(data_dir)
        self.max_body = max_body(environ, max_body_mb)
        self.max_upload = max_upload(environ, max_upload_mb)  # a file server upload's (None: no limit)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir.chmod(0o700)  # the database and the keys: the owner's only, whatever the umask
            self.store = Store(self.data_dir / DB_FILE)
            self.keys = load_keys(self.data_dir, environ)
        except OSError as e:
            raise UserError(
                f"cannot keep the server's data in {self.data_dir}: {e.strerror or e}",
                "point CLEARML_TASK_HOME (or --data-dir) to a directory you can write",
            ) from None
        except sqlite3.DatabaseError as e:
            raise UserError(
                f"cannot open the server's database {self.data_dir / DB_FILE}: {e}",
                "move the file aside to start with an empty one",
            ) from None
        self.users = Users(self.data_dir, first_user(self.keys))
        self.users.check()
        self.tokens = Tokens(self.keys, self.users, self.store.revoked)
        given = non_responsive_timeout
        self.non_responsive_timeout = watchdog.timeout_from(environ) if given is None else given
        self.max_wait = max_wait
        self._waiters = threading.BoundedSemaphore(max_waiters) if max_waiters is not None else None
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
        gone: Callable[[], bool] | None = None,
    ) -> tuple[int, Envelope]:
        """One call; `gone` tells whether the HTTP client has hung up (a waiting call then gives up before
        it takes anything)."""
        name, version = _name_version(path)
        try:
            if method not in ("GET", "POST"):
                raise errors.bad_request(f"method {method} is not supported, use GET or POST")
            found = ENDPOINTS.get(name) if _PATH.match(path) else None
            if found is None:
                raise errors.unknown_endpoint(name=name, version=version)
            caller, login_time, session = self._authenticate(found, authorization)
            data = merge_query(parse(body, content_type, found.batch), query)
            fields.check(data, found.fields)
            if found.closed:
                fields.check_closed(data, found.fields, found.paths, name)
            call, result = self._run(found, data, caller, (login_time, session), gone)
            files.remove(self.data_dir, call.stale)
            return 200, _envelope(name, version, 200, 0, "OK", result)
        except errors.APIError as e:
            return e.code, self._answer(path, e)
        except Exception as e:  # a bug of ours: say so in the envelope and the server's log
            traceback.print_exc(file=sys.stderr)
            internal = errors.APIError(500, 0, f"Internal error: {type(e).__name__}: {e}")
            return 500, self._answer(path, internal)

    def _run(
        self, found: Endpoint, data: dict[str, Any], caller: dict[str, Any], chain: tuple[int | None, str],
        gone: Callable[[], bool] | None,
    ) -> tuple[Call, dict[str, Any]]:  # fmt: skip
        """The handler in one transaction; again in a new one each time what a waiting call waits for
        changes, until it has an answer or its time is up. No transaction stays open while it waits.
        `chain`: when the caller's token chain began, and its session."""
        deadline: float | None = None
        holding = False
        try:
            while True:
                with self.store.transaction(write=found.write) as tx:
                    call = Call(found.name, data, tx, self.tokens, caller, chain[0], session=chain[1],
                                max_wait=self.max_wait)  # fmt: skip
                    result = found.handler(call)
                if call.waits is None:
                    return call, result
                kind, seen, seconds = call.waits
                if deadline is None:
                    holding = self._waiters is None or self._waiters.acquire(blocking=False)
                    if not holding:
                        return call, result  # as many calls wait as may: this one answers now
                    deadline = time.monotonic() + min(seconds, self.max_wait)
                if not self.store.wait_for_change(kind, seen, deadline, gone) or (
                    gone is not None and gone()
                ):
                    return call, result  # time is up, or nobody is left to take what the next run finds
        finally:
            if holding and self._waiters is not None:
                self._waiters.release()

    def _token_valid(self, authorization: str | None) -> bool:
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return False
        try:
            self.tokens.verify(value.strip())
        except errors.APIError:
            return False
        return True

    def _answer(self, path: str, error: errors.APIError) -> Envelope:
        return _envelope(*_name_version(path), error.code, error.subcode, error.msg, None)

    def _authenticate(
        self, found: Endpoint, authorization: str | None
    ) -> tuple[dict[str, Any], int | None, str]:
        """Who calls (the identity of a token or of HTTP Basic keys), when their token chain began, and the
        chain's session ("" for keys)."""
        if not found.auth:
            return {}, None, ""
        scheme, _, value = (authorization or "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and value:
            claims = self.tokens.verify(value.strip())
            began = int(claims.get("auth_time") or claims["iat"])
            return dict(claims["identity"]), began, str(claims.get("session_id") or "")
        if scheme == "basic" and value and found.name == "auth.login":
            try:
                access, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise errors.bad_credentials() from None
            return identity(self.tokens.check_credentials(access, secret)), None, ""
        if not authorization:
            raise errors.missing_credentials()
        raise errors.bad_auth_type(f"{found.name} takes Authorization: Bearer <token> from auth.login")

    # WSGI -----------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        from werkzeug.wrappers import Request

        from clearml_task.server.web import routes  # only served over HTTP: not loaded in ephemeral mode

        request = Request(environ)
        authorization = request.headers.get("Authorization")
        if is_page(request.path, request.method, authorization):  # the web UI's pages and static files
            request.max_content_length = UNAUTHENTICATED_MAX_BODY  # a login form is all a page takes
            return routes.serve(self, request)(environ, start_response)
        if files.is_files_path(request.path):  # the file server (files.py): a page's cookie reads only
            authorization = authorization or session.file_authorization(self, request)
            return files.serve(self, request, authorization)(environ, start_response)
        authorization = authorization or session.api_authorization(self, request)
        limit = self.max_body if self._token_valid(authorization) else UNAUTHENTICATED_MAX_BODY
        # The size is checked before the body is read: a declared length past the limit is not read at
        # all, and an undeclared one (chunked) is read only to one byte past it.
        declared = request.content_length
        body = b"" if declared is not None and declared > limit else request.stream.read(limit + 1)
        if len(body) > limit or (declared is not None and declared > limit):
            refused = errors.body_too_large(limit=limit, authenticated=limit != UNAUTHENTICATED_MAX_BODY)
            code, envelope = refused.code, self._answer(request.path, refused)
        else:
            code, envelope = self.handle(
                request.path,
                body,
                method=request.method,
                authorization=authorization,
                content_type=request.headers.get("Content-Type", ""),
                query=request.args.items(multi=True),
                gone=environ.get("waitress.client_disconnected"),
            )
        payload = json.dumps(envelope).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        start_response(f"{code} {'OK' if code == 200 else 'Error'}", headers)
        return [payload]


def _name_version(path: str) -> tuple[str, str]:
    match = _PATH.match(path)
    name = match["name"] if match else path.strip("/")
    return name, (match["version"] if match else None) or API_VERSION


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
