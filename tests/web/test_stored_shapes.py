"""No stored shape makes a page answer 500: the task fields the pages read hold what the API stores as given
(the insides of `execution`, `script`, `models`, `container`, hyperparameters and configuration objects),
so each of them gets values of every wrong type, and every page and tab that shows the task must answer
200, through the real app in process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import Client as WsgiClient

from clearml_task.server.app import App
from clearml_task.server.web import table, task_tabs
from tests.web.test_routes import logged_in

# Every JSON type, and the shapes one level in that the pages look into.
WRONG: list[Any] = [5, 1.5, True, "str", ["x"], [5], [["x"]], {"a": 1}, [{"a": 1}], {"a": [1]}, {}, [], ""]


def artifact(x: Any) -> dict[str, Any]:
    return {"key": x, "type": x, "mode": x, "uri": x, "content_size": x, "type_data": x}


# The task fields (tasks.create's body) the pages read, each with a wrong value `x` at one place.
FIELDS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "execution": lambda x: {"execution": {"queue": x, "artifacts": x}},
    "execution.artifacts[]": lambda x: {"execution": {"artifacts": [x, {"key": "k", "type_data": x}]}},
    "execution.artifacts{}": lambda x: {"execution": {"artifacts": {"k": x, "l": {"type_data": x}}}},
    "execution.artifacts[].*": lambda x: {"execution": {"artifacts": [artifact(x)]}},
    "script": lambda x: {"script": dict.fromkeys(
        ("repository", "branch", "tag", "version_num", "entry_point", "working_dir", "binary", "diff",
         "requirements"), x)},
    "script.requirements": lambda x: {"script": {"requirements": dict.fromkeys(
        ("pip", "org_pip", "extra", "source"), x)}},
    "script.requirements.pip": lambda x: {"script": {"requirements": {"pip": x, "source": "given"}}},
    "container": lambda x: {"container": {"image": x, "arguments": x, "setup_shell_script": x}},
    "models": lambda x: {"models": {"input": x, "output": x}},
    "models[]": lambda x: {"models": {"input": [x], "output": [x, {"name": "n", "model": x}]}},
    "models[].*": lambda x: {"models": {"input": [{"name": x, "model": x}], "output": [{"name": x}]}},
    "hyperparams": lambda x: {"hyperparams": {"Args": {"lr": {"value": x, "description": x, "type": x}}}},
    "configuration": lambda x: {"configuration": {"c": {"value": x, "description": x, "type": x}}},
    "output": lambda x: {"output": {"destination": x, "result": x, "error": x}},
    "runtime": lambda x: {"runtime": {"a": x}},
}  # fmt: skip


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory) -> tuple[WsgiClient, dict[str, str]]:
    """A logged-in client, and a task per field and wrong value (`<field> = <value>` -> id)."""
    app = App(tmp_path_factory.mktemp("shapes") / "server")
    client, csrf = logged_in(app)
    tasks = {}
    for field, shaped in FIELDS.items():
        for x in WRONG:
            body = {"name": f"poison {field}", "type": "training", **shaped(x)}
            done = client.post("/tasks.create", json=body, headers={"X-CSRF-Token": csrf})
            # The API may refuse a shape (a 400 naming the field); what it stores, the pages must show.
            assert done.status_code in (200, 400), done.get_data(as_text=True)[:300]
            if done.status_code == 200:
                tasks[f"{field} = {x!r}"] = done.json["data"]["id"]  # type: ignore[index]
    for task in list(tasks.values())[
        ::7
    ]:  # some wait in a queue, one runs on a worker: Orchestration shows them
        done = client.post("/tasks.enqueue", json={"task": task}, headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200, done.get_data(as_text=True)[:300]
    report = {"worker": "w1", "task": next(iter(tasks.values()))}
    assert (
        client.post("/workers.status_report", json=report, headers={"X-CSRF-Token": csrf}).status_code == 200
    )
    return client, tasks


def test_the_table_and_orchestration_show_every_stored_shape(
    poisoned: tuple[WsgiClient, dict[str, str]],
) -> None:
    client, tasks = poisoned
    for path in ("/", "/workers-and-queues/queues", "/workers-and-queues/workers"):
        assert client.get(path, follow_redirects=True).status_code == 200, path
    for page in range(len(tasks) // table.PAGE_SIZE + 1):  # every task on one page or another
        for query in (f"page={page}", f"page={page}&sort=name&search=poison"):
            answer = client.get(f"/projects/*/tasks?{query}")
            assert answer.status_code == 200, answer.get_data(as_text=True)[-500:]


@pytest.mark.parametrize("field", FIELDS)
def test_every_tab_and_page_of_a_task_shows_every_stored_shape(
    poisoned: tuple[WsgiClient, dict[str, str]], field: str
) -> None:
    client, tasks = poisoned
    made = {shape: task for shape, task in tasks.items() if shape.startswith(f"{field} = ")}
    assert made
    for shape, task in made.items():
        base = f"/projects/*/tasks/{task}"
        paths = [f"{base}/{tab}" for tab in task_tabs.TABS]
        paths += [f"{base}/output/log", f"{base}/output/log?download=1"]
        paths += [f"/projects/*/compare-tasks;ids={task}/{tab}" for tab in ("scalars", "hyper-params")]
        for path in paths:
            answer = client.get(path)
            assert answer.status_code == 200, f"{shape}: {path}: {answer.get_data(as_text=True)[-300:]}"
