"""A page served by another program on this machine cannot log a browser in (a login CSRF): cookies are
shared by every port of a host, so it can plant the login form's cookie and post the form with its own
keys; the server goes by where the browser says the post came from. Real Chromium, a real second port."""

from __future__ import annotations

import html
from http.server import BaseHTTPRequestHandler

from playwright.sync_api import Browser

from clearml_task.server.web import session
from testing.servers import LoopbackServer
from tests.web.conftest import Site


def planting_page(site: Site) -> type[BaseHTTPRequestHandler]:
    keys = site.server.keys
    fields = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
        for name, value in (("csrf", "planted"), ("access_key", keys["access_key"]),
                            ("secret_key", keys["secret_key"]), ("next", "/projects/*/tasks"))
    )  # fmt: skip
    body = (
        f'<!doctype html><form id="f" method="post" action="{site.url}/login">{fields}</form>'
        f'<script>document.cookie = "{session.LOGIN_COOKIE}=planted; path=/";'
        'document.getElementById("f").submit();</script>'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def test_a_page_on_another_port_cannot_log_the_browser_in(site: Site, chromium: Browser) -> None:
    assert site.url.startswith("http://127.0.0.1:")
    elsewhere = LoopbackServer(planting_page(site))
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(elsewhere.url)
        page.wait_for_url(lambda url: url.startswith(site.url), timeout=30_000)  # the form was posted
        page.wait_for_load_state()
        assert page.url == f"{site.url}/login" and "own login page" in page.content(), page.url
        assert not [c for c in context.cookies(site.url) if c["name"] == session.COOKIE]
        page.goto(f"{site.url}/projects/*/tasks")
        assert "/login" in page.url  # not logged in
    finally:
        context.close()
        elsewhere.stop()
