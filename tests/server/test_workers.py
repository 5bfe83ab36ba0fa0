"""workers.*: register, status_report (which marks the task's worker), get_all, unregister, timeouts."""

from __future__ import annotations

import time
import uuid

import pytest

from clearml_task.api import Client
from clearml_task.errors import APICallError
from testing.servers import api_error


def test_register_report_list_unregister(client: Client) -> None:
    worker = f"host-{uuid.uuid4().hex[:6]}:0"
    queue = client.queue_id(f"q-{uuid.uuid4().hex[:6]}", create=True)
    client.register_worker(worker, [queue])
    listed = {w["id"]: w for w in client.call("workers.get_all")["workers"]}
    assert listed[worker]["queues"][0]["id"] == queue
    assert listed[worker]["register_time"] and listed[worker]["last_activity_time"]

    task_id = client.create_task({"name": "worked on", "type": "training"})
    client.status_report(worker, task_id=task_id, queue_id=queue, machine_stats={"cpu_usage": [12.5]})
    listed = {w["id"]: w for w in client.call("workers.get_all")["workers"]}
    assert listed[worker]["task"]["id"] == task_id
    assert listed[worker]["machine_stats"] == {"cpu_usage": [12.5]}
    assert client.get_task(task_id)["last_worker"] == worker

    client.unregister_worker(worker)
    assert worker not in {w["id"] for w in client.call("workers.get_all")["workers"]}


def test_status_report_registers_an_unknown_worker(client: Client) -> None:
    worker = f"host-{uuid.uuid4().hex[:6]}:1"
    client.status_report(worker)
    assert worker in {w["id"] for w in client.call("workers.get_all")["workers"]}


def test_a_silent_worker_lapses_after_its_timeout(client: Client) -> None:
    worker = f"host-{uuid.uuid4().hex[:6]}:2"
    client.register_worker(worker, [], timeout=1)
    assert worker in {w["id"] for w in client.call("workers.get_all")["workers"]}
    time.sleep(1.5)
    assert worker not in {w["id"] for w in client.call("workers.get_all")["workers"]}


def test_bad_references(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.register_worker("w:0", [uuid.uuid4().hex])
    assert api_error(e) == (400, 701)
    with pytest.raises(APICallError) as e:
        client.status_report("w:0", task_id=uuid.uuid4().hex)
    assert api_error(e) == (400, 101)
    with pytest.raises(APICallError) as e:
        client.call("workers.register", {})
    assert api_error(e) == (400, 11)


def test_runtime_properties(client: Client) -> None:
    worker = f"host-{uuid.uuid4().hex[:6]}:3"
    client.register_worker(worker, [])
    assert client.call("workers.get_runtime_properties", {"worker": worker}) == {"runtime_properties": []}
    client.call(
        "workers.set_runtime_properties",
        {
            "worker": worker,
            "runtime_properties": [
                {"key": "force:services_mode", "value": 4},
                {"key": "uptime", "value": "08:00-18:00"},
            ],
        },
    )
    client.call(
        "workers.set_runtime_properties",
        {"worker": worker, "runtime_properties": [{"key": "uptime", "value": "09:00-17:00"}]},
    )
    found = client.call("workers.get_runtime_properties", {"worker": worker})["runtime_properties"]
    assert {p["key"]: p["value"] for p in found} == {"force:services_mode": "4", "uptime": "09:00-17:00"}
    with pytest.raises(APICallError) as e:
        client.call(
            "workers.set_runtime_properties", {"worker": worker, "runtime_properties": [{"value": 1}]}
        )
    assert api_error(e) == (400, 12)
