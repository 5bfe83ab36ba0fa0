"""The task table in Chromium: its pages, its search and what its rows show."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from testing import browser
from tests.web.conftest import Site

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = browser.playwright_api().expect
pytestmark = pytest.mark.browser


def test_the_last_page_has_no_next_link_even_when_full(site: Site, page: Page) -> None:
    client = site.client()
    project = client.project_id("exactly one page")
    made = [
        client.call("tasks.create", {"name": f"row {i:02d}", "type": "training", "project": project})["id"]
        for i in range(50)  # the table's page size
    ]
    try:
        page.goto(f"{site.url}/projects/{project}/tasks")
        rows = page.locator("table.tasks tbody tr")
        expect(rows).to_have_count(50)
        expect(page.locator("nav.pages a", has_text="Next")).to_have_count(0)
        made.append(
            client.call("tasks.create", {"name": "row 50", "type": "training", "project": project})["id"]
        )
        page.reload()
        page.click("nav.pages >> text=Next")
        expect(rows).to_have_count(1)
        expect(page.locator("nav.pages a", has_text="Next")).to_have_count(0)
        expect(page.locator("nav.pages a", has_text="Previous")).to_have_count(1)
    finally:  # the other tests' tasks stay on the first page of all projects
        for task in made:
            client.call("tasks.delete", {"task": task})


def test_times_are_labelled_utc(site: Site, page: Page) -> None:
    task = site.client().get_task(site.tasks["train lr 0.1"])
    page.goto(f"{site.url}/projects/*/tasks?search=train+lr+0.1")
    row = page.locator("table.tasks tbody tr", has_text="train lr 0.1")
    started = task["started"][:19].replace("T", " ")
    expect(row.locator("td:nth-child(7)")).to_have_text(f"{started} UTC")
