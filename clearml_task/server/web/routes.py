"""Which page a path is: ClearML's web-app routes (the SDK's links work), login, logout, static files."""

from __future__ import annotations

import functools
import mimetypes
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from clearml_task.server import errors
from clearml_task.server.web import compare, orchestration, render, session, table, task_page
from clearml_task.server.web.calls import PageError, Ui

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from clearml_task.server.app import App

STATIC = Path(__file__).resolve().parent / "static"
TASKS = "(?:tasks|experiments)"
Page = Callable[..., "Response"]


@functools.cache
def _routes() -> list[tuple[re.Pattern[str], Page]]:
    table_path = "/projects/*/tasks"
    routes: list[tuple[str, Page]] = [
        (r"/", lambda ui: redirect(table_path)),
        (r"/projects/?", lambda ui: redirect(table_path)),
        (r"/projects/(?P<project>[^/;]+)/?", lambda ui, project: redirect(f"/projects/{project}/tasks")),
        (rf"/projects/(?P<project>[^/;]+)/{TASKS}/?", table.page),
        (rf"/projects/(?P<project>[^/;]+)/{TASKS}/(?P<task_id>[^/;]+)/output/log/?", task_page.full_log),
        (rf"/projects/(?P<project>[^/;]+)/{TASKS}/(?P<task_id>[^/;]+)(?:/(?P<rest>.*))?", task_page.page),
        (
            rf"/projects/(?P<project>[^/;]+)/compare-{TASKS};ids=(?P<ids>[^/]*)(?:/(?P<rest>.*))?",
            compare.page,
        ),
        (r"/workers-and-queues/?", lambda ui: redirect("/workers-and-queues/queues")),
        (r"/workers-and-queues/queues/?", orchestration.queues),
        (r"/workers-and-queues/workers/?", orchestration.workers),
    ]
    return [(re.compile(f"^{pattern}$"), handler) for pattern, handler in routes]


def serve(app: App, request: Request) -> Response:
    """The response to a UI path (web.is_page said it is one); a request werkzeug refuses (a form past the
    pages' body limit, a malformed one) is an error page with its 4xx, never a 500."""
    from werkzeug.exceptions import HTTPException

    try:
        return _serve(app, request)
    except HTTPException as e:
        message = e.description or e.name
        return render.page(None, "error.html", status=e.code or 400, title="Refused", message=message)


def _serve(app: App, request: Request) -> Response:
    path = request.path
    if path.startswith("/static/"):
        return static(path.removeprefix("/static/"))
    if path == "/login":
        return login(app, request)
    if path == "/logout":
        return logout(app, request)
    token = session.token(app, request)
    if token is None:
        target = path + (f"?{request.query_string.decode()}" if request.query_string else "")
        return redirect(f"/login?next={quote(target, safe='')}")
    if request.method not in ("GET", "HEAD"):  # HEAD: the GET's answer, its body left out by werkzeug
        return render.page(None, "error.html", status=405, title="Not allowed", message="Pages take GET only")
    ui = Ui(app, request, token, session.csrf(app, token), app.tokens.verify(token).get("identity", {}))
    for pattern, handler in _routes():
        found = pattern.match(path)
        if found:
            try:
                return handler(ui, **found.groupdict())
            except PageError as e:
                return render.page(ui, "error.html", status=e.status, title="Not found" if e.status == 404
                                   else "Refused", message=e.message)  # fmt: skip
    return render.page(ui, "error.html", status=404, title="Not found", message=f"No page at {path}")


def redirect(location: str, *, status: int = 303) -> Response:
    from werkzeug.utils import redirect as werkzeug_redirect

    response: Response = werkzeug_redirect(location, code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _local(target: str | None) -> str:
    """Where to go after logging in: only a path on this server (never another site), and one a Location
    header can carry (no control characters: urlsplit drops a newline before it looks)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or any(ord(c) < 32 or ord(c) == 127 for c in target)
        or urlsplit(target).netloc
    ):
        return "/projects/*/tasks"
    return target


def login(app: App, request: Request) -> Response:
    """GET: the form (with a fresh double-submit CSRF token). POST: the key pair -> the session cookie."""
    target = _local(request.args.get("next") or request.form.get("next"))
    problem = ""
    status = 200
    if request.method == "POST":
        try:
            token = session.log_in(app, request)
        except errors.APIError as e:
            problem = "Wrong access key or secret key" if e.code == 401 else e.msg
            status = 401 if e.code == 401 else 400
        else:
            response = redirect(target)
            flags = session.cookie_flags(request)
            session.set_cookie(response, session.COOKIE, token, session.SESSION_SEC, **flags)
            response.delete_cookie(session.LOGIN_COOKIE, path="/")
            return response
    form_token = session.login_form_token()
    response = render.page(
        None, "login.html", status=status, next=target, problem=problem, form_token=form_token
    )
    session.set_cookie(response, session.LOGIN_COOKIE, form_token, 3600, **session.cookie_flags(request))
    return response


def logout(app: App, request: Request) -> Response:
    """POST with the session's CSRF token: the session is revoked and the cookie goes."""
    token = session.token(app, request)
    if request.method != "POST" or (token and not session.csrf_ok(app, token, request.form.get("csrf"))):
        return render.page(None, "error.html", status=400, title="Refused", message="Log out with the button")
    if token:
        session.log_out(app, token)
    response = redirect("/login")
    response.delete_cookie(session.COOKIE, path="/", httponly=True, samesite="Strict")
    return response


def static(name: str) -> Response:
    """A file under static/ (never outside it), cached for an hour."""
    from werkzeug.wrappers import Response

    try:
        target = (STATIC / name).resolve()
        found = bool(name) and STATIC in target.parents and target.is_file()
    except (OSError, ValueError):  # a name no file can have: too long, or with a NUL
        found = False
    if not found:
        return Response("not found", status=404, mimetype="text/plain")
    kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    headers: dict[str, Any] = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(target.read_bytes(), mimetype=kind, headers=headers)
