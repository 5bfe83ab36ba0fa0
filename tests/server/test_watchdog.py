"""The non-responsive tasks watchdog, and log lines sent twice stored once."""

from __future__ import annotations

import time
from pathlib import Path

from clearml_task.api import Client, Session
from clearml_task.server import watchdog
from clearml_task.server.app import App
from testing.servers import embedded_config, http_config, start_server, stop_server


def running_task(client: Client, worker: str = "host:0") -> tuple[str, str]:
    queue = client.queue_id("wd", create=True)
    task_id = client.create_task({"name": "watched", "type": "training"})
    client.enqueue(task_id, queue)
    assert client.next_task(queue) == task_id
    client.call("tasks.dequeue", {"task": task_id, "new_status": "in_progress"})
    client.register_worker(worker, [queue])
    client.status_report(worker, task_id=task_id, queue_id=queue)
    return task_id, queue


def test_defaults_are_clearmls() -> None:
    assert watchdog.timeout_from({}) == 7200
    assert watchdog.timeout_from({watchdog.TIMEOUT_ENV: "5"}) == 5
    assert watchdog.interval(7200) == 900
    assert watchdog.interval(2) == 0.5


def test_ephemeral_mode_checks_when_the_store_opens(tmp_path: Path) -> None:
    config = embedded_config(tmp_path)
    client = Client(Session(config))
    task_id, queue = running_task(client)
    App(config.server_dir, {watchdog.TIMEOUT_ENV: "600"})  # updated just now: it goes on
    assert client.get_task(task_id)["status"] == "in_progress"
    time.sleep(1.2)
    App(config.server_dir, {watchdog.TIMEOUT_ENV: "1"})
    task = client.get_task(task_id)
    assert (task["status"], task["status_reason"], task["status_message"]) == (
        "stopped", watchdog.REASON, watchdog.REASON)  # fmt: skip
    assert task["last_worker"] == "host:0"
    (worker,) = client.call("workers.get_all")["workers"]
    assert "task" not in worker
    assert all(not q["entries"] for q in client.queues() if q["id"] == queue)


def test_the_server_stops_a_silent_task_within_timeout_and_one_pass(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server", "--non-responsive-timeout", "2")
    try:
        client = Client(Session(http_config(server, tmp_path)))
        task_id, _ = running_task(client)
        talking, _ = running_task(client, "host:1")
        start = time.monotonic()
        while client.get_task(task_id)["status"] == "in_progress":
            client.ping(talking)
            client.send_log(talking, [("info", "alive")])
            assert time.monotonic() - start < 2 + watchdog.interval(2) + 2
            time.sleep(0.2)
        assert client.get_task(task_id)["status_reason"] == watchdog.REASON
        assert client.get_task(talking)["status"] == "in_progress"  # pings and logs keep it going
    finally:
        stop_server(server)


def test_a_log_line_sent_again_is_stored_once(client: Client) -> None:
    task_id = client.create_task({"name": "events", "type": "training"})
    lines = [("info", "first"), ("info", "second")]
    for _ in range(2):  # a retry of a batch whose answer was lost
        client.send_log(task_id, lines, stamps=[1, 1], seqs=["run:1", "run:2"])
    client.send_log(task_id, [("info", "third")], stamps=[1], seqs=["run:3"])
    client.send_log(task_id, [("info", "no seq")] * 2, stamps=[2, 2])
    assert [e["msg"] for e in client.task_log(task_id)] == ["first", "second", "third", "no seq", "no seq"]
