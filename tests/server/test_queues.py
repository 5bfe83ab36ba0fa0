"""queues.*: create, list, default, entries, get_next_task, reordering, update, delete."""

from __future__ import annotations

import uuid

import pytest

from clearml_task.api import Client
from clearml_task.errors import APICallError
from testing.servers import api_error


def fresh_queue(client: Client) -> str:
    return client.queue_id(f"q-{uuid.uuid4().hex[:8]}", create=True)


def filled(client: Client, count: int) -> tuple[str, list[str]]:
    queue = fresh_queue(client)
    ids = [client.create_task({"name": f"entry {i}", "type": "training"}) for i in range(count)]
    for task_id in ids:
        client.call("queues.add_task", {"queue": queue, "task": task_id})
    return queue, ids


def entries(client: Client, queue: str) -> list[str]:
    return [e["task"] for e in client.call("queues.get_by_id", {"queue": queue})["queue"]["entries"]]


def test_create_get_and_list(client: Client) -> None:
    name = f"q-{uuid.uuid4().hex[:8]}"
    queue_id = client.call("queues.create", {"name": name, "tags": ["gpu"]})["id"]
    queue = client.call("queues.get_by_id", {"queue": queue_id})["queue"]
    assert queue["name"] == name and queue["tags"] == ["gpu"] and queue["entries"] == []
    assert queue["created"] and queue["display_name"] == name
    listed = client.call("queues.get_all", {"name": f"^{name}$"})["queues"]
    assert [q["id"] for q in listed] == [queue_id]
    assert client.call("queues.get_all", {"tags": ["gpu"], "id": [queue_id]})["queues"][0]["id"] == queue_id


def test_names_are_unique(client: Client) -> None:
    name = f"q-{uuid.uuid4().hex[:8]}"
    client.call("queues.create", {"name": name})
    with pytest.raises(APICallError) as e:
        client.call("queues.create", {"name": name})
    assert e.value.code == 400


def test_default_queue_exists_from_the_start(client: Client) -> None:
    default = client.call("queues.get_default")
    assert default["name"] == "default"
    queue = client.call("queues.get_by_id", {"queue": default["id"]})["queue"]
    assert "default" in queue["system_tags"]


def test_unknown_queue_is_400_701(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("queues.get_by_id", {"queue": uuid.uuid4().hex})
    assert api_error(e) == (400, 701)


def test_get_next_task_pops_in_order_then_answers_empty(client: Client) -> None:
    queue, ids = filled(client, 3)
    got = [client.call("queues.get_next_task", {"queue": queue})["entry"] for _ in ids]
    assert [entry["task"] for entry in got] == ids
    assert all(entry["added"] for entry in got)
    assert client.call("queues.get_next_task", {"queue": queue}) == {}
    assert all(client.get_task(t)["status"] == "created" for t in ids)  # the status is not touched


def test_add_twice_is_400_706_and_remove(client: Client) -> None:
    queue, ids = filled(client, 2)
    with pytest.raises(APICallError) as e:
        client.call("queues.add_task", {"queue": queue, "task": ids[0]})
    assert api_error(e) == (400, 706)
    assert client.call("queues.remove_task", {"queue": queue, "task": ids[0]}) == {"removed": 1}
    assert client.call("queues.remove_task", {"queue": queue, "task": ids[0]}) == {"removed": 0}
    assert entries(client, queue) == [ids[1]]


def test_reordering_entries(client: Client) -> None:
    queue, ids = filled(client, 5)
    a, b, c, d, e = ids
    assert client.call("queues.move_task_forward", {"queue": queue, "task": d, "count": 2})["position"] == 1
    assert entries(client, queue) == [a, d, b, c, e]
    assert client.call("queues.move_task_backward", {"queue": queue, "task": a})["position"] == 1
    assert entries(client, queue) == [d, a, b, c, e]
    assert client.call("queues.move_task_to_back", {"queue": queue, "task": d})["position"] == 4
    assert entries(client, queue) == [a, b, c, e, d]
    assert client.call("queues.move_task_to_front", {"queue": queue, "task": e})["position"] == 0
    assert entries(client, queue) == [e, a, b, c, d]
    assert client.call("queues.move_task_forward", {"queue": queue, "task": b, "count": 99})["position"] == 0
    assert entries(client, queue) == [b, e, a, c, d]
    outsider = client.create_task({"name": "not queued", "type": "training"})
    with pytest.raises(APICallError) as err:
        client.call("queues.move_task_to_front", {"queue": queue, "task": outsider})
    assert api_error(err) == (400, 703)


def test_max_task_entries(client: Client) -> None:
    queue, ids = filled(client, 4)
    got = client.call("queues.get_by_id", {"queue": queue, "max_task_entries": 2})["queue"]
    assert [e["task"] for e in got["entries"]] == ids[:2]


def test_update(client: Client) -> None:
    queue = fresh_queue(client)
    new_name = f"renamed-{uuid.uuid4().hex[:6]}"
    result = client.call("queues.update", {"queue": queue, "name": new_name, "tags": ["t"]})
    assert result["updated"] == 1
    got = client.call("queues.get_by_id", {"queue": queue})["queue"]
    assert (got["name"], got["tags"]) == (new_name, ["t"])


def test_delete_refuses_a_non_empty_queue_unless_forced(client: Client) -> None:
    queue = fresh_queue(client)
    task_id = client.create_task({"name": "queued one", "type": "training"})
    client.enqueue(task_id, queue)
    with pytest.raises(APICallError) as e:
        client.call("queues.delete", {"queue": queue})
    assert api_error(e) == (400, 702)
    assert client.call("queues.delete", {"queue": queue, "force": True}) == {"deleted": 1}
    assert client.get_task(task_id)["status"] == "created"


def test_update_refuses_a_taken_name(client: Client) -> None:
    first, second = fresh_queue(client), fresh_queue(client)
    taken = client.call("queues.get_by_id", {"queue": first})["queue"]["name"]
    with pytest.raises(APICallError) as e:
        client.call("queues.update", {"queue": second, "name": taken})
    assert api_error(e) == (400, 801)


def test_get_num_entries_counts_a_queues_entries(client: Client) -> None:
    """Task.get_num_enqueued_tasks: queues.get_num_entries answers {num}; an unknown queue is 400/701."""
    queue, _ = filled(client, 3)
    assert client.call("queues.get_num_entries", {"queue": queue}) == {"num": 3}
    client.call("queues.get_next_task", {"queue": queue})
    assert client.call("queues.get_num_entries", {"queue": queue}) == {"num": 2}
    with pytest.raises(APICallError) as e:
        client.call("queues.get_num_entries", {"queue": uuid.uuid4().hex})
    assert api_error(e) == (400, 701)
