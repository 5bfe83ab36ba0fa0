"""get_all's date and range conditions, as ClearML's TriggerScheduler and web app send them: a date field's
`>t` / `>=t` / `<t` / `<=t` / `t` (or a list of them, all holding), `_or_` / `_and_` with `datetime` over
date fields, and [low, high] ranges (null: open; no low end also matches a missing value) on created,
last_iteration and last_metrics paths. A condition the server cannot read is a 400, never ignored."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from clearml_task.api import Client
from clearml_task.errors import APICallError
from testing.servers import api_error


def new_project(client: Client) -> str:
    return client.call("projects.create", {"name": f"ranges {uuid.uuid4().hex}"}).id()


def task(client: Client, project: str, name: str) -> str:
    task_id = client.create_task({"name": name, "type": "training", "project": project})
    time.sleep(0.005)  # the server stamps milliseconds: the next task's times are later
    return task_id


def stamps(client: Client, task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.call("tasks.get_by_id", {"task": task_id})["task"]
    return found


def listed(client: Client, endpoint: str, data: dict[str, Any]) -> set[str]:
    kind = endpoint.split(".")[0]
    return {doc["id"] for doc in client.call(endpoint, data)[kind]}


def naive(stamp: str) -> str:
    """The same time as a naive ISO text (the SDK sends `datetime.isoformat()`): read as UTC."""
    return datetime.fromisoformat(stamp).astimezone(timezone.utc).replace(tzinfo=None).isoformat()


def test_date_conditions_select_by_last_update(client: Client) -> None:
    project = new_project(client)
    first, second, third = (task(client, project, name) for name in ("first", "second", "third"))
    one, two = stamps(client, first)["last_update"], stamps(client, second)["last_update"]
    base: dict[str, Any] = {"project": [project]}
    assert listed(client, "tasks.get_all", {**base, "last_update": f">{one}"}) == {second, third}
    assert listed(client, "tasks.get_all", {**base, "last_update": f">={one}"}) == {first, second, third}
    assert listed(client, "tasks.get_all", {**base, "last_update": f"<{two}"}) == {first}
    both = {**base, "last_update": [f">={one}", f"<={two}"]}
    assert listed(client, "tasks.get_all", both) == {first, second}
    assert listed(client, "tasks.get_all", {**base, "last_update": two}) == {second}
    assert listed(client, "tasks.get_all", {**base, "last_update": [one, two]}) == {first, second}  # a range
    assert listed(client, "tasks.get_all", {**base, "last_update": [None, one]}) == {first}
    assert listed(client, "tasks.get_all", {**base, "last_update": f">{naive(one)}"}) == {second, third}
    # The paths that read only some fields, and pages, give the same answer.
    only = {**base, "last_update": f">{one}", "only_fields": ["id"]}
    assert listed(client, "tasks.get_all", only) == {second, third}
    paged = {**only, "page": 0, "page_size": 1, "order_by": ["last_update"]}
    assert listed(client, "tasks.get_all", paged) == {second}


def test_or_and_and_over_date_fields(client: Client) -> None:
    """TriggerScheduler's shape on newer servers: _or_ {fields: [last_update, last_change], datetime}."""
    project = new_project(client)
    old, edited = task(client, project, "old"), task(client, project, "edited")
    since = stamps(client, edited)["last_update"]
    time.sleep(0.005)
    client.call("tasks.edit", {"task": edited, "comment": "changed", "force": True})
    new = task(client, project, "new")
    fields = ["last_update", "last_change"]
    base: dict[str, Any] = {"project": [project], "only_fields": ["id", *fields]}
    either = {**base, "_or_": {"fields": fields, "datetime": [f">{since}"]}}
    assert listed(client, "tasks.get_all", either) == {edited, new}
    every = {**base, "_and_": {"fields": fields, "datetime": f">={stamps(client, old)['last_update']}"}}
    assert listed(client, "tasks.get_all", every) == {old, edited, new}
    # The edit changed last_update, not status_changed: only the new task has both later.
    status_too = ["status_changed", "last_update"]
    later = {"fields": status_too, "datetime": f">{since}"}
    assert listed(client, "tasks.get_all", {**base, "_and_": later}) == {new}
    assert listed(client, "tasks.get_all", {**base, "_or_": later}) == {edited, new}
    # One field may come as a string: the paths that read only some fields read that one whole.
    one = {"fields": "last_update", "datetime": f">{since}"}
    for only in (["id"], ["id", "name"]):
        assert listed(client, "tasks.get_all", {**base, "only_fields": only, "_or_": one}) == {edited, new}
        paged = {**base, "only_fields": only, "_or_": one, "page": 0, "page_size": 10}
        assert listed(client, "tasks.get_all", paged) == {edited, new}


def test_ranges_on_created_iterations_and_last_metrics(client: Client) -> None:
    """TaskTrigger's metric threshold: last_metrics.<md5 metric>.<md5 variant>.max_value: [low, null]."""
    project = new_project(client)
    good, poor, silent = (task(client, project, name) for name in ("good", "poor", "silent"))
    for task_id, value, iteration in ((good, 0.95, 7), (poor, 0.5, 2)):
        client.call("tasks.started", {"task": task_id, "force": True})
        event = {"type": "training_stats_scalar", "task": task_id, "metric": "accuracy", "variant": "top1"}
        client.call("events.add_batch", [{**event, "value": value, "iter": iteration}])
    hashed = [hashlib.md5(name.encode()).hexdigest() for name in ("accuracy", "top1")]
    key = ".".join(["last_metrics", *hashed, "max_value"])
    base: dict[str, Any] = {"project": [project]}
    assert listed(client, "tasks.get_all", {**base, key: [0.9, None]}) == {good}
    assert listed(client, "tasks.get_all", {**base, key: ["0.5", "0.5"]}) == {poor}  # texts: numbers
    assert listed(client, "tasks.get_all", {**base, key: [None, 0.9]}) == {poor, silent}  # missing too
    assert listed(client, "tasks.get_all", {**base, "last_iteration": [5, None]}) == {good}
    created = stamps(client, poor)["created"]
    assert listed(client, "tasks.get_all", {**base, "created": [created, None]}) == {poor, silent}
    assert listed(client, "tasks.get_all", {**base, "created": [None, created]}) == {good, poor}


def test_models_by_date_and_ready(client: Client) -> None:
    """ModelTrigger: ready, and a date condition on last_update."""
    project = new_project(client)
    made = [
        client.call("models.create", {"name": name, "uri": "file:///m", "project": project}).id()
        for name in ("before", "after")
    ]
    since = client.call("models.get_by_id", {"model": made[0]})["model"]["last_update"]
    time.sleep(0.005)
    client.call("models.set_ready", {"model": made[1]})
    base: dict[str, Any] = {"project": [project]}
    assert listed(client, "models.get_all", {**base, "last_update": f">{since}", "ready": True}) == {made[1]}
    assert listed(client, "models.get_all", {**base, "last_change": f">{since}"}) == {made[1]}


def test_task_types_is_accepted_and_ignored_as_clearml_does(client: Client) -> None:
    """DatasetTrigger sends task_types; ClearML's server reads no such filter (the system tag selects)."""
    project = new_project(client)
    made = task(client, project, "a task")
    data = {"project": [project], "task_types": ["data_processing"]}
    assert listed(client, "tasks.get_all", data) == {made}


@pytest.mark.parametrize(
    "data",
    [
        {"last_update": ">yesterday"},
        {"last_update": ">"},
        {"last_update": [">2024-01-01T00:00:00", None]},
        {"last_update": []},
        {"last_update": [">2024-01-01"] * 9},
        {"last_update": 7},
        {"status_changed": {"gt": "2024-01-01"}},
        {"created": ["2024-01-01"]},
        {"created": [None, None]},
        {"created": ["2024-01-01", "later"]},
        {"last_iteration": [1, 2, 3]},
        {"last_iteration": ["one", None]},
        {"last_iteration": [True, None]},
        {"last_metrics.a.b.max_value": 0.9},
        {"last_metrics.a.b.max_value": [None, "nan"]},
        {"last_metrics..b.max_value": [0, 1]},
        {"last_metrics." + ".".join("a" * 20): [0, 1]},
        {f"last_metrics.a.{i}.max_value": [0, 1] for i in range(65)},
        {"_or_": {"fields": ["name"], "datetime": ">2024-01-01"}},
        {"_or_": {"fields": [], "datetime": ">2024-01-01"}},
        {"_or_": {"fields": ["last_update"], "datetime": ">soon"}},
        {"_and_": {"fields": ["last_update"], "datetime": ">2024-01-01", "pattern": "x"}},
        {"_or_": {"fields": ["last_update"], "datetime": {"a": 1}}},
    ],
)
def test_unreadable_conditions_are_400(client: Client, data: dict[str, Any]) -> None:
    with pytest.raises(APICallError) as e:
        client.call("tasks.get_all", data)
    assert api_error(e) == (400, 12), str(e.value)


def test_a_date_condition_where_there_are_no_date_fields_is_400(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("projects.get_all", {"_or_": {"fields": ["last_update"], "datetime": ">2024-01-01"}})
    assert api_error(e) == (400, 12) and "no date fields" in str(e.value)
