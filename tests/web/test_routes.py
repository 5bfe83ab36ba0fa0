"""The web UI's HTTP rules without a browser: which requests are pages, the login and its CSRF token, the
session cookie on API calls, static files, headers, and the commands that serve it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import pytest
import requests
from werkzeug.test import Client as WsgiClient
from werkzeug.test import TestResponse

from clearml_task.server.app import App
from clearml_task.server.auth import first_user
from clearml_task.server.web import routes, session, task_tabs
from testing.servers import ROOT, start_server, stop_server


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App(tmp_path / "server")


def logged_in(app: App) -> tuple[WsgiClient, str]:
    """A client through the login form; returns it and the session's CSRF token."""
    client = WsgiClient(app)
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token
    keys = {"access_key": app.keys.access_key, "secret_key": app.keys.secret_key}
    done = client.post("/login", data={"csrf": token[1], **keys, "next": "/workers-and-queues/queues"})
    assert done.status_code == 303 and done.headers["Location"] == "/workers-and-queues/queues"
    cookie = client.get_cookie(session.COOKIE)
    assert cookie is not None
    return client, session.csrf(app, cookie.value)


def envelope_code(response: TestResponse) -> int:
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    return int(response.json["meta"]["result_code"])  # type: ignore[index]


def test_pages_need_a_session_and_api_clients_keep_their_envelopes(app: App) -> None:
    client = WsgiClient(app)
    page = client.get("/projects/*/tasks?status=queued")
    assert page.status_code == 303
    assert page.headers["Location"] == "/login?next=%2Fprojects%2F%2A%2Ftasks%3Fstatus%3Dqueued"
    # An API client calling a UI path (with its token, or by POST) gets the API's answer, never a page.
    token = app.tokens.issue(first_user(app.keys))
    assert envelope_code(client.get("/projects/*/tasks", headers={"Authorization": f"Bearer {token}"})) == 400
    assert envelope_code(client.post("/", data=b"{}", headers={"Authorization": f"Bearer {token}"})) == 400
    assert envelope_code(client.post("/tasks.get_all", data=b"{}")) == 401


def test_login_form_needs_its_token_and_the_keys(app: App) -> None:
    client = WsgiClient(app)
    client.get("/login")
    keys = {"access_key": app.keys.access_key, "secret_key": app.keys.secret_key}
    assert client.post("/login", data=keys).status_code == 400  # no form token
    assert client.post("/login", data={**keys, "csrf": "forged"}).status_code == 400
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token
    wrong = client.post("/login", data={**keys, "secret_key": "wrong", "csrf": token[1]})
    assert wrong.status_code == 401 and "Wrong access key or secret key" in wrong.get_data(as_text=True)
    assert client.get_cookie(session.COOKIE) is None
    # After logging in, only a path on this server is a place to go.
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token
    done = client.post("/login", data={**keys, "csrf": token[1], "next": "//evil.example/x"})
    assert done.status_code == 303 and done.headers["Location"] == "/projects/*/tasks"
    cookie = done.headers.getlist("Set-Cookie")
    assert any(
        c.startswith(f"{session.COOKIE}=") and "HttpOnly" in c and "SameSite=Strict" in c for c in cookie
    )


def test_the_session_cookie_calls_the_api_only_with_its_csrf_token(app: App) -> None:
    client, csrf = logged_in(app)
    assert envelope_code(client.post("/tasks.get_all", data=b"{}")) == 401
    assert envelope_code(client.post("/tasks.get_all", data=b"{}", headers={"X-CSRF-Token": "x" * 64})) == 401
    done = client.post("/projects.create", json={"name": "from the page"}, headers={"X-CSRF-Token": csrf})
    assert envelope_code(done) == 200
    # Logging out needs the token too; then the cookie is gone.
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 400
    assert client.get_cookie(session.COOKIE) is not None
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get_cookie(session.COOKIE) is None
    assert client.get("/workers-and-queues/queues").status_code == 303


def test_pages_carry_security_headers_and_escape(app: App) -> None:
    client, csrf = logged_in(app)
    hostile = "<script>alert(1)</script>"
    client.post("/projects.create", json={"name": hostile}, headers={"X-CSRF-Token": csrf})
    page = client.get("/projects/*/tasks")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert hostile not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    assert client.post("/projects/*/tasks", data=b"").status_code == 400  # a POST is the API's (no endpoint)
    assert client.get("/projects/*/tasks/nope/execution").status_code == 404
    assert client.get("/no-such-page").status_code == 400  # not a UI path: the API's unknown endpoint


def test_static_files_and_nothing_outside_them(app: App) -> None:
    client = WsgiClient(app)
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert client.get("/static/uplot/uPlot.iife.min.js").status_code == 200
    assert "MIT License" in client.get("/static/uplot/LICENSE").get_data(as_text=True)
    assert client.get("/static/nothing.js").status_code == 404
    assert routes.static("../routes.py").status_code == 404
    assert routes.static("").status_code == 404


def test_a_csrf_token_with_non_ascii_characters_is_refused_not_a_500(app: App) -> None:
    client, _ = logged_in(app)
    call = client.post("/tasks.get_all", data=b"{}", headers={session.CSRF_HEADER: "\u00ff\u00fe"})
    assert envelope_code(call) == 401
    assert client.post("/logout", data={"csrf": "\u00e9t\u00e9"}).status_code == 400
    assert client.get_cookie(session.COOKIE) is not None  # still logged in
    keys = {"access_key": app.keys.access_key, "secret_key": app.keys.secret_key}
    assert WsgiClient(app).post("/login", data={"csrf": "\u00e9t\u00e9", **keys}).status_code == 400


@pytest.mark.parametrize("path", ["/login", "/logout"])
def test_a_form_past_the_pages_body_limit_is_a_413_page(app: App, path: str) -> None:
    """The login and logout forms take a few KB; a bigger one is refused with a page, not a 500."""
    client, _ = logged_in(app)
    answer = client.post(path, data={"csrf": "x" * 100_000, "access_key": "a", "secret_key": "b"})
    assert answer.status_code == 413 and answer.mimetype == "text/html"
    assert client.get("/workers-and-queues/queues").status_code == 200  # still logged in


@pytest.mark.parametrize(
    "path", ["/static/%00", "/static/a%00b.js", "/static/" + "a" * 300, "/static/a/" * 500]
)
def test_static_names_no_file_can_have_are_not_found(app: App, path: str) -> None:
    """A NUL or a name too long for the file system is a 404 like any missing file, not a 500."""
    assert WsgiClient(app).get(path).status_code == 404


def wait_for_line(process: subprocess.Popen[str], pattern: str, log: Path) -> re.Match[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(log.read_text())


def test_clearml_launcher_ui_serves_the_embedded_data(tmp_path: Path) -> None:
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "launcher", "ui", "--port", "0",
                                    "--data-dir", str(tmp_path / "data")],
                                   stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT)  # fmt: skip
    try:
        url = wait_for_line(process, r"the web UI at (http://127\.0\.0\.1:\d+)/", log)[1]
        keys = wait_for_line(process, r"log in with access key (\S+) and the secret key in (\S+)", log)
        served = App(tmp_path / "data").keys
        assert keys[1] == served.access_key
        assert json.loads(Path(keys[2]).read_text())["secret_key"] == served.secret_key
        assert served.secret_key not in log.read_text()  # a secret is never printed
        page = requests.get(f"{url}/projects/*/tasks", timeout=30)
        assert page.status_code == 200 and "Log in" in page.text
    finally:
        process.terminate()
        process.wait(30)


def test_the_server_names_its_web_ui_in_the_config_block(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    try:
        text = server.log.read_text()
        assert f"the web UI at {server.url}/" in text
        assert f"    web_server: {server.url}\n" in text and f"    api_server: {server.url}\n" in text
        page = requests.get(f"{server.url}/login", timeout=30)
        assert page.status_code == 200 and "Log in" in page.text
    finally:
        stop_server(server)


def test_head_answers_every_page_as_get_does_without_a_body(app: App) -> None:
    client, csrf = logged_in(app)
    made = client.post(
        "/tasks.create", json={"name": "headed", "type": "training"}, headers={"X-CSRF-Token": csrf}
    )
    task = made.json["data"]["id"]  # type: ignore[index]
    base = f"/projects/*/tasks/{task}"
    paths = [
        "/", "/projects/*/tasks", "/projects/*/tasks?status=created", f"{base}/output/log",
        f"/projects/*/compare-tasks;ids={task}/scalars", f"/projects/*/compare-tasks;ids={task}/hyper-params",
        "/workers-and-queues/queues", "/workers-and-queues/workers", "/login", "/static/app.js",
        "/projects/*/tasks/nope/execution", *(f"{base}/{tab}" for tab in task_tabs.TABS),
    ]  # fmt: skip
    for path in paths:
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code != 405, path
        assert head.get_data() == b"", path
        assert head.headers.get("Location") == got.headers.get("Location"), path
        assert head.mimetype == got.mimetype, path
    # Logged out, HEAD is sent to log in as GET is.
    head = WsgiClient(app).head("/projects/*/tasks")
    assert head.status_code == 303 and head.headers["Location"].startswith("/login?next=")


def test_logging_out_revokes_the_session_for_every_process_and_after_a_restart(app: App) -> None:
    """A copy of the cookie taken before logging out is refused afterwards: for pages, API calls (with the
    CSRF token, or as a Bearer token) and files, by another App on the same data dir (another process, which
    verified the token before), and by an App started afterwards."""
    client, csrf = logged_in(app)
    cookie = client.get_cookie(session.COOKIE)
    assert cookie is not None
    other = App(app.data_dir)
    other_client, other_csrf = logged_in(other)  # another session, which stays logged in
    bearer = {"Authorization": f"Bearer {cookie.value}"}
    bearer_file = {"Authorization": f"Bearer {app.tokens.issue(first_user(app.keys))}"}
    assert (
        WsgiClient(app)
        .post("/files/f/", data={"a.txt": (BytesIO(b"x"), "a.txt")}, headers=bearer_file)
        .status_code
        == 200
    )

    def replayed(on: App) -> list[int]:
        copy = WsgiClient(on)
        copy.set_cookie(session.COOKIE, cookie.value)
        return [
            copy.get("/workers-and-queues/queues").status_code,
            envelope_code(copy.post("/tasks.get_all", data=b"{}", headers={"X-CSRF-Token": csrf})),
            envelope_code(WsgiClient(on).post("/tasks.get_all", data=b"{}", headers=bearer)),
            copy.get("/files/f/a.txt").status_code,
        ]

    assert replayed(app) == replayed(other) == [200, 200, 200, 200]
    # A token refreshed from the copy (auth.login with it, for a year) is of the same session.
    refreshed = WsgiClient(app).post("/auth.login", data=b'{"expiration_sec": 31536000}', headers=bearer)
    assert envelope_code(refreshed) == 200
    again = {"Authorization": f"Bearer {refreshed.json['data']['token']}"}  # type: ignore[index]
    assert envelope_code(WsgiClient(app).post("/projects.get_all", data=b"{}", headers=again)) == 200
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert replayed(app) == replayed(other) == replayed(App(app.data_dir)) == [303, 401, 401, 401]
    for on in (app, other, App(app.data_dir)):
        assert envelope_code(WsgiClient(on).post("/projects.get_all", data=b"{}", headers=again)) == 401
    assert other_client.get("/workers-and-queues/queues").status_code == 200
    assert (
        envelope_code(other_client.post("/tasks.get_all", data=b"{}", headers={"X-CSRF-Token": other_csrf}))
        == 200
    )
    # Logging out again (a stale form, the copy) changes nothing and is no error.
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303


def login_token(client: WsgiClient) -> str:
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token
    return token[1]


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},  # another port of this host
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://localhost:1"},  # a browser that names only the origin
        {"Origin": "null"},
    ],
)
def test_a_login_posted_from_another_origin_is_refused(app: App, headers: dict[str, str]) -> None:
    """Cookies are shared by every port of a host: a page served on another port could plant the login
    form's cookie and post its pair with its own keys. Where the browser says the post came from decides."""
    client = WsgiClient(app)
    keys = {"access_key": app.keys.access_key, "secret_key": app.keys.secret_key}
    refused = client.post("/login", data={**keys, "csrf": login_token(client)}, headers=headers)
    assert refused.status_code == 400 and "own login page" in refused.get_data(as_text=True)
    assert client.get_cookie(session.COOKIE) is None
    # From this server's own page (and from a client that is no browser) the same login works.
    for own in (
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
        {"Origin": "http://localhost"},
        {},
    ):
        fresh = WsgiClient(app)
        ok = fresh.post("/login", data={**keys, "csrf": login_token(fresh)}, headers=own)
        assert ok.status_code == 303 and fresh.get_cookie(session.COOKIE) is not None, own


@pytest.mark.parametrize("target", ["/projects/%0Ax", "/\r\nSet-Cookie: x=1", "/a\x7fb", "/\tx"])
def test_a_next_with_control_characters_goes_to_the_default_page(app: App, target: str) -> None:
    """A newline in `next` made the Location header fail: a 500, and no login."""
    from urllib.parse import unquote

    client = WsgiClient(app)
    keys = {"access_key": app.keys.access_key, "secret_key": app.keys.secret_key}
    done = client.post("/login", data={**keys, "csrf": login_token(client), "next": unquote(target)})
    assert done.status_code == 303 and done.headers["Location"] == "/projects/*/tasks"
    assert client.get_cookie(session.COOKIE) is not None
    form = client.get(f"/login?next={target}")
    assert form.status_code == 200
