"""The file server for the web UI: a logged-in browser reads files (GET/HEAD) with its session cookie, so
debug images, artifacts and models show and download; nothing else is opened to the cookie (no upload, no
deletion, no other site, no path outside the store), and a logged-out browser is refused. The rules over
WSGI, then ClearML's SDK reporting a debug image, an artifact and a model that Chromium loads and
downloads."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.test import Client as WsgiClient

from clearml_task.server.app import App
from clearml_task.server.auth import first_user
from clearml_task.server.web import session
from clearml_task.server.web.task_tabs import download_href
from tests.web.conftest import PROJECT, Site
from tests.web.test_routes import logged_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PICTURE = b"\x89PNG not really, but bytes"


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App(tmp_path / "server")


def upload(app: App, client: WsgiClient, folder: str, name: str, data: bytes, **headers: str) -> int:
    """A multipart upload as the SDK makes it; returns the status."""
    from io import BytesIO

    done = client.post(f"/files/{folder}/", data={name: (BytesIO(data), name)}, headers=headers)
    return done.status_code


def test_the_session_cookie_reads_files_and_nothing_more(app: App) -> None:
    bearer = {"Authorization": f"Bearer {app.tokens.issue(first_user(app.keys))}"}
    client, csrf = logged_in(app)
    assert upload(app, WsgiClient(app), "p/t.1/metrics", "red.png", PICTURE, **bearer) == 200
    # The cookie reads: GET and HEAD, from this origin or a link the user opened.
    got = client.get("/files/p/t.1/metrics/red.png")
    assert got.status_code == 200 and got.get_data() == PICTURE
    assert "sandbox" in got.headers["Content-Security-Policy"]
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert client.head("/files/p/t.1/metrics/red.png").status_code == 200
    fetched = client.get("/files/p/t.1/metrics/red.png", headers={"Sec-Fetch-Site": "same-origin"})
    assert fetched.status_code == 200
    assert client.get("/files/p/t.1/metrics/red.png", headers={"Sec-Fetch-Site": "none"}).status_code == 200
    assert client.get("/files/p/t.1/metrics/nothing.png").status_code == 404
    # Not from another site, nor outside the store.
    for site in ("cross-site", "same-site"):
        assert client.get("/files/p/t.1/metrics/red.png", headers={"Sec-Fetch-Site": site}).status_code == 401
    assert client.get("/files/p/%2e%2e/%2e%2e/clearml.db").status_code == 400
    assert client.get("/files/p/t.1/../../../credentials.json").status_code in (400, 404)
    # Never an upload or a deletion, with the CSRF header or without.
    for headers in ({}, {session.CSRF_HEADER: csrf}):
        assert upload(app, client, "p/t.1/metrics", "evil.html", b"<script></script>", **headers) == 401
        assert client.delete("/files/p/t.1/metrics/red.png", headers=headers).status_code == 401
    assert not (app.data_dir / "files/p/t.1/metrics/evil.html").exists()
    assert (app.data_dir / "files/p/t.1/metrics/red.png").read_bytes() == PICTURE
    # Logged out (or never logged in, or with a forged cookie): refused.
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/files/p/t.1/metrics/red.png").status_code == 401
    stranger = WsgiClient(app)
    assert stranger.get("/files/p/t.1/metrics/red.png").status_code == 401
    stranger.set_cookie(session.COOKIE, "not-a-token")
    assert stranger.get("/files/p/t.1/metrics/red.png").status_code == 401
    # The SDK's bearer token works as before, for every method.
    assert WsgiClient(app).get("/files/p/t.1/metrics/red.png", headers=bearer).get_data() == PICTURE


def test_links_to_this_servers_files_become_paths_on_the_pages_origin() -> None:
    # Whichever host and port the SDK knew the server by, its file is read from the page's own origin.
    assert download_href("http://127.0.0.1:8008/files/web%20ui/m.1/metrics/red.png") == (
        "/files/web%20ui/m.1/metrics/red.png"
    )
    assert download_href("https://box:9/files/a/b.bin") == "/files/a/b.bin"
    assert download_href("/files/a/b.bin") == "/files/a/b.bin"
    # Another server's URL stays as it is; what a browser must not follow is no link.
    assert (
        download_href("https://files.example.com:8081/p/t/red.png")
        == "https://files.example.com:8081/p/t/red.png"
    )
    for uri in ("s3://bucket/files/a.png", "file:///files/a.png", "javascript:alert(1)", "", None, 3):
        assert download_href(uri) == ""
    assert download_href("http://127.0.0.1:8008/files/a/%2e%2e/b") == "http://127.0.0.1:8008/files/a/%2e%2e/b"


@pytest.fixture(scope="module")
def media(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """ClearML's SDK (pinned, from the interop tests' cached venv) reports a debug image, uploads a file
    artifact and an output model's weights to the site's server; yields what it printed, then deletes
    the task."""
    from testing.interop import ensure_tools, tool_env

    tools = ensure_tools(lambda line: None)
    home = tmp_path_factory.mktemp("sdk-home")
    config = home / "sdk.clearml.conf"
    config.write_text("sdk.development.report_use_subprocess: false\n")
    env = {**tool_env(tools, site.server, home), "CLEARML_CONFIG_FILE": str(config)}
    script = Path(__file__).resolve().parents[2] / "fixtures/repos/web/media.py"
    done = subprocess.run([tools.bin("python"), str(script), PROJECT], env=env, cwd=home,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    output = done.stdout + done.stderr
    found = re.search(r"^MEDIA (.*)$", output, re.MULTILINE)
    assert done.returncode == 0 and found, output[-4000:]
    result: dict[str, Any] = json.loads(found[1])
    yield result
    site.client().call("tasks.delete", {"task": result["task"], "force": True})  # the table's tests count


@pytest.mark.browser
@pytest.mark.interop
def test_sdk_debug_image_artifact_and_model_load_in_the_browser(
    site: Site, media: dict[str, Any], page: Page, chromium: Browser, shot: Any
) -> None:
    from playwright.sync_api import expect

    task = media["task"]
    base = f"{site.url}/projects/*/tasks/{task}"
    page.goto(f"{base}/debug-samples")
    image = page.locator(".samples img")
    expect(image).to_have_count(1)
    expect(page.locator(".samples figcaption")).to_contain_text("samples / red")
    src = image.get_attribute("src") or ""
    assert src.startswith("/files/"), src  # this server's file, read from the page's origin
    image.scroll_into_view_if_needed()
    page.wait_for_function("(img) => img.complete", arg=image.element_handle())
    assert page.evaluate("(img) => [img.naturalWidth, img.naturalHeight]", image.element_handle()) == [32, 24]
    shot(page, "debug-samples-sdk")

    page.goto(f"{base}/artifacts")
    with page.expect_download() as artifact:
        page.locator("table.artifacts a[download]").first.click()
    assert Path(artifact.value.path()).read_bytes() == bytes.fromhex(media["artifact"])
    page.goto(f"{base}/models")
    with page.expect_download() as model:
        page.locator("table.models a[download]").first.click()
    assert Path(model.value.path()).read_bytes() == bytes.fromhex(media["weights"])
    shot(page, "models-sdk")

    # The page's own script may neither upload nor delete with the cookie, CSRF header or not.
    statuses = page.evaluate(
        """async ([csrf, src]) => {
            const out = [];
            for (const headers of [{}, { "X-CSRF-Token": csrf }]) {
                const form = new FormData();
                form.append("evil.html", new Blob(["<script>alert(1)</script>"]), "evil.html");
                out.push((await fetch("/files/x/", { method: "POST", body: form, headers })).status);
                out.push((await fetch(src, { method: "DELETE", headers })).status);
            }
            out.push((await fetch(src)).status);
            return out;
        }""",
        [page.locator('meta[name="csrf-token"]').get_attribute("content"), src],
    )
    assert statuses == [401, 401, 401, 401, 200]

    # A logged-out browser gets the 401, not the image.
    stranger = chromium.new_context()
    refused = stranger.new_page().goto(f"{site.url}{src}")
    assert refused is not None and refused.status == 401
    stranger.close()
