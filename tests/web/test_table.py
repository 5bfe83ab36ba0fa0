"""The task table in Chromium: its pages, its search and what its rows show."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from clearml_task.api import Client, Session
from clearml_task.config import ServerConfig
from clearml_task.server import users
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


def test_long_names_can_be_searched_for_and_an_overlong_search_is_told(site: Site, page: Page) -> None:
    """Any name a task can have (up to 1024 characters, regex characters too) is found by the search box,
    though the name pattern the server takes is shorter; a search longer than any name says so."""
    client = site.client()
    project = client.project_id("long names")
    names = ["long " + "n" * 994, "(" * 600, "(" * 599, "Z" * 1024]
    made = [
        client.call("tasks.create", {"name": n, "type": "training", "project": project})["id"] for n in names
    ]
    try:
        rows = page.locator("table.tasks tbody tr")
        for name, found in ((names[0].upper(), names[0]), (names[1], names[1]), (names[3].lower(), names[3])):
            page.goto(f"{site.url}/projects/{project}/tasks")
            page.fill("input[name=search]", name)
            page.click("text=Filter")
            expect(rows).to_have_count(1)
            expect(rows.first.locator("td:nth-child(2)")).to_have_text(found)
        page.goto(f"{site.url}/projects/{project}/tasks")
        page.fill("input[name=search]", "Z" * 1025)
        page.click("text=Filter")
        expect(page.locator("#table-problem")).to_contain_text("a task's name has at most 1024")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_text("No tasks")
    finally:
        for task in made:
            client.call("tasks.delete", {"task": task})


def client_of(site: Site, name: str) -> Client:
    """A client with the key pair of a user `clearml-launcher server --add-user` adds to the server."""
    added = site.launcher("server", "--data-dir", str(site.server.data_dir), "--add-user", name)
    assert added.returncode == 0, added.stdout + added.stderr
    user = next(u for u in users.read(site.server.data_dir / users.USERS_FILE) if u.name == name)
    config = ServerConfig(site.url, None, None, user.access_key, user.secret_key, "test", site.tmp / name)
    return Client(Session(config, retries=2))


def test_other_users_tasks_show_their_names_and_sort_by_them(site: Site, page: Page) -> None:
    clients = {"zed": client_of(site, "zed"), "amy": client_of(site, "amy"), "clearml-task": site.client()}
    project = site.client().project_id("people")
    made = {
        name: client.call("tasks.create", {"name": f"by {name}", "type": "training", "project": project})[
            "id"
        ]
        for name, client in clients.items()
    }
    try:
        page.goto(f"{site.url}/projects/{project}/tasks?sort=user")
        users_shown = page.locator("table.tasks tbody tr td:nth-child(6)")
        expect(users_shown).to_have_text(["amy", "clearml-task", "zed"])
        page.click("th >> text=User")
        expect(users_shown).to_have_text(["zed", "clearml-task", "amy"])
        page.goto(f"{site.url}/projects/{project}/tasks/{made['zed']}/info")
        expect(page.locator("dl.fields dt:text-is('User') + dd")).to_have_text("zed")
    finally:
        for task in made.values():
            site.client().call("tasks.delete", {"task": task})
