"""A server holding real tasks for the web UI's tests: made with clearml-task from fixtures/repos/web, run by
the launcher (with their scalars, plot and debug sample), and a logged-in Chromium page on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from clearml_task.api import Client, Session
from testing import browser
from testing.repos import make_repo
from testing.servers import ROOT, ServerProcess, http_config, start_server, stop_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PROJECT = "web ui"


@dataclass
class Site:
    """The server, the environment its clients run with, and the tasks made for the tests (name -> id)."""

    server: ServerProcess
    env: dict[str, str]
    tmp: Path
    tasks: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self) -> Client:
        return Client(Session(http_config(self.server, self.tmp), retries=2))

    def clearml_task(self, *argv: str) -> str:
        """clearml-task (the installed command) against the server; returns the new task's id."""
        command = [
            str(Path(sys.executable).with_name("clearml-task")),
            "--project",
            PROJECT,
            "--output",
            "json",
        ]
        done = subprocess.run(
            [*command, *argv], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout.strip().splitlines()[-1])["id"])

    def launcher(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "launcher", *argv], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "launcher", *argv], env=self.env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def path(self, name: str, tab: str = "execution") -> str:
        project = self.client().get_task(self.tasks[name])["project"]
        return f"{self.url}/projects/{project}/tasks/{self.tasks[name]}/{tab}"


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    browser.require()
    tmp = tmp_path_factory.mktemp("web")
    server = start_server(tmp / "server")
    keys = server.keys
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))}
    (tmp / "home").mkdir()
    env.update({
        "HOME": str(tmp / "home"), "CLEARML_TASK_HOME": str(tmp / "clearml-task-home"),
        "CLEARML_API_HOST": server.url, "CLEARML_API_ACCESS_KEY": keys["access_key"],
        "CLEARML_API_SECRET_KEY": keys["secret_key"],
    })  # fmt: skip
    site = Site(server, env, tmp)
    try:
        repo = make_repo(tmp / "repo", "web")
        repo.write("notes.txt", "<b>an uncommitted note</b>\n")
        folder = ("--folder", str(repo.work), "--skip-task-init")
        for name, lr in (("train lr 0.1", "0.1"), ("train lr 0.01", "0.01")):
            arguments = ("--args", f"lr={lr}", "epochs=4", "--packages", "six>=1.16")
            site.tasks[name] = site.clearml_task("--name", name, *folder, "--script", "train.py", *arguments)
            ran = site.launcher("execute", "--id", site.tasks[name])
            assert ran.returncode == 0, ran.stdout + ran.stderr
        site.tasks["ticker"] = site.clearml_task("--name", "ticker", *folder, "--script", "ticker.py")
        yield site
    finally:
        stop_server(server)


@pytest.fixture(scope="package")
def chromium(site: Site) -> Iterator[Browser]:
    with browser.chromium() as found:
        yield found


@dataclass
class Seen:
    """What a page did that a test must not allow: script errors and native dialogs (an injected alert)."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def page(site: Site, chromium: Browser, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser context, logged in through the login form; fails the test on any script error or
    native dialog."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    found = context.new_page()
    seen = Seen()
    found.on("pageerror", lambda error: seen.errors.append(str(error)))
    found.on("dialog", lambda dialog: (seen.dialogs.append(dialog.message), dialog.dismiss()))
    log_in(found, site)
    yield found
    context.close()
    assert not seen.errors, seen.errors
    assert not seen.dialogs, seen.dialogs


def log_in(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/projects/*/tasks")
    page.fill("input[name=access_key]", site.server.keys["access_key"])
    page.fill("input[name=secret_key]", site.server.keys["secret_key"])
    page.click("button[type=submit]")
    page.wait_for_url("**/projects/*/tasks")


@pytest.fixture
def shot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """shot(page, name): a screenshot under this test's tmp dir, its path printed in the test's output."""

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n{line}", flush=True)

    return lambda page, name: browser.screenshot(page, tmp_path, name, say)
