"""The full-screen console (the link ClearML's SDK prints) of a task with more lines than the page shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from testing import browser
from tests.web.conftest import PROJECT, Site

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = browser.playwright_api().expect
pytestmark = pytest.mark.browser

LINES = 5003  # past the 5000 lines a console page shows


def test_the_full_screen_console_says_which_lines_are_left_out(site: Site, page: Page) -> None:
    client = site.client()
    project = client.project_id(PROJECT, create=False)
    task = client.call("tasks.create", {"name": "long log", "type": "training", "project": project})["id"]
    events = [
        {"task": task, "type": "log", "timestamp": 1_700_000_000_000 + i, "msg": f"line {i}"}
        for i in range(LINES)
    ]
    client.call("events.add_batch", {"requests": events})
    page.goto(f"{site.url}/projects/{project}/tasks/{task}/output/log")
    expect(page.locator("#log")).to_contain_text(f"line {LINES - 1}")
    assert (page.locator("#log").text_content() or "").splitlines()[0] == f"line {LINES - 5000}"
    note = page.locator("header.top #log-cut")
    expect(note).to_have_text(
        f"The earlier lines are left out: the last 5000 of {LINES} lines are shown. Download has them all."
    )
    with page.expect_download() as download:
        page.click("header.top >> text=Download")
    assert len(download.value.path().read_text().splitlines()) == LINES
