"""Every page of the web UI in Chromium, against a server holding tasks that clearml-task made and the
launcher ran (with scalars): login, the task table, each tab of a task, the SDK's links, compare, workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import requests

from testing import browser
from tests.web.conftest import PROJECT, Site, log_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = browser.playwright_api().expect
pytestmark = pytest.mark.browser


def test_login_needs_the_key_pair_and_sets_a_strict_httponly_cookie(
    site: Site, chromium: Any, shot: Any
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{site.url}/projects/*/tasks")
    expect(page.locator("h1")).to_have_text("Log in")
    page.fill("input[name=access_key]", site.server.keys["access_key"])
    page.fill("input[name=secret_key]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".problem")).to_have_text("Wrong access key or secret key")
    shot(page, "login-refused")
    log_in(page, site)
    cookie = next(c for c in context.cookies() if c["name"] == "clearml_task_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # The cookie alone does not make API calls: the pages' calls carry the session's CSRF token too.
    refused = requests.post(
        f"{site.url}/tasks.get_all", json={}, cookies={cookie["name"]: cookie["value"]}, timeout=30
    )
    assert refused.status_code == 401
    csrf = page.get_attribute('meta[name="csrf-token"]', "content")
    allowed = requests.post(f"{site.url}/tasks.get_all", json={}, cookies={cookie["name"]: cookie["value"]},
                            headers={"X-CSRF-Token": csrf or ""}, timeout=30)  # fmt: skip
    assert allowed.status_code == 200
    page.click("text=Log out")
    expect(page.locator("h1")).to_have_text("Log in")
    page.goto(f"{site.url}/workers-and-queues/queues")
    expect(page.locator("h1")).to_have_text("Log in")
    context.close()


def test_task_table_filters_sorts_and_searches(site: Site, page: Page, shot: Any) -> None:
    rows = page.locator("table.tasks tbody tr")
    expect(rows.filter(has_text="train lr 0.1")).to_have_count(1)
    first = rows.filter(has_text="train lr 0.1").first
    for text in ("completed", "training", PROJECT, "clearml-task", "s"):
        expect(first).to_contain_text(text)
    shot(page, "table")
    page.check("input[name=status][value=completed]")
    page.click("text=Filter")
    expect(rows).to_have_count(2)
    expect(page.locator("table.tasks")).not_to_contain_text("ticker")
    page.uncheck("input[name=status][value=completed]")
    page.fill("input[name=search]", "LR 0.01")
    page.click("text=Filter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("train lr 0.01")
    page.fill("input[name=search]", "")
    page.click("text=Filter")
    page.click("th >> text=Name")
    names = page.locator("table.tasks tbody tr td:nth-child(2)").all_inner_texts()
    assert names == sorted(names)
    page.click("th >> text=Name")
    names = page.locator("table.tasks tbody tr td:nth-child(2)").all_inner_texts()
    assert names == sorted(names, reverse=True)
    page.select_option("select[data-navigate]", label=PROJECT)
    page.wait_for_url("**/projects/*/tasks")
    expect(page.locator("h1")).to_have_text(PROJECT)
    shot(page, "table-project")


def test_execution_tab_shows_the_source_diff_and_packages(site: Site, page: Page, shot: Any) -> None:
    page.goto(site.path("train lr 0.1", "execution"))
    task = site.client().get_task(site.tasks["train lr 0.1"])
    script = task["script"]
    fields = page.locator("dl.fields").first
    for value in (
        script["repository"],
        script["branch"],
        script["version_num"],
        "train.py",
        script["binary"],
    ):
        expect(fields).to_contain_text(value)
    # The untracked note travelled in the patch: shown as an added line, as text (never as markup).
    expect(page.locator("pre.diff .add", has_text="<b>an uncommitted note</b>")).to_have_count(1)
    expect(page.locator("pre.diff b")).to_have_count(0)
    expect(page.locator("pre.diff .file").first).to_contain_text("notes.txt")
    # Asked vs installed: what clearml-task recorded, and the version the launcher installed.
    installed = {line.partition("==")[0]: line for line in task["script"]["requirements"]["pip"].split()}
    row = page.locator("table.packages tbody tr", has_text="six>=1.16")
    expect(row).to_contain_text(installed["six"].partition("==")[2])
    expect(page.locator("section.tab")).to_contain_text("Requirements from: given")
    shot(page, "execution")


def test_configuration_info_artifacts_models_tabs(site: Site, page: Page, shot: Any) -> None:
    page.goto(site.path("train lr 0.1", "configuration"))
    args = page.locator("table.params").first
    expect(args.locator("tr", has_text="lr")).to_contain_text("0.1")
    expect(args.locator("tr", has_text="epochs")).to_contain_text("4")
    expect(page.locator("form.edit-args")).to_have_count(0)  # a completed task's Args are not editable
    shot(page, "configuration")
    page.click("nav.tabs >> text=INFO")
    info = page.locator("dl.fields")
    expect(info).to_contain_text("completed")
    expect(info).to_contain_text(site.tasks["train lr 0.1"])
    task = site.client().get_task(site.tasks["train lr 0.1"])
    started = info.locator("dt:text-is('Started') + dd")
    expect(started).to_have_text(task["started"][:19].replace("T", " ") + " UTC")
    shot(page, "info")
    page.click("nav.tabs >> text=ARTIFACTS")
    expect(page.locator("section.tab")).to_contain_text("No artifacts")
    shot(page, "artifacts")
    page.click("nav.tabs >> text=MODELS")
    expect(page.locator("section.tab")).to_contain_text("No input models")
    shot(page, "models")


def test_console_tab_and_the_sdks_full_screen_link(site: Site, page: Page, shot: Any) -> None:
    page.goto(site.path("train lr 0.1", "console"))
    log = page.locator("#log")
    expect(log).to_contain_text("epoch 4 loss")
    expect(log).to_contain_text("<script>alert('from the log')</script>")  # shown as text, never run
    page.click("text=Jump to end")
    shot(page, "console")
    # The link the SDK prints, in ClearML's older `experiments` form.
    project = site.client().get_task(site.tasks["train lr 0.1"])["project"]
    page.goto(f"{site.url}/projects/{project}/experiments/{site.tasks['train lr 0.1']}/output/log")
    expect(page.locator("#log")).to_contain_text("done")
    shot(page, "full-screen-log")
    with page.expect_download() as download:
        page.click("text=Download")
    text = download.value.path().read_text()
    logged = [str(event["msg"]).rstrip("\n") for event in site.client().task_log(site.tasks["train lr 0.1"])]
    assert text.splitlines() == logged and "done" in logged


def test_scalars_plots_and_debug_samples(site: Site, page: Page, shot: Any) -> None:
    project = site.client().get_task(site.tasks["train lr 0.1"])["project"]
    # ClearML's route for the scalars tab.
    page.goto(
        f"{site.url}/projects/{project}/experiments/{site.tasks['train lr 0.1']}/info-output/metrics/scalar"
    )
    charts = page.locator("#charts figure.chart")
    expect(charts).to_have_count(2)  # accuracy, loss
    expect(charts.nth(1).locator(".u-legend")).to_contain_text("train")
    expect(charts.nth(1).locator(".u-legend")).to_contain_text("val")
    expect(charts.nth(1).locator("canvas")).to_have_count(1)
    shot(page, "scalars")
    page.select_option("#x-axis", "timestamp")
    expect(page.locator("#charts figure.chart .u-legend").first).to_contain_text("time")
    page.locator("#smoothing").fill("0.6")
    expect(page.locator("#smoothing-value")).to_have_text("0.6")
    expect(charts).to_have_count(2)
    shot(page, "scalars-time-smoothed")
    page.click("nav.tabs >> text=PLOTS")
    expect(page.locator("#plots figure.chart")).to_have_count(1)
    expect(page.locator("#plots .u-title")).to_contain_text("curves / roc")
    shot(page, "plots")
    page.click("nav.tabs >> text=DEBUG SAMPLES")
    image = page.locator(".samples img")
    expect(image).to_have_count(1)
    expect(page.locator(".samples figcaption")).to_contain_text("samples / input")
    assert page.evaluate("(img) => img.naturalWidth > 0", image.element_handle())
    shot(page, "debug-samples")


def test_a_task_without_scalars_says_so(site: Site, page: Page) -> None:
    page.goto(site.path("ticker", "scalars"))  # the page reads them after its first paint
    expect(page.locator("#no-scalars")).to_be_visible()
    expect(page.locator("#charts figure.chart")).to_have_count(0)


def test_compare_overlays_scalars_and_marks_differing_hyperparameters(
    site: Site, page: Page, shot: Any
) -> None:
    for name in ("train lr 0.1", "train lr 0.01"):
        page.locator("table.tasks tbody tr", has_text=name).locator("input.pick").check()
    page.click("#compare")
    page.wait_for_url("**/compare-tasks;ids=*/scalars")
    loss = page.locator("#charts figure.chart", has=page.locator(".u-title", has_text="loss"))
    for label in ("train lr 0.1 · train", "train lr 0.01 · val"):
        expect(loss.locator(".u-legend")).to_contain_text(label)
    shot(page, "compare-scalars")
    page.click("nav.tabs >> text=HYPERPARAMETERS")
    expect(page.locator("tr.differs", has_text="lr")).to_have_count(1)
    expect(page.locator("tr:not(.differs)", has_text="epochs")).to_have_count(1)
    shot(page, "compare-hyperparameters")


def test_hostile_names_are_text(site: Site, page: Page, shot: Any) -> None:
    client = site.client()
    hostile = "<img src=x onerror=alert(1)>"
    project = client.project_id(PROJECT, create=False)
    task_id = client.call("tasks.create", {"name": hostile, "type": "training", "project": project})["id"]
    page.goto(f"{site.url}/projects/*/tasks")
    expect(page.locator("table.tasks a", has_text=hostile)).to_have_count(1)
    expect(page.locator("table.tasks img")).to_have_count(0)
    page.goto(f"{site.url}/projects/{project}/tasks/{task_id}/info")
    expect(page.locator("#task-name")).to_have_text(hostile)
    shot(page, "hostile")
    client.call("tasks.delete", {"task": task_id})


def test_unknown_task_is_a_404_page(site: Site, page: Page) -> None:
    response = page.goto(f"{site.url}/projects/*/tasks/{'0' * 32}/execution")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
