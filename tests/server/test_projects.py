"""projects.*: create (nested names), get_by_id, get_all, delete."""

from __future__ import annotations

import uuid

import pytest

from clearml_task.api import Client
from clearml_task.errors import APICallError
from testing.servers import api_error


def test_create_and_get(client: Client) -> None:
    name = f"proj-{uuid.uuid4().hex[:6]}"
    project_id = client.call("projects.create", {"name": name, "description": "d", "tags": ["x"]})["id"]
    project = client.call("projects.get_by_id", {"project": project_id})["project"]
    assert (project["name"], project["basename"], project["description"], project["tags"]) == (
        name,
        name,
        "d",
        ["x"],
    )
    assert project["created"] and project["last_update"]


def test_nested_names_create_their_parents(client: Client) -> None:
    root = f"root-{uuid.uuid4().hex[:6]}"
    leaf_id = client.call("projects.create", {"name": f"{root}/mid/leaf"})["id"]
    leaf = client.call("projects.get_by_id", {"project": leaf_id})["project"]
    assert leaf["basename"] == "leaf"
    mid = client.call("projects.get_all", {"name": f"^{root}/mid$"})["projects"]
    parent = client.call("projects.get_all", {"name": f"^{root}$"})["projects"]
    assert len(mid) == len(parent) == 1
    assert leaf["parent"] == mid[0]["id"] and leaf["path"] == [parent[0]["id"], mid[0]["id"]]


@pytest.mark.parametrize("name", ["", "  /  ", "ab"])
def test_bad_names(client: Client, name: str) -> None:
    with pytest.raises(APICallError) as e:
        client.call("projects.create", {"name": name})
    assert e.value.code == 400


def test_duplicate_name(client: Client) -> None:
    name = f"proj-{uuid.uuid4().hex[:6]}"
    client.call("projects.create", {"name": name})
    with pytest.raises(APICallError) as e:
        client.call("projects.create", {"name": name})
    assert api_error(e) == (400, 801)


def test_unknown_id_is_400_401(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("projects.get_by_id", {"project": uuid.uuid4().hex})
    assert api_error(e) == (400, 401)


def test_get_all_only_fields_and_regex(client: Client) -> None:
    prefix = f"pre-{uuid.uuid4().hex[:6]}"
    for suffix in ("one", "two"):
        client.call("projects.create", {"name": f"{prefix}-{suffix}"})
    found = client.call(
        "projects.get_all", {"name": f"^{prefix}-", "only_fields": ["name"], "order_by": ["-name"]}
    )
    assert found["projects"] == [{"name": f"{prefix}-two"}, {"name": f"{prefix}-one"}]


def test_delete_refuses_a_project_with_tasks_unless_forced(client: Client) -> None:
    project_id = client.project_id(f"proj-{uuid.uuid4().hex[:6]}")
    client.create_task({"name": "inside", "type": "training", "project": project_id})
    with pytest.raises(APICallError):
        client.call("projects.delete", {"project": project_id})
    assert client.call("projects.delete", {"project": project_id, "force": True})["deleted"] == 1


def test_update(client: Client) -> None:
    project_id = client.project_id(f"proj-{uuid.uuid4().hex[:6]}")
    result = client.call(
        "projects.update", {"project": project_id, "system_tags": ["hidden"], "description": "d"}
    )
    assert result["updated"] == 1
    project = client.call("projects.get_by_id", {"project": project_id})["project"]
    assert (project["system_tags"], project["description"]) == (["hidden"], "d")
    assert client.call("projects.get_all", {"name": project["name"]})["projects"] == []  # hidden now


def test_rename_and_taken_names(client: Client) -> None:
    first = client.project_id(f"proj-{uuid.uuid4().hex[:6]}")
    second_name = f"proj-{uuid.uuid4().hex[:6]}"
    second = client.project_id(second_name)
    with pytest.raises(APICallError) as e:
        client.call("projects.update", {"project": first, "name": second_name})
    assert api_error(e) == (400, 801)
    renamed = f"group/renamed-{uuid.uuid4().hex[:6]}"
    client.call("projects.update", {"project": second, "name": renamed})
    project = client.call("projects.get_by_id", {"project": second})["project"]
    assert (project["name"], project["basename"]) == (renamed, renamed.rpartition("/")[2])
