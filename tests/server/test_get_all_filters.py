"""get_all's filters that ClearML's SDK documents for Task.get_tasks(task_filter=...) and
Model.query_models(...): search_text, _any_, _all_, user, dotted field paths; and that a filter the server
does not know is a 400, never a silent "everything" (a cleanup script would delete what it listed)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from clearml_task.api import Client
from clearml_task.errors import APICallError
from testing.servers import api_error


def new_project(client: Client, name: str = "") -> str:
    return client.call("projects.create", {"name": name or f"filters {uuid.uuid4().hex}"}).id()


def task(client: Client, project: str, name: str, **fields: Any) -> str:
    return client.create_task({"name": name, "type": "training", "project": project, **fields})


def listed(client: Client, endpoint: str, data: dict[str, Any]) -> set[str]:
    kind = endpoint.split(".")[0]
    return {doc["id"] for doc in client.call(endpoint, data)[kind]}


def test_tasks_search_text_is_a_case_insensitive_substring_of_name_comment_or_id(client: Client) -> None:
    project = new_project(client)
    by_name = task(client, project, "Nightly CLEANUP run")
    by_comment = task(client, project, "other", comment="to cleanup later")
    by_repo = task(client, project, "third", script={"repository": "https://example.com/cleanup-tools.git"})
    untouched = task(client, project, "keep me")
    base = {"project": [project]}
    found = listed(client, "tasks.get_all", {**base, "search_text": "cleanup"})
    assert found == {by_name, by_comment, by_repo}
    assert listed(client, "tasks.get_all", {**base, "search_text": untouched[4:20]}) == {untouched}
    assert listed(client, "tasks.get_all", {**base, "search_text": "nothing like it"}) == set()
    # The same through the paths that read only some fields, and a page of them.
    paged = {**base, "search_text": "CleanUp", "only_fields": ["id"], "page": 0, "page_size": 2}
    assert len(listed(client, "tasks.get_all", paged)) == 2
    only = {**base, "search_text": "CleanUp", "only_fields": ["id"]}
    assert listed(client, "tasks.get_all", only) == {by_name, by_comment, by_repo}


def test_tasks_any_and_all_match_a_regex_in_any_or_every_field(client: Client) -> None:
    project = new_project(client)
    both = task(client, project, "alpha one", comment="alpha comment")
    name_only = task(client, project, "alpha two", comment="other")
    repo = task(client, project, "gamma", script={"repository": "https://github.com/user/repo"})
    task(client, project, "delta")
    base: dict[str, Any] = {"project": [project], "only_fields": ["id"]}
    fields = ["name", "comment"]
    anywhere = {**base, "_any_": {"pattern": "^alpha", "fields": fields}}
    assert listed(client, "tasks.get_all", anywhere) == {both, name_only}
    everywhere = {**base, "_all_": {"pattern": "^alpha", "fields": fields}}
    assert listed(client, "tasks.get_all", everywhere) == {both}
    by_repo = {**base, "_all_": {"pattern": r"github\.com/user", "fields": ["script.repository"]}}
    assert listed(client, "tasks.get_all", by_repo) == {repo}
    paged = {**anywhere, "page": 0, "page_size": 10}
    assert listed(client, "tasks.get_all", paged) == {both, name_only}


def test_tasks_user_filter_keeps_only_those_users_tasks(client: Client) -> None:
    project = new_project(client)
    mine = task(client, project, "mine")
    user = client.call("tasks.get_by_id", {"task": mine})["task"]["user"]
    assert listed(client, "tasks.get_all", {"project": [project], "user": [user]}) == {mine}
    assert listed(client, "tasks.get_all", {"project": [project], "user": ["someone-else"]}) == set()
    page = {"project": [project], "user": ["someone-else"], "only_fields": ["id"], "page_size": 5}
    assert listed(client, "tasks.get_all", page) == set()


def test_models_query_by_metadata_search_text_and_user(client: Client) -> None:
    project = new_project(client)
    owner = task(client, project, "owner")
    made = [
        client.call("models.create", {"name": n, "uri": "file:///w", "project": project, "task": owner}).id()
        for n in ("resnet final", "resnet draft", "bert")
    ]
    client.call(
        "models.add_or_update_metadata",
        {"model": made[0], "metadata": [{"key": "stage", "type": "str", "value": "prod"}]},
    )
    client.call(
        "models.add_or_update_metadata",
        {"model": made[1], "metadata": [{"key": "stage", "type": "str", "value": "dev"}]},
    )
    base = {"project": [project]}
    assert listed(client, "models.get_all", {**base, "metadata.stage.value": "prod"}) == {made[0]}
    either = {**base, "metadata.stage.value": ["prod", "dev"]}
    assert listed(client, "models.get_all", either) == set(made[:2])
    assert listed(client, "models.get_all", {**base, "metadata.other.value": "prod"}) == set()
    assert listed(client, "models.get_all", {**base, "search_text": "RESNET"}) == set(made[:2])
    anywhere = {**base, "_any_": {"pattern": "^ber", "fields": ["name", "comment"]}}
    assert listed(client, "models.get_all", anywhere) == {made[2]}
    assert listed(client, "models.get_all", {**base, "user": ["someone-else"]}) == set()


def test_projects_search_text_shallow_search_and_subprojects(client: Client) -> None:
    top = f"filters {uuid.uuid4().hex}"
    parent = new_project(client, top)
    child = new_project(client, f"{top}/Sub Project")
    inner = task(client, child, "inner")
    by_text = listed(client, "projects.get_all", {"search_text": top.upper()})
    assert by_text == {parent, child}
    shallow = {"search_text": top, "shallow_search": True}
    assert listed(client, "projects.get_all", shallow) == {parent}
    assert listed(client, "tasks.get_all", {"project": [parent]}) == set()
    assert listed(client, "tasks.get_all", {"project": [parent], "include_subprojects": True}) == {inner}


GET_ALLS = ["tasks.get_all", "models.get_all", "projects.get_all", "queues.get_all"]


@pytest.mark.parametrize("endpoint", GET_ALLS)
def test_an_unknown_filter_is_a_400_naming_it(client: Client, endpoint: str) -> None:
    # What ClearML's clients send stays accepted: the SDK's extra-fields requests carry `method`, and
    # ClearML's scroll paging.
    extra = {"method": "get", "scroll_id": "x", "refresh_scroll": False, "size": 10, "search_hidden": True}
    client.call(endpoint, {**extra, "only_fields": ["id"]})
    with pytest.raises(APICallError) as e:
        client.call(endpoint, {"no_such_filter": "x"})
    assert api_error(e) == (400, 12) and "no_such_filter" in str(e.value)


@pytest.mark.parametrize("endpoint", ["projects.get_all", "queues.get_all"])
def test_dotted_paths_are_no_filter_where_clearml_takes_none(client: Client, endpoint: str) -> None:
    with pytest.raises(APICallError) as e:
        client.call(endpoint, {"metadata.stage.value": "x"})
    assert api_error(e) == (400, 12) and "metadata.stage.value" in str(e.value)


@pytest.mark.parametrize(
    "data",
    [
        {"_any_": "name"},
        {"_any_": {"pattern": "x"}},
        {"_any_": {"pattern": "x", "fields": []}},
        {"_all_": {"pattern": "(", "fields": ["name"]}},
        {"_all_": {"pattern": "x", "fields": ["name.."]}},
        {"_all_": {"pattern": "x", "fields": [7]}},
        {"_any_": {"pattern": "x", "fields": ["name"], "other": 1}},
        {"_any_": {"pattern": "(a|aa){999}b", "fields": ["name"]}},
        {"search_text": ["a"]},
        {"search_text": "x" * 5000},
        {"user": 7},
        {"metadata.stage.value": {"a": 1}},
        {"metadata..value": "x"},
    ],
)
def test_malformed_filters_are_400(client: Client, data: dict[str, Any]) -> None:
    endpoint = "models.get_all" if any("metadata" in key for key in data) else "tasks.get_all"
    with pytest.raises(APICallError) as e:
        client.call(endpoint, data)
    assert api_error(e)[0] == 400
