"""Every action of the web UI, clicked in Chromium: each goes through the API, destructive ones through a
confirmation dialog, and the server's state is checked through the API afterwards."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from clearml_task.errors import UserError
from testing import browser
from testing.launching import wait_for
from tests.web.conftest import PROJECT, Site

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = browser.playwright_api().expect
pytestmark = pytest.mark.browser


def confirm(page: Page, answer: str = "OK") -> None:
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=answer).click()


def draft(site: Site, tag: str) -> str:
    """A new draft made with clearml-task from the fixture repository (no queue: it stays created)."""
    name = f"{tag} {uuid.uuid4().hex[:6]}"
    repo = site.tmp / "repo" / "work"
    site.tasks[name] = site.clearml_task("--name", name, "--folder", str(repo), "--script", "train.py",
                                         "--skip-task-init", "--args", "epochs=2")  # fmt: skip
    return name


def test_edit_args_enqueue_dequeue_clone_archive_delete(site: Site, page: Page, shot: Any) -> None:
    """A draft's whole life through the buttons: its Args edited, enqueued and dequeued, cloned into a
    project, archived and restored, then deleted (Cancel first: nothing happens)."""
    client = site.client()
    name = draft(site, "draft")
    task_id = site.tasks[name]
    page.goto(site.path(name, "configuration"))
    before = client.get_task(task_id)["hyperparams"]["Args"]["epochs"]
    page.fill("form.edit-args input[name=epochs]", "7")
    shot(page, "edit-args")
    page.click("form.edit-args >> text=Save")
    expect(page.locator("form.edit-args input[name=epochs]")).to_have_value("7")
    after = client.get_task(task_id)["hyperparams"]["Args"]["epochs"]
    assert after == {**before, "value": "7"}  # only the value changed (type, description kept)

    page.click(".actions >> text=Enqueue")
    dialog = page.locator("#enqueue-dialog")
    dialog.locator("select[name=queue]").select_option(label="default")
    shot(page, "enqueue-dialog")
    dialog.locator("button[type=submit]").click()
    expect(page.locator("#task-status")).to_have_text("queued")
    default = client.queue_id("default")
    assert task_id in [
        e["task"] for e in client.call("queues.get_by_id", {"queue": default})["queue"]["entries"]
    ]

    page.click(".actions >> text=Dequeue")
    confirm(page)
    expect(page.locator("#task-status")).to_have_text("created")
    assert client.get_task(task_id)["status"] == "created"

    page.click(".actions >> text=Clone")
    dialog = page.locator("#clone-dialog")
    dialog.locator("input[name=new_task_name]").fill(f"clone of {name}")
    dialog.locator("select[name=new_task_project]").select_option(label=PROJECT)
    shot(page, "clone-dialog")
    dialog.locator("button[type=submit]").click()
    expect(page.locator("#task-name")).to_have_text(f"clone of {name}")
    clone_id = page.url.split("/tasks/")[1].split("/")[0]
    clone = client.get_task(clone_id)
    assert (clone["parent"], clone["status"], clone["hyperparams"]["Args"]["epochs"]["value"]) == (
        task_id,
        "created",
        "7",
    )
    client.call("tasks.delete", {"task": clone_id})

    page.goto(site.path(name, "info"))
    page.click(".actions >> text=Archive")
    expect(page.locator(".bar .tag")).to_have_text("archived")
    page.goto(f"{site.url}/projects/*/tasks")
    expect(page.locator("table.tasks", has_text=name)).to_have_count(0)
    page.check("input[name=archived]")
    page.click("text=Filter")
    expect(page.locator("table.tasks tbody tr", has_text=name)).to_have_count(1)
    shot(page, "archived")
    page.click(f"text={name}")
    page.click(".actions >> text=Restore")
    expect(page.locator(".bar .tag")).to_have_count(0)
    assert "archived" not in client.get_task(task_id)["system_tags"]

    page.click(".actions >> text=Delete")
    confirm(page, "Cancel")
    assert client.get_task(task_id)["status"] == "created"
    page.click(".actions >> text=Delete")
    expect(page.locator("#confirm-text")).to_contain_text(name)
    shot(page, "delete-confirm")
    confirm(page)
    page.wait_for_url("**/tasks")
    with pytest.raises(UserError, match="no task with id"):
        client.get_task(task_id)


def test_abort_a_running_task_watched_live_then_reset(site: Site, page: Page, shot: Any) -> None:
    """A task run by a daemon: its console grows without a reload, the workers page shows it as the
    worker's task, Abort stops it through its worker, and Reset clears its log."""
    client = site.client()
    task_id = site.tasks["ticker"]
    client.call("tasks.enqueue", {"task": task_id, "queue_name": "live"})
    daemon = site.spawn("daemon", "--queue", "live", "--once")
    try:
        wait_for(lambda: client.get_task(task_id)["status"] == "in_progress", timeout=120)
        wait_for(lambda: any("tick 1" in str(e["msg"]) for e in client.task_log(task_id)), timeout=60)
        page.goto(site.path("ticker", "console"))
        log = page.locator("#log")
        shown = len(log.inner_text().splitlines())
        # New lines arrive without a reload.
        expect(log).to_contain_text(f"tick {shown + 3}", timeout=30_000)
        shot(page, "console-live")

        page.goto(f"{site.url}/workers-and-queues/workers")
        row = page.locator("table.workers tbody tr", has_text="ticker")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("live")
        worker = row.get_attribute("data-worker") or ""
        assert client.get_task(task_id)["last_worker"] == worker
        shot(page, "workers")

        page.goto(site.path("ticker", "info"))
        expect(page.locator("dl.fields")).to_contain_text(worker)
        page.click(".actions >> text=Abort")
        confirm(page)
        wait_for(lambda: client.get_task(task_id)["status"] == "stopped", timeout=60)
        daemon.wait(60)
    finally:
        if daemon.poll() is None:
            daemon.terminate()
            daemon.wait(30)
    page.goto(site.path("ticker", "console"))
    expect(page.locator("#task-status")).to_have_text("stopped")
    page.click(".actions >> text=Reset")
    confirm(page)
    expect(page.locator("#task-status")).to_have_text("created")
    assert client.task_log(task_id) == []
    shot(page, "reset")


def test_queue_entries_move_and_dequeue(site: Site, page: Page, shot: Any) -> None:
    client = site.client()
    project = client.project_id(PROJECT, create=False)
    names = [f"waiting {letter}" for letter in "abc"]
    ids = {}
    for name in names:
        ids[name] = client.call("tasks.create", {"name": name, "type": "training", "project": project})["id"]
        client.call("tasks.enqueue", {"task": ids[name], "queue_name": "waiting"})
    page.goto(f"{site.url}/workers-and-queues/queues")
    queue = page.locator("section.queue", has=page.locator("h2", has_text="waiting"))
    entries = queue.locator("tbody tr td:nth-child(2)")
    expect(entries).to_have_text(names)
    shot(page, "queues")
    queue.locator("tr", has_text="waiting a").get_by_role("button", name="Move down").click()
    expect(entries).to_have_text(["waiting b", "waiting a", "waiting c"])
    queue.locator("tr", has_text="waiting c").get_by_role("button", name="Move up").click()
    expect(entries).to_have_text(["waiting b", "waiting c", "waiting a"])
    queue.locator("tr", has_text="waiting b").get_by_role("button", name="Dequeue").click()
    confirm(page)
    expect(entries).to_have_text(["waiting c", "waiting a"])
    shot(page, "queues-after")
    waiting = client.call("queues.get_by_id", {"queue": client.queue_id("waiting")})["queue"]
    assert [e["task"] for e in waiting["entries"]] == [ids["waiting c"], ids["waiting a"]]
    assert client.get_task(ids["waiting b"])["status"] == "created"
    for task_id in ids.values():
        client.call("tasks.delete", {"task": task_id})


def test_a_refused_action_is_shown(site: Site, page: Page) -> None:
    """An action the API refuses says why on the page (here: the task was deleted behind the page's back)."""
    client = site.client()
    name = draft(site, "vanishing")
    page.goto(site.path(name, "execution"))
    client.call("tasks.delete", {"task": site.tasks[name]})
    page.click(".actions >> text=Archive")
    expect(page.locator("#flash")).to_contain_text("Invalid task id")


def test_the_live_console_shows_new_lines_stamped_before_the_newest_shown(site: Site, page: Page) -> None:
    """Lines arrive live in the order they were stored, whatever their timestamps: a worker whose clock is
    behind, or lines sent late, are shown without a reload (polling by timestamp never asked for them)."""
    client = site.client()
    project = client.project_id(PROJECT, create=False)
    task = client.call("tasks.create", {"name": "late lines", "type": "training", "project": project})["id"]
    now = int(time.time() * 1000)

    def lines(words: list[str], start: int) -> None:
        events = [{"task": task, "type": "log", "timestamp": start + i * 1000, "msg": word}
                  for i, word in enumerate(words)]  # fmt: skip
        client.call("events.add_batch", {"requests": events})

    lines([f"ahead {i}" for i in range(3)], now + 60_000)
    client.call("tasks.started", {"task": task})
    try:
        page.goto(f"{site.url}/projects/{project}/tasks/{task}/console")
        log = page.locator("#log")
        expect(log).to_contain_text("ahead 2")
        lines([f"behind {i}" for i in range(5)], now)
        for i in range(5):
            expect(log).to_contain_text(f"behind {i}", timeout=10_000)
        assert (log.text_content() or "").splitlines() == [f"ahead {i}" for i in range(3)] + [
            f"behind {i}" for i in range(5)
        ]
    finally:
        client.call("tasks.stopped", {"task": task, "force": True})
