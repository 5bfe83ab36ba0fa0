"""models.* and tasks.add_or_update_model: the shapes ClearML's SDK sends and reads back."""

from __future__ import annotations

import pytest

from clearml_task.api import Client
from clearml_task.errors import APICallError
from testing.servers import api_error


def new_task(client: Client) -> str:
    return client.create_task({"name": "models", "type": "training"})


def test_create_get_edit_and_list(client: Client) -> None:
    task_id = new_task(client)
    created = client.call("models.create", {"name": "net", "uri": "http://x/files/a/w.bin", "task": task_id})
    assert created["created"] is True
    model_id = created["id"]
    model = client.call("models.get_by_id", {"model": model_id})["model"]
    assert (model["name"], model["uri"], model["task"], model["ready"]) == (
        "net",
        "http://x/files/a/w.bin",
        task_id,
        False,
    )
    edited = client.call("models.edit", {"model": model_id, "comment": "better", "framework": "PyTorch"})
    assert edited["updated"] == 1 and edited["fields"]["comment"] == "better"
    client.call("models.update", {"model": model_id, "iteration": 7})
    found = client.call("models.get_all", {"task": [task_id], "only_fields": ["id", "framework"]})["models"]
    assert found == [{"id": model_id, "framework": "PyTorch"}]
    assert client.call("models.get_by_id", {"model": model_id})["model"]["last_iteration"] == 7


def test_create_needs_a_name_and_a_uri_and_a_real_task(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("models.create", {"name": "net"})
    assert api_error(e) == (400, 11)
    with pytest.raises(APICallError) as e:
        client.call("models.create", {"name": "net", "uri": "file:///w", "task": "nope"})
    assert api_error(e) == (400, 101)


def test_unknown_model_is_invalid_model_id(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("models.get_by_id", {"model": "nope"})
    assert api_error(e) == (400, 201)


def test_update_for_task_makes_the_tasks_output_model(client: Client) -> None:
    task_id = new_task(client)
    made = client.call("models.update_for_task", {"task": task_id, "uri": "file:///w.bin", "iteration": 3})
    assert made["created"] is True
    task = client.call("tasks.get_by_id", {"task": task_id})["task"]
    assert task["models"]["output"] == [{"name": "models", "model": made["id"]}]
    again = client.call("models.update_for_task", {"task": task_id, "override_model_id": made["id"]})
    assert again["id"] == made["id"] and again["created"] is False


def test_set_ready_publish_and_metadata(client: Client) -> None:
    model_id = client.call("models.create", {"name": "net", "uri": "file:///w"})["id"]
    assert client.call("models.set_ready", {"model": model_id})["updated"] == 1
    assert client.call("models.get_all", {"ready": True, "id": [model_id]})["models"][0]["ready"] is True
    second = client.call("models.create", {"name": "other", "uri": "file:///o"})["id"]
    published = client.call("models.publish_many", {"ids": [second]})
    assert [s["id"] for s in published["succeeded"]] == [second]
    client.call(
        "models.add_or_update_metadata",
        {"model": model_id, "metadata": [{"key": "k", "type": "str", "value": "v"}]},
    )
    model = client.call("models.get_by_id", {"model": model_id})["model"]
    assert model["metadata"] == {"k": {"key": "k", "type": "str", "value": "v"}}
    client.call("models.delete_metadata", {"model": model_id, "keys": ["k"]})
    assert client.call("models.get_by_id", {"model": model_id})["model"]["metadata"] == {}


def test_metadata_items_are_checked(client: Client) -> None:
    model_id = client.call("models.create", {"name": "net", "uri": "file:///w"})["id"]
    with pytest.raises(APICallError) as e:
        client.call("models.add_or_update_metadata", {"model": model_id, "metadata": [{"value": "no key"}]})
    assert api_error(e) == (400, 12)


def test_delete(client: Client) -> None:
    model_id = client.call("models.create", {"name": "net", "uri": "file:///w"})["id"]
    assert client.call("models.delete", {"model": model_id}) == {"deleted": True, "url": "file:///w"}
    with pytest.raises(APICallError) as e:
        client.call("models.get_by_id", {"model": model_id})
    assert api_error(e) == (400, 201)


def test_add_or_update_model_links_input_and_output(client: Client) -> None:
    task_id = new_task(client)
    model_id = client.call("models.create", {"name": "net", "uri": "file:///w"})["id"]
    client.call(
        "tasks.add_or_update_model", {"task": task_id, "name": "in", "model": model_id, "type": "input"}
    )
    client.call(
        "tasks.add_or_update_model", {"task": task_id, "name": "in", "model": model_id, "type": "input"}
    )
    task = client.call("tasks.get_by_id", {"task": task_id})["task"]
    assert task["models"]["input"] == [{"name": "in", "model": model_id}]
    client.call("tasks.delete_models", {"task": task_id, "models": [{"name": "in", "type": "input"}]})
    assert client.call("tasks.get_by_id", {"task": task_id})["task"]["models"]["input"] == []
    with pytest.raises(APICallError) as e:
        client.call(
            "tasks.add_or_update_model", {"task": task_id, "name": "x", "model": model_id, "type": "side"}
        )
    assert api_error(e) == (400, 12)


def test_archive_many_and_unarchive_many(client: Client) -> None:
    """Model.archive() / unarchive(): the `archived` system tag, ClearML's batch answer; an unknown id is
    one of `failed`, not the call's error."""
    model_id = client.call("models.create", {"name": "arch", "uri": "s3://b/w.bin", "system_tags": ["keep"]})[
        "id"
    ]
    answer = client.call("models.archive_many", {"ids": [model_id, "nope"]})
    assert answer["succeeded"] == [{"id": model_id, "archived": True}]
    assert [(f["id"], f["error"]["codes"]) for f in answer["failed"]] == [("nope", [400, 201])]
    assert client.call("models.get_by_id", {"model": model_id})["model"]["system_tags"] == [
        "keep",
        "archived",
    ]
    client.call("models.archive_many", {"ids": [model_id]})  # archived once
    assert client.call("models.get_by_id", {"model": model_id})["model"]["system_tags"] == [
        "keep",
        "archived",
    ]
    answer = client.call("models.unarchive_many", {"ids": [model_id]})
    assert answer == {"succeeded": [{"id": model_id, "unarchived": True}], "failed": []}
    assert client.call("models.get_by_id", {"model": model_id})["model"]["system_tags"] == ["keep"]
    with pytest.raises(APICallError) as e:
        client.call("models.archive_many", {"ids": []})
    assert api_error(e)[0] == 400
