"""tasks.* on artifacts and configuration objects, and the events the SDK reads back (debug images,
plots, single values, metric names)."""

from __future__ import annotations

import pytest

from clearml_task.api import Client
from clearml_task.errors import APICallError
from testing.servers import api_error


def new_task(client: Client) -> str:
    return client.create_task({"name": "objects", "type": "training"})


def artifacts(client: Client, task_id: str) -> list[dict]:
    found: list[dict] = client.call("tasks.get_by_id", {"task": task_id})["task"]["execution"]["artifacts"]
    return found


def test_artifacts_are_added_updated_and_deleted_by_key_and_mode(client: Client) -> None:
    task_id = new_task(client)
    first = {"key": "data", "type": "dict", "uri": "http://h/files/a.json", "hash": "1"}
    assert client.call("tasks.add_or_update_artifacts", {"task": task_id, "artifacts": [first]}) == {
        "updated": 1
    }
    client.call("tasks.add_or_update_artifacts", {"task": task_id, "artifacts": [{**first, "hash": "2"}]})
    client.call(
        "tasks.add_or_update_artifacts",
        {"task": task_id, "artifacts": [{"key": "data", "type": "dict", "mode": "input"}]},
    )
    found = artifacts(client, task_id)
    assert [(a["key"], a["mode"], a.get("hash")) for a in found] == [
        ("data", "output", "2"),
        ("data", "input", None),
    ]
    deleted = client.call("tasks.delete_artifacts", {"task": task_id, "artifacts": [{"key": "data"}]})
    assert deleted == {"deleted": 1}
    assert [a["mode"] for a in artifacts(client, task_id)] == ["input"]


def test_an_artifact_needs_a_key_and_a_type_and_a_known_mode(client: Client) -> None:
    task_id = new_task(client)
    with pytest.raises(APICallError) as e:
        client.call("tasks.add_or_update_artifacts", {"task": task_id, "artifacts": [{"key": "k"}]})
    assert api_error(e) == (400, 12)
    with pytest.raises(APICallError) as e:
        client.call(
            "tasks.add_or_update_artifacts",
            {"task": task_id, "artifacts": [{"key": "k", "type": "t", "mode": "sideways"}]},
        )
    assert api_error(e) == (400, 12)


def test_configuration_objects(client: Client) -> None:
    task_id = new_task(client)
    items = [
        {"name": "model config", "value": "{}", "type": "dictionary"},
        {"name": "empty", "value": ""},
    ]
    client.call("tasks.edit_configuration", {"task": task_id, "configuration": items})
    names = client.call("tasks.get_configuration_names", {"tasks": [task_id]})
    assert names == {"configurations": [{"task": task_id, "names": ["model config"]}]}
    got = client.call("tasks.get_configurations", {"tasks": [task_id], "names": ["model config"]})
    assert got["configurations"][0]["configuration"] == [items[0]]
    client.call(
        "tasks.edit_configuration",
        {"task": task_id, "configuration": [{"name": "b", "value": "1"}], "replace_configuration": True},
    )
    assert client.call("tasks.get_configuration_names", {"tasks": [task_id]})["configurations"][0][
        "names"
    ] == ["b"]
    assert client.call("tasks.delete_configuration", {"task": task_id, "configuration": ["b", "x"]}) == {
        "deleted": 1
    }


def test_configuration_items_need_a_name(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("tasks.edit_configuration", {"task": new_task(client), "configuration": [{"value": "1"}]})
    assert api_error(e) == (400, 12)


def image(task_id: str, iteration: int, variant: str = "noise") -> dict:
    return {
        "type": "training_debug_image",
        "task": task_id,
        "metric": "samples",
        "variant": variant,
        "iter": iteration,
        "url": f"http://h/files/{iteration}.jpeg",
    }


def test_debug_images_page_newest_first_and_end_empty(client: Client) -> None:
    task_id = new_task(client)
    client.call("events.add_batch", [image(task_id, 0), image(task_id, 1), image(task_id, 1, "other")])
    request = {"metrics": [{"task": task_id, "metric": "samples", "variants": ["noise"]}], "iters": 1}
    first = client.call("events.debug_images", request)
    assert [[e["url"] for e in i["events"]] for i in first["metrics"][0]["iterations"]] == [
        ["http://h/files/1.jpeg"]
    ]
    second = client.call("events.debug_images", {**request, "scroll_id": first["scroll_id"]})
    assert [i["iter"] for i in second["metrics"][0]["iterations"]] == [0]
    third = client.call("events.debug_images", {**request, "scroll_id": second["scroll_id"]})
    assert third["metrics"][0]["iterations"] == []


def test_plots_single_values_and_metric_names(client: Client) -> None:
    task_id = new_task(client)
    client.call(
        "events.add_batch",
        [
            {"type": "plot", "task": task_id, "metric": "table", "variant": "t", "iter": 0, "plot_str": "{}"},
            {
                "type": "training_stats_scalar",
                "task": task_id,
                "metric": "Summary",
                "variant": "acc",
                "iter": -(2**31),
                "value": 0.9,
            },
            {
                "type": "training_stats_scalar",
                "task": task_id,
                "metric": "loss",
                "variant": "v",
                "iter": 1,
                "value": 1.0,
            },
        ],
    )
    plots = client.call("events.get_task_plots", {"task": task_id, "iters": 1})
    assert [p["metric"] for p in plots["plots"]] == ["table"]
    values = client.call("events.get_task_single_value_metrics", {"tasks": [task_id]})["tasks"][0]["values"]
    assert [(v["metric"], v["variant"], v["value"]) for v in values] == [("Summary", "acc", 0.9)]
    names = client.call("events.get_task_metrics", {"tasks": [task_id], "event_type": "plot"})
    assert names == {"metrics": [{"task": task_id, "metrics": ["table"]}]}
