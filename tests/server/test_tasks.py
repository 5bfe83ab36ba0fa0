"""tasks.*: the document, edit merge rules, get_all, clone, the status state machine, queueing, stop."""

from __future__ import annotations

import itertools
import re
import uuid

import pytest

from clearml_task.api import Client
from clearml_task.errors import APICallError
from clearml_task.server.task_status import TRANSITIONS
from testing.servers import api_error


def new_task(client: Client, **fields: object) -> str:
    doc = {"name": f"task {uuid.uuid4().hex[:8]}", "type": "training", **fields}
    return client.create_task(doc)


def test_create_fills_what_the_server_owns(client: Client) -> None:
    project = client.project_id(f"proj-{uuid.uuid4().hex[:6]}")
    task_id = new_task(
        client,
        project=project,
        output_dest="s3://bucket/out",
        tags=["a"],
        script={"repository": "https://example.com/r.git", "entry_point": "train.py"},
        hyperparams={"Args": {"lr": {"value": "0.1", "type": "float"}}},
        configuration={"cfg": {"value": "x: 1", "type": "yaml"}},
        container={"image": "python:3.11"},
    )
    assert re.fullmatch(r"[0-9a-f]{32}", task_id)
    task = client.get_task(task_id)
    assert task["status"] == "created"
    assert task["project"] == project
    assert task["output"]["destination"] == "s3://bucket/out"
    assert task["hyperparams"]["Args"]["lr"] == {
        "section": "Args",
        "name": "lr",
        "value": "0.1",
        "type": "float",
    }
    assert task["configuration"]["cfg"]["name"] == "cfg"
    assert task["container"] == {"image": "python:3.11"}
    assert task["created"] and task["last_update"] and task["user"] and task["company"]
    assert task["last_iteration"] == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "ab"},
        {"type": "nope"},
        {"project": "0" * 32},
        {"parent": "f" * 32},
        {"hyperparams": {"Args": 3}},
    ],
)
def test_create_refuses_bad_documents(client: Client, fields: dict) -> None:
    with pytest.raises(APICallError) as e:
        new_task(client, **fields)
    assert e.value.code == 400


def test_get_by_id_of_unknown_task_is_400_101(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("tasks.get_by_id", {"task": uuid.uuid4().hex})
    assert api_error(e) == (400, 101)


def test_edit_merges_script_execution_output_models_and_replaces_the_rest(client: Client) -> None:
    task_id = new_task(
        client,
        script={"repository": "r", "entry_point": "a.py", "branch": "main"},
        execution={"queue": None, "framework": "torch"},
        hyperparams={"Args": {"a": {"value": "1"}}, "General": {"g": {"value": "2"}}},
        configuration={"one": {"value": "1"}},
        runtime={"x": 1, "y": 2},
        container={"image": "old", "arguments": "--x"},
        tags=["one", "two"],
    )
    result = client.call(
        "tasks.edit",
        {
            "task": task_id,
            "script": {"entry_point": "b.py"},
            "execution": {"docker_cmd": "img"},
            "hyperparams": {"Args": {"b": {"value": "3"}}},
            "configuration": {"two": {"value": "2"}},
            "runtime": {"z": 3},
            "container": {"image": "new"},
            "tags": ["three"],
            "comment": "edited",
        },
    )
    assert result["updated"] == 1
    task = client.get_task(task_id)
    assert task["script"] == {"repository": "r", "entry_point": "b.py", "branch": "main"}
    assert task["execution"] == {"queue": None, "framework": "torch", "docker_cmd": "img", "artifacts": []}
    assert set(task["hyperparams"]) == {"Args"} and set(task["hyperparams"]["Args"]) == {"b"}
    assert set(task["configuration"]) == {"two"}
    assert task["runtime"] == {"z": 3}
    assert task["container"] == {"image": "new"}
    assert task["tags"] == ["three"]
    assert task["comment"] == "edited"


def test_edit_needs_status_created_unless_forced(client: Client) -> None:
    task_id = new_task(client)
    client.set_status(task_id, "started")
    with pytest.raises(APICallError) as e:
        client.call("tasks.edit", {"task": task_id, "comment": "no"})
    assert api_error(e) == (400, 110)
    client.call("tasks.edit", {"task": task_id, "comment": "yes", "force": True})
    assert client.get_task(task_id)["comment"] == "yes"


def test_get_all_filters_orders_pages_and_projects_dotted_fields(client: Client) -> None:
    project = client.project_id(f"proj-{uuid.uuid4().hex[:6]}")
    ids = [
        new_task(
            client,
            project=project,
            name=f"job-{i}",
            script={"entry_point": f"e{i}.py", "binary": "py"},
            tags=["even" if i % 2 == 0 else "odd"],
        )
        for i in range(5)
    ]
    client.set_status(ids[0], "started")
    everything = client.tasks(project=[project])
    assert [t["id"] for t in everything] == ids
    assert [t["name"] for t in client.tasks(project=[project], order_by=["-name"])] == [
        f"job-{i}" for i in reversed(range(5))
    ]
    assert [t["id"] for t in client.tasks(project=[project], status=["in_progress"])] == [ids[0]]
    assert [t["id"] for t in client.tasks(project=[project], name="^job-[34]$")] == ids[3:]
    assert [t["id"] for t in client.tasks(project=[project], tags=["odd"])] == [ids[1], ids[3]]
    assert [t["id"] for t in client.tasks(project=[project], tags=["-odd"])] == [ids[0], ids[2], ids[4]]
    assert [t["id"] for t in client.tasks(project=[project], page=1, page_size=2)] == ids[2:4]
    projected = client.tasks(id=[ids[2]], only_fields=["id", "script.entry_point", "status"])
    assert projected == [{"id": ids[2], "script": {"entry_point": "e2.py"}, "status": "created"}]


def test_get_all_hides_hidden_tasks_unless_asked(client: Client) -> None:
    project = client.project_id(f"proj-{uuid.uuid4().hex[:6]}")
    hidden = new_task(client, project=project, system_tags=["hidden"])
    shown = new_task(client, project=project)
    assert [t["id"] for t in client.tasks(project=[project])] == [shown]
    assert [t["id"] for t in client.tasks(project=[project], search_hidden=True)] == [hidden, shown]
    assert [t["id"] for t in client.tasks(id=[hidden])] == [hidden]


def test_clone_copies_the_recipe_not_the_run(client: Client) -> None:
    source = new_task(
        client,
        script={"entry_point": "t.py", "diff": "d"},
        hyperparams={"Args": {"a": {"value": "1"}}},
        container={"image": "img"},
        execution={"framework": "x"},
        system_tags=["development", "keep"],
    )
    queue = client.queue_id(f"q-{uuid.uuid4().hex[:6]}", create=True)
    client.enqueue(source, queue)
    client.call("events.add_batch", [{"type": "log", "task": source, "msg": "hi"}])
    clone = client.clone_task(
        source,
        new_task_name="the clone",
        new_task_hyperparams={"Args": {"a": {"value": "2"}}},
        execution_overrides={"framework": "y"},
    )
    task = client.get_task(clone)
    assert task["status"] == "created"
    assert task["name"] == "the clone"
    assert task["parent"] == source
    assert task["script"] == {"entry_point": "t.py", "diff": "d"}
    assert task["container"] == {"image": "img"}
    assert task["hyperparams"]["Args"]["a"]["value"] == "2"
    assert task["execution"] == {"framework": "y", "artifacts": []}  # the queue is not copied
    assert task["system_tags"] == ["keep"]
    assert client.task_log(clone) == []


def test_clone_into_a_new_project_by_name(client: Client) -> None:
    source = new_task(client)
    name = f"proj-{uuid.uuid4().hex[:6]}"
    result = client.call("tasks.clone", {"task": source, "new_project_name": name})
    assert result["new_project"]["name"] == name
    assert client.get_task(result["id"])["project"] == client.project_id(name, create=False)


# ---- the status state machine -------------------------------------------------------------------

STATUS_ENDPOINT = {
    "queued": "enqueue",
    "in_progress": "started",
    "stopped": "stopped",
    "failed": "failed",
    "completed": "completed",
    "published": "publish",
    "closed": "close",
}


def task_in(client: Client, status: str, queue: str) -> str:
    """A task brought (forcefully where needed) into `status`."""
    task_id = new_task(client)
    if status == "queued":
        client.call("tasks.enqueue", {"task": task_id, "queue": queue})
    elif status != "created":
        client.call(f"tasks.{STATUS_ENDPOINT[status]}", {"task": task_id, "force": True})
    assert client.get_task(task_id)["status"] == status
    return task_id


def test_transition_table_is_clearmls() -> None:
    expected = {
        "created": {"queued", "in_progress"},
        "queued": {"created", "in_progress", "stopped"},
        "in_progress": {"stopped", "failed", "created", "completed"},
        "stopped": {
            "closed",
            "created",
            "failed",
            "queued",
            "in_progress",
            "published",
            "publishing",
            "completed",
        },
        "closed": {"created", "failed", "published", "publishing", "stopped"},
        "failed": {"created", "stopped", "published", "queued"},
        "publishing": {"published"},
        "published": set(),
        "completed": {"published", "in_progress", "created"},
    }
    assert {k: set(v) for k, v in TRANSITIONS.items() if k != "unknown"} == expected


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pair
        for pair in itertools.product([*STATUS_ENDPOINT, "created"], STATUS_ENDPOINT)
        if pair[1] != "queued"
    ],
)
def test_status_endpoints_follow_the_table(client: Client, old: str, new: str) -> None:
    queue = client.queue_id("transitions", create=True) if old == "queued" else ""
    task_id = task_in(client, old, queue)
    allowed = old == new or new in TRANSITIONS[old]
    endpoint = f"tasks.{STATUS_ENDPOINT[new]}"
    if allowed:
        client.call(endpoint, {"task": task_id})
        assert client.get_task(task_id)["status"] == new
    else:
        with pytest.raises(APICallError) as e:
            client.call(endpoint, {"task": task_id})
        assert api_error(e) == (400, 110)
        assert client.get_task(task_id)["status"] == old
        client.call(endpoint, {"task": task_id, "force": True})  # force skips the check
        assert client.get_task(task_id)["status"] == new


@pytest.mark.parametrize("old", ["created", "stopped", "failed", "completed", "published", "in_progress"])
def test_enqueue_follows_the_table(client: Client, old: str) -> None:
    queue = client.queue_id("transitions", create=True)
    task_id = task_in(client, old, queue)
    if "queued" in TRANSITIONS[old]:
        client.enqueue(task_id, queue)
        assert client.get_task(task_id)["status"] == "queued"
    else:
        with pytest.raises(APICallError) as e:
            client.enqueue(task_id, queue)
        assert api_error(e) == (400, 110)
        assert all(e["task"] != task_id for q in client.queues() for e in q["entries"])


def test_status_change_records_times_and_messages(client: Client) -> None:
    task_id = new_task(client)
    client.call("tasks.started", {"task": task_id, "status_reason": "go", "status_message": "running"})
    task = client.get_task(task_id)
    assert (task["status_reason"], task["status_message"]) == ("go", "running")
    assert task["started"] and not task.get("completed")
    client.call("tasks.completed", {"task": task_id})
    task = client.get_task(task_id)
    assert task["completed"] >= task["started"]


def test_completed_with_publish(client: Client) -> None:
    task_id = task_in(client, "in_progress", "")
    assert client.call("tasks.completed", {"task": task_id, "publish": True})["published"] == 1
    assert client.get_task(task_id)["status"] == "published"


# ---- queueing ------------------------------------------------------------------------------------


def test_enqueue_and_dequeue(client: Client) -> None:
    queue = client.queue_id(f"q-{uuid.uuid4().hex[:6]}", create=True)
    task_id = new_task(client)
    result = client.call("tasks.enqueue", {"task": task_id, "queue": queue, "verify_watched_queue": True})
    assert result["queued"] == 1 and result["queue_watched"] is False
    task = client.get_task(task_id)
    assert task["status"] == "queued" and task["execution"]["queue"] == queue
    assert [e["task"] for e in client.call("queues.get_by_id", {"queue": queue})["queue"]["entries"]] == [
        task_id
    ]
    result = client.call("tasks.dequeue", {"task": task_id})
    assert result["dequeued"] == 1 and result["updated"] == 1
    assert client.get_task(task_id)["status"] == "created"
    assert client.call("queues.get_by_id", {"queue": queue})["queue"]["entries"] == []


def test_enqueue_by_queue_name_creates_it_and_default_without_either(client: Client) -> None:
    name = f"by-name-{uuid.uuid4().hex[:6]}"
    task_id = new_task(client)
    client.call("tasks.enqueue", {"task": task_id, "queue_name": name})
    assert client.get_task(task_id)["execution"]["queue"] == client.queue_id(name)
    other = new_task(client)
    client.call("tasks.enqueue", {"task": other})
    default = client.call("queues.get_default")
    assert client.get_task(other)["execution"]["queue"] == default["id"]


def test_enqueue_to_unknown_queue_is_400_701(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.enqueue(new_task(client), uuid.uuid4().hex)
    assert api_error(e) == (400, 701)


def test_started_takes_the_task_off_its_queue(client: Client) -> None:
    queue = client.queue_id(f"q-{uuid.uuid4().hex[:6]}", create=True)
    task_id = new_task(client)
    client.enqueue(task_id, queue)
    client.set_status(task_id, "started")
    assert client.call("queues.get_by_id", {"queue": queue})["queue"]["entries"] == []


def test_workers_report_dequeue_to_in_progress(client: Client) -> None:
    queue = client.queue_id(f"q-{uuid.uuid4().hex[:6]}", create=True)
    task_id = new_task(client)
    client.enqueue(task_id, queue)
    assert client.next_task(queue) == task_id
    client.call("tasks.dequeue", {"task": task_id, "new_status": "in_progress"})
    assert client.get_task(task_id)["status"] == "in_progress"


# ---- stop, reset, delete -----------------------------------------------------------------------


def test_stop_of_a_task_held_by_a_live_worker_only_asks(client: Client) -> None:
    task_id = task_in(client, "in_progress", "")
    worker = f"host:{uuid.uuid4().hex[:4]}"
    client.register_worker(worker, [])
    client.status_report(worker, task_id=task_id)
    client.call("tasks.stop", {"task": task_id})
    task = client.get_task(task_id)
    assert task["status"] == "in_progress"
    assert task["status_message"] == "stopping"
    assert task["last_worker"] == worker
    client.call("tasks.stopped", {"task": task_id})  # what the worker does once it killed the run
    assert client.get_task(task_id)["status"] == "stopped"


def test_stop_of_an_unattended_or_queued_task_stops_it_now(client: Client) -> None:
    running = task_in(client, "in_progress", "")
    client.call("tasks.stop", {"task": running})
    assert client.get_task(running)["status"] == "stopped"
    queue = client.queue_id("stop-q", create=True)
    queued = task_in(client, "queued", queue)
    client.call("tasks.stop", {"task": queued})
    assert client.get_task(queued)["status"] == "stopped"
    assert all(
        e["task"] != queued for e in client.call("queues.get_by_id", {"queue": queue})["queue"]["entries"]
    )


def test_stop_of_a_created_task_needs_force(client: Client) -> None:
    task_id = new_task(client)
    with pytest.raises(APICallError) as e:
        client.call("tasks.stop", {"task": task_id})
    assert api_error(e) == (400, 110)
    client.call("tasks.stop", {"task": task_id, "force": True})
    assert client.get_task(task_id)["status"] == "stopped"


def test_reset_returns_to_created_and_clears_the_run(client: Client) -> None:
    queue = client.queue_id(f"q-{uuid.uuid4().hex[:6]}", create=True)
    task_id = new_task(client, runtime={"hash": "x"})
    client.set_status(task_id, "started")
    client.call("events.add_batch", [{"type": "log", "task": task_id, "msg": "old run"}])
    client.set_status(task_id, "failed")
    client.call("tasks.reset", {"task": task_id})
    task = client.get_task(task_id)
    assert task["status"] == "created"
    assert task["runtime"] == {} and task["started"] is None and task["completed"] is None
    assert client.task_log(task_id) == []
    client.enqueue(task_id, queue)
    result = client.call("tasks.reset", {"task": task_id})
    assert result["dequeued"] == {"removed": 1}
    assert client.call("queues.get_by_id", {"queue": queue})["queue"]["entries"] == []


def test_reset_of_a_published_task_needs_force(client: Client) -> None:
    task_id = task_in(client, "published", "")
    with pytest.raises(APICallError) as e:
        client.call("tasks.reset", {"task": task_id})
    assert api_error(e) == (400, 110)


def test_delete(client: Client) -> None:
    running = task_in(client, "in_progress", "")
    with pytest.raises(APICallError):
        client.call("tasks.delete", {"task": running})
    assert client.call("tasks.delete", {"task": running, "force": True})["deleted"] == 1
    with pytest.raises(APICallError) as e:
        client.call("tasks.get_by_id", {"task": running})
    assert api_error(e) == (400, 101)


# ---- hyperparams, requirements, ping -----------------------------------------------------------


def test_hyper_params_edit_modes(client: Client) -> None:
    task_id = new_task(
        client,
        hyperparams={"Args": {"a": {"value": "1"}, "b": {"value": "2"}}, "General": {"g": {"value": "3"}}},
    )

    def params() -> dict[str, str]:
        found = client.call("tasks.get_hyper_params", {"tasks": [task_id]})["params"][0]
        assert found["task"] == task_id
        return {f"{p['section']}.{p['name']}": p["value"] for p in found["hyperparams"]}

    client.call(
        "tasks.edit_hyper_params",
        {"task": task_id, "hyperparams": [{"section": "Args", "name": "a", "value": 10}]},
    )
    assert params() == {"Args.a": "10", "Args.b": "2", "General.g": "3"}
    client.call(
        "tasks.edit_hyper_params",
        {
            "task": task_id,
            "replace_hyperparams": "section",
            "hyperparams": [{"section": "Args", "name": "c", "value": "4"}],
        },
    )
    assert params() == {"Args.c": "4", "General.g": "3"}
    client.call(
        "tasks.edit_hyper_params",
        {
            "task": task_id,
            "replace_hyperparams": "all",
            "hyperparams": [{"section": "New", "name": "n", "value": "5"}],
        },
    )
    assert params() == {"New.n": "5"}
    client.set_status(task_id, "started")
    with pytest.raises(APICallError) as e:
        client.call(
            "tasks.edit_hyper_params",
            {"task": task_id, "hyperparams": [{"section": "Args", "name": "a", "value": "1"}]},
        )
    assert api_error(e) == (400, 110)
    client.call(
        "tasks.edit_hyper_params",
        {
            "task": task_id,
            "hyperparams": [  # properties: any status
                {"section": "properties", "name": "p", "value": "1"}
            ],
        },
    )


def test_set_requirements_and_ping(client: Client) -> None:
    task_id = task_in(client, "in_progress", "")
    client.set_requirements(task_id, {"pip": "numpy==2.0.0\n", "org_pip": "numpy\n"})
    assert client.get_task(task_id)["script"]["requirements"] == {
        "pip": "numpy==2.0.0\n",
        "org_pip": "numpy\n",
    }
    before = client.get_task(task_id)["last_update"]
    client.ping(task_id)
    assert client.get_task(task_id)["last_update"] >= before


def test_edit_output_dest_sets_the_output_destination(client: Client) -> None:
    task_id = new_task(client)
    client.call("tasks.edit", {"task": task_id, "output_dest": "s3://bucket/models"})
    assert client.get_task(task_id)["output"]["destination"] == "s3://bucket/models"


@pytest.mark.parametrize("page_size", [None, 10])
def test_get_all_only_fields_dotted_under_an_empty_object_gives_the_object(
    client: Client, page_size: int | None
) -> None:
    """As MongoDB's projection: `runtime.version` of a task whose runtime is `{}` gives `runtime: {}` (the
    SDK's Dataset.create reads `task.runtime.get(...)`); a missing leaf under an object gives the object
    so far; under a missing or non-object parent, nothing."""
    task_id = new_task(client, script={"repository": "r", "diff": None})
    only = ["id", "runtime.version", "script.repository", "script.diff.x", "script.nested.deep",
            "container.image.tag", "nothing.at_all"]  # fmt: skip
    body = {"id": [task_id], "only_fields": only, **({"page_size": page_size} if page_size else {})}
    found = client.call("tasks.get_all", body)["tasks"]
    assert found == [{"id": task_id, "runtime": {}, "script": {"repository": "r"}, "container": {}}]


def test_delete_answers_deleted_as_a_boolean(client: Client) -> None:
    """ClearML's schema has `deleted` a boolean: the SDK logs "Expected deleted of type bool, got int"."""
    answer = client.call("tasks.delete", {"task": new_task(client)})
    assert answer["deleted"] is True


def test_delete_hyper_params_a_parameter_a_section_and_user_properties(client: Client) -> None:
    """Task.delete_parameter and Task.delete_user_properties: {section, name} items; no name is the whole
    section; a task past created only with force, but for its user properties (section `properties`)."""
    hyperparams = {
        "Args": {"lr": {"value": "0.1"}, "epochs": {"value": "3"}},
        "General": {"x": {"value": "1"}},
        "properties": {"owner": {"value": "me"}, "team": {"value": "a"}},
    }
    task_id = new_task(client, hyperparams=hyperparams)
    answer = client.call(
        "tasks.delete_hyper_params", {"task": task_id, "hyperparams": [{"section": "Args", "name": "lr"}]}
    )
    assert answer == {"deleted": 1}
    client.call("tasks.delete_hyper_params", {"task": task_id, "hyperparams": [{"section": "General"}]})
    params = client.get_task(task_id)["hyperparams"]
    assert set(params) == {"Args", "properties"} and set(params["Args"]) == {"epochs"}
    missing = {"task": task_id, "hyperparams": [{"section": "Args", "name": "nope"}]}
    assert client.call("tasks.delete_hyper_params", missing) == {"deleted": 0}
    client.call("tasks.started", {"task": task_id})
    refused = {"task": task_id, "hyperparams": [{"section": "Args", "name": "epochs"}]}
    with pytest.raises(APICallError) as e:
        client.call("tasks.delete_hyper_params", refused)
    assert api_error(e) == (400, 110)
    both = [{"section": "Args"}, {"section": "Args", "name": "epochs"}]
    with pytest.raises(APICallError) as e:
        client.call("tasks.delete_hyper_params", {"task": task_id, "hyperparams": both, "force": True})
    assert api_error(e)[0] == 400
    props = {"task": task_id, "hyperparams": [{"section": "properties", "name": "team"}]}
    assert client.call("tasks.delete_hyper_params", props) == {"deleted": 1}
    assert client.call("tasks.delete_hyper_params", {**refused, "force": True}) == {"deleted": 1}
    params = client.get_task(task_id)["hyperparams"]
    assert params["Args"] == {} and set(params["properties"]) == {"owner"}
    for body in ({"task": task_id}, {"task": task_id, "hyperparams": [{"name": "x"}]}):
        with pytest.raises(APICallError) as e:
            client.call("tasks.delete_hyper_params", body)
        assert api_error(e)[0] == 400


def test_a_task_always_has_an_artifacts_list(client: Client) -> None:
    """As ClearML's task: `execution.artifacts` is there, empty at first (the SDK's Task.delete reads it
    unguarded), after a clone of a task without one and after a reset, clear_all too."""
    task_id = new_task(client)
    assert client.get_task(task_id)["execution"] == {"artifacts": []}
    given = new_task(client, execution={"framework": "x"})
    assert client.get_task(given)["execution"] == {"framework": "x", "artifacts": []}
    clone = client.call("tasks.clone", {"task": given})["id"]
    assert client.get_task(clone)["execution"]["artifacts"] == []
    client.call("tasks.reset", {"task": given, "force": True, "clear_all": True})
    assert client.get_task(given)["execution"] == {"artifacts": []}
