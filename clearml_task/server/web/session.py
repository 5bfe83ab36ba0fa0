"""Who looks at the pages: a login with the server's key pair makes a session cookie holding an API token.

The cookie is HttpOnly and SameSite=Strict; logging out revokes its token in the store (`revoked`), so a
copy of the cookie is refused too. Every state-changing request carries a CSRF token bound to the
session (a form field, or the `X-CSRF-Token` header of the pages' API calls); the login form carries one
bound to a cookie of its own (double submit) and must be posted from this server's own page (what the
browser says: another port of the same host shares its cookies), so no other site or local program's
page can log a browser in either. The cookie
alone reads the file server (GET/HEAD of `/files/...`: the pages' images and downloads), nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, Any

from clearml_task.server import errors

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from clearml_task.server.app import App

COOKIE = "clearml_task_session"
LOGIN_COOKIE = "clearml_task_login"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SEC = 7 * 24 * 3600


def token(app: App, request: Request) -> str | None:
    """The session's API token when the cookie holds a valid one, else None."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        app.tokens.verify(value)
    except errors.APIError:
        return None
    return value


def csrf(app: App, session_token: str) -> str:
    """The CSRF token of a session: a MAC of its token under the server's secret (nothing to store)."""
    key = app.keys.jwt_secret.encode()
    return hmac.new(key, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(app: App, session_token: str, given: str | None) -> bool:
    return bool(given) and _same(csrf(app, session_token), given or "")


def _same(expected: str, given: str) -> bool:
    """A constant-time comparison of two texts, whatever characters the request put in them (compare_digest
    refuses str with non-ASCII characters, so bytes)."""
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )


def api_authorization(app: App, request: Request) -> str | None:
    """`Bearer <token>` for an API call a page makes with the session cookie and its CSRF header, else None
    (an API call without both is authenticated as before, by its own Authorization header)."""
    session_token = token(app, request)
    if session_token and csrf_ok(app, session_token, request.headers.get(CSRF_HEADER)):
        return f"Bearer {session_token}"
    return None


def file_authorization(app: App, request: Request) -> str | None:
    """`Bearer <token>` for a browser reading a file (GET or HEAD) with the session cookie, so that the
    pages' `<img>` and download links work; None for any other method (an upload or a deletion takes its
    own Authorization header, never the cookie, CSRF header or not) and for a request the browser says
    comes from another site (`Sec-Fetch-Site`; SameSite=Strict already keeps the cookie off those)."""
    if request.method not in ("GET", "HEAD"):
        return None
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return None
    session_token = token(app, request)
    return f"Bearer {session_token}" if session_token else None


def log_in(app: App, request: Request) -> str:
    """Check the login form (where it was posted from, its CSRF pair, then the key pair); returns a new
    session token."""
    if not _from_this_origin(request):
        raise errors.bad_request("log in from this server's own login page")
    form_token = request.form.get("csrf", "")
    cookie_token = request.cookies.get(LOGIN_COOKIE, "")
    if not form_token or not _same(cookie_token, form_token):
        raise errors.bad_request("the login form expired: load the page again")
    user = app.tokens.check_credentials(
        request.form.get("access_key", ""), request.form.get("secret_key", "")
    )
    return app.tokens.issue(user, SESSION_SEC)


def _from_this_origin(request: Request) -> bool:
    """Whether the browser says the form was posted from one of this server's pages. Cookies are shared by
    every port of a host, so a page another program serves on this machine could plant the login form's
    cookie and post its pair with someone else's keys (a login CSRF); the browser names where the post
    came from: `Sec-Fetch-Site` (same-site, not same-origin, for another port), else `Origin`. A client
    that sends neither is no browser, and no page of another site can make it post."""
    fetched_from = request.headers.get("Sec-Fetch-Site")
    if fetched_from is not None:
        return fetched_from in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    from urllib.parse import urlsplit

    return urlsplit(origin).netloc == request.host


def log_out(app: App, session_token: str) -> None:
    """Revoke the session in the store for as long as any token of it may live (a token refreshed from the
    cookie's through auth.login keeps its session, and may live until MAX_EXPIRATION_SEC past the login):
    a copy of the cookie, or a token refreshed from it, is refused from now on, by every process serving
    this data dir, after a restart too."""
    from clearml_task.server.auth import MAX_EXPIRATION_SEC

    try:
        claims = app.tokens.verify(session_token)
    except errors.APIError:
        return  # expired, forged or revoked already: nothing to revoke
    began = int(claims.get("auth_time") or claims.get("iat") or 0)
    with app.store.transaction(write=True) as tx:
        tx.revoke(str(claims.get("session_id", "")), began + MAX_EXPIRATION_SEC)


def login_form_token() -> str:
    return secrets.token_urlsafe(24)


def set_cookie(response: Response, name: str, value: str, max_age: int, *, secure: bool) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="Strict", secure=secure
    )


def cookie_flags(request: Request) -> dict[str, Any]:
    return {"secure": request.scheme == "https"}
