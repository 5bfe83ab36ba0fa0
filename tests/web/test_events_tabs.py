"""The Debug samples and Plots tabs of a task with more events than one read takes (events.get_task_events'
default batch): they show the newest, through the real app in process."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client as WsgiClient

from clearml_task.server.app import App
from tests.web.test_routes import logged_in

EVENTS = 5200  # past the 5000 events one events.get_task_events answers by default


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App(tmp_path / "server")


def call(client: WsgiClient, csrf: str, endpoint: str, body: Any) -> dict[str, Any]:
    done = client.post(f"/{endpoint}", json=body, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200, done.get_data(as_text=True)[:300]
    result: dict[str, Any] = done.json["data"]  # type: ignore[index]
    return result


def task_with_events(client: WsgiClient, csrf: str, kind: str, **fields: Any) -> str:
    """A task with EVENTS events of `kind` for one metric and variant, iterations 0 to EVENTS - 1."""
    task = call(client, csrf, "tasks.create", {"name": f"many {kind}", "type": "training"})["id"]
    events = [
        {"task": task, "type": kind, "timestamp": 1_700_000_000_000 + i, "iter": i, "metric": "m",
         "variant": "v", **{k: v.format(i=i) for k, v in fields.items()}}
        for i in range(EVENTS)
    ]  # fmt: skip
    call(client, csrf, "events.add_batch", events)
    return str(task)


def test_debug_samples_show_the_newest_image_past_one_batch(app: App) -> None:
    client, csrf = logged_in(app)
    task = task_with_events(client, csrf, "training_debug_image", url="http://images.example/{i}.png")
    page = client.get(f"/projects/*/tasks/{task}/debug-samples").get_data(as_text=True)
    assert f"iteration {EVENTS - 1}<" in page
    assert f"http://images.example/{EVENTS - 1}.png" in page
    assert "iteration 4999<" not in page


def test_plots_show_the_newest_plots_past_one_batch(app: App) -> None:
    client, csrf = logged_in(app)
    task = task_with_events(client, csrf, "plot", plot_str='{{"data": [], "n": {i}}}')
    page = client.get(f"/projects/*/tasks/{task}/plots").get_data(as_text=True)
    found = re.search(r'<script type="application/json" id="plots-data">(.*?)</script>', page, re.S)
    assert found
    shown = [event["iter"] for event in json.loads(found[1])]
    assert shown == sorted(shown) and shown[-1] == EVENTS - 1  # oldest first, up to the newest
