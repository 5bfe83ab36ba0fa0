"""Requests an attacker sends that the field kinds let through: values whose size or content reach SQLite
(variable counts, LIKE patterns) or burn CPU per document. Each answers at once with a 200 or a 4xx."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from clearml_task.server import services
from clearml_task.server.app import App

assert services  # importing it registers the endpoints

# How many `?` one SQLite statement may hold in this build (32766 or 250000, depending on how it was built).
SQL_VARIABLES = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> App:
    return App(tmp_path_factory.mktemp("hostile") / "server", environ={})


def call(app: App, endpoint: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    token = app.tokens.issue(app.users.first)
    return app.handle(f"/{endpoint}", json.dumps(body).encode(), authorization=f"Bearer {token}")


@pytest.mark.parametrize("field", ["id", "project", "status"])
@pytest.mark.parametrize("paged", [False, True])
def test_tasks_get_all_takes_more_values_than_sqlite_has_variables(app: App, field: str, paged: bool) -> None:
    task = call(app, "tasks.create", {"name": "listed", "type": "training"})[1]["data"]["id"]
    wanted = {"id": task, "project": None, "status": "created"}[field]
    values = [f"v{i}" for i in range(SQL_VARIABLES + 1)] + ([wanted] if wanted else [])
    body: dict[str, Any] = {field: values, "only_fields": ["id"]}
    if paged:
        body["page_size"] = 10
    code, envelope = call(app, "tasks.get_all", body)
    assert code == 200, envelope["meta"]["result_msg"]
    if field != "project":
        assert task in [t["id"] for t in envelope["data"]["tasks"]] or paged


def test_dequeue_of_an_unknown_long_or_wildcard_id_is_not_a_5xx(app: App) -> None:
    """The id is looked for in the queues as text, never as a LIKE pattern (too long for SQLite, or `%`)."""
    queue = call(app, "queues.create", {"name": "kept"})[1]["data"]["id"]
    task = call(app, "tasks.create", {"name": "queued one", "type": "training"})[1]["data"]["id"]
    assert call(app, "tasks.enqueue", {"task": task, "queue": queue})[0] == 200
    for hostile in ("x" * 60_000, "%", "_" * 32):
        code, envelope = call(app, "tasks.dequeue", {"task": hostile})
        assert code < 500, envelope["meta"]["result_msg"]
    entries = call(app, "queues.get_by_id", {"queue": queue})[1]["data"]["queue"]["entries"]
    assert [e["task"] for e in entries] == [task]


@pytest.fixture(scope="module")
def many(app: App) -> App:
    """Enough documents of each kind that a cost per document and per listed entry shows."""
    for i in range(300):
        call(app, "projects.create", {"name": f"many {i}"})
        call(app, "queues.create", {"name": f"many {i}"})
        call(app, "models.create", {"name": f"many {i}", "uri": "http://host/m"})
        call(app, "tasks.create", {"name": f"many {i}", "type": "training", "tags": ["a"]})
    return app


GET_ALLS = ["tasks.get_all", "projects.get_all", "queues.get_all", "models.get_all"]


@pytest.mark.parametrize("endpoint", GET_ALLS)
@pytest.mark.parametrize("field", ["order_by", "only_fields", "tags", "system_tags"])
def test_get_all_lists_costing_a_step_per_document_are_bounded(many: App, endpoint: str, field: str) -> None:
    """100,000 entries (1 MB) used to take seconds per request, and 2,001 only_fields a 500 (SQLite's
    column limit); past a few hundred entries the answer is a 400 at once."""
    for size in (2001, 100_000):
        started = time.monotonic()
        code, envelope = call(many, endpoint, {field: [f"e{i}" for i in range(size)], "page_size": 5})
        assert code == 400 and field in envelope["meta"]["result_msg"]
        assert time.monotonic() - started < 1
    body = {field: [f"-e{i}" for i in range(50)], "page_size": 5}
    assert call(many, endpoint, body)[0] == 200


def test_a_long_id_list_is_looked_up_not_scanned_per_document(tmp_path: Path) -> None:
    """100,000 ids against 2,000 projects: a set lookup each, so the call costs about what reading its body
    does (before: a scan of the list per project, over ten times as long)."""
    app = App(tmp_path / "server", environ={})
    for i in range(2000):
        call(app, "projects.create", {"name": f"project {i}"})
    body = {"id": [f"{i:032x}" for i in range(100_000)]}
    started = time.monotonic()
    assert call(app, "debug.ping", body)[0] == 200
    reading = time.monotonic() - started
    started = time.monotonic()
    code, envelope = call(app, "projects.get_all", body)
    assert code == 200 and envelope["data"]["projects"] == []
    assert time.monotonic() - started < 4 * reading + 0.5


MULTI_TASK_READS = [
    ("tasks.get_hyper_params", "tasks"),
    ("tasks.get_configurations", "tasks"),
    ("tasks.get_configuration_names", "tasks"),
    ("events.get_task_metrics", "tasks"),
    ("events.get_task_single_value_metrics", "tasks"),
    ("events.debug_images", "metrics"),
]


@pytest.mark.parametrize(("endpoint", "field"), MULTI_TASK_READS)
def test_reads_over_several_tasks_take_a_bounded_list(app: App, endpoint: str, field: str) -> None:
    """Each task listed costs a query: 20,000 took seconds (a 64 MB body, minutes); past 1000 it is a 400."""
    task = call(app, "tasks.create", {"name": "read often", "type": "training"})[1]["data"]["id"]
    entry: Any = {"task": task} if field == "metrics" else task
    started = time.monotonic()
    code, envelope = call(app, endpoint, {field: [entry] * 20_000})
    assert code == 400 and field in envelope["meta"]["result_msg"]
    assert time.monotonic() - started < 1
    code, envelope = call(app, endpoint, {field: [entry] * 1000})
    assert code == 200, envelope["meta"]["result_msg"]


EVENT_READS = [
    ("events.get_task_events", {}),
    ("events.get_task_events", {"order": "desc"}),
    ("events.get_task_plots", {"iters": 1}),
    ("events.scalar_metrics_iter_histogram", {}),
    ("events.get_scalar_metrics_and_variants", {}),
    ("events.get_task_log", {}),
]


def _events(task: str, iteration: Any, value: Any) -> list[dict[str, Any]]:
    same = {"task": task, "metric": "m", "variant": "v", "timestamp": 1000}
    return [
        {**same, "type": "plot", "iter": iteration, "plot_str": "{}"},
        {**same, "type": "plot", "iter": 3, "plot_str": "{}"},
        {**same, "type": "training_debug_image", "iter": iteration, "url": "http://host/i.png"},
        {**same, "type": "training_debug_image", "iter": 3, "url": "http://host/i.png"},
        {**same, "type": "training_stats_scalar", "iter": iteration, "value": value},
        {**same, "type": "training_stats_scalar", "iter": 3, "value": 1},
    ]


def _event_reads_answer(app: App, task: str) -> None:
    for endpoint, body in [*EVENT_READS, ("events.debug_images", {"metrics": [{"task": task}], "iters": 1})]:
        code, envelope = call(app, endpoint, {"task": task, **body})
        assert code == 200, (endpoint, envelope["meta"]["result_msg"])


@pytest.mark.parametrize("iteration", ["5", "5.0", " 7 "])
def test_numbers_sent_as_text_in_events_are_stored_as_numbers(app: App, iteration: str) -> None:
    """An iteration or value given as its text (which their kinds take) used to be stored as text: every
    later events.get_task_events of the task was a 500 (text and numbers do not sort together), and
    "5.0" broke the plot and scalar reads too."""
    task = call(app, "tasks.create", {"name": "text numbers", "type": "training"})[1]["data"]["id"]
    assert call(app, "events.add_batch", {"requests": _events(task, iteration, "0.5")})[0] == 200
    _event_reads_answer(app, task)
    stored = call(app, "events.get_task_events", {"task": task})[1]["data"]["events"]
    assert {type(e["iter"]) for e in stored} == {int}
    scalars = call(app, "events.scalar_metrics_iter_histogram", {"task": task})[1]["data"]
    assert sorted(scalars["m"]["v"]["y"]) == [0.5, 1]


def test_events_stored_with_text_iterations_before_still_read(app: App) -> None:
    """A store written by an earlier version may hold such events: reads take them as numbers."""
    task = call(app, "tasks.create", {"name": "old events", "type": "training"})[1]["data"]["id"]
    with app.store.transaction(write=True) as tx:
        tx.add_events(_events(task, "5.0", 0.5))
    _event_reads_answer(app, task)
