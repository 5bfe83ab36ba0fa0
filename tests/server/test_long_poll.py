"""queues.get_next_task's long-poll form (`wait`, `then_queues`), which ClearML's server does not have: a
waiting call takes an entry added while it waits, in this process or another; several queues by priority;
bad values are a 400; a server that may not wait says so; a client that hung up takes nothing."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from clearml_task.api import Client, Session
from clearml_task.config import ServerConfig
from clearml_task.errors import APICallError
from clearml_task.server.app import App
from testing.servers import ROOT, embedded_config
from testing.waitress_thread import serving

# A waiting call that did not wake would answer {} only after this long: every join below is shorter.
WAIT = 30
WOKEN_WITHIN = 20


def fresh_queue(client: Client) -> str:
    return client.queue_id(f"q-{uuid.uuid4().hex[:8]}", create=True)


def new_task(client: Client) -> str:
    return client.create_task({"name": f"long poll {uuid.uuid4().hex[:6]}", "type": "training"})


class Waiter(threading.Thread):
    """queues.get_next_task with `body`, in a thread of its own; `answer` once it has returned."""

    def __init__(self, client: Client, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.client, self.body = client, body
        self.answer: dict[str, Any] | None = None

    def run(self) -> None:
        self.answer = self.client.call("queues.get_next_task", self.body)

    def waiting(self) -> bool:
        """Still in the call a while after it started (an empty queue without `wait` answers at once)."""
        self.join(0.5)
        return self.is_alive()


def test_a_waiting_call_takes_the_entry_added_while_it_waits(client: Client) -> None:
    queue, task_id = fresh_queue(client), new_task(client)
    waiter = Waiter(client, {"queue": queue, "wait": WAIT})
    waiter.start()
    assert waiter.waiting()
    client.call("queues.add_task", {"queue": queue, "task": task_id})
    waiter.join(WOKEN_WITHIN)
    assert not waiter.is_alive()
    assert waiter.answer is not None and waiter.answer["entry"]["task"] == task_id
    assert "queue" not in waiter.answer  # without then_queues the answer is ClearML's shape
    assert client.call("queues.get_next_task", {"queue": queue}) == {}


def test_an_entry_another_process_adds_ends_the_wait(tmp_path: Path) -> None:
    """Ephemeral mode: processes share the SQLite file, and nothing but the file tells them of a change."""
    client = Client(Session(embedded_config(tmp_path / "shared"), retries=2))
    queue, task_id = fresh_queue(client), new_task(client)
    waiter = Waiter(client, {"queue": queue, "wait": WAIT})
    waiter.start()
    assert waiter.waiting()
    code = (
        "import sys; from clearml_task.api import Client, Session;"
        "from testing.servers import embedded_config; from pathlib import Path;"
        "c = Client(Session(embedded_config(Path(sys.argv[1]))));"
        "c.call('queues.add_task', {'queue': sys.argv[2], 'task': sys.argv[3]})"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "shared"), queue, task_id], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    waiter.join(WOKEN_WITHIN)
    assert waiter.answer is not None and waiter.answer["entry"]["task"] == task_id


def test_then_queues_takes_by_priority_and_names_the_queue(client: Client) -> None:
    high, low = fresh_queue(client), fresh_queue(client)
    low_task, high_task = new_task(client), new_task(client)
    client.call("queues.add_task", {"queue": low, "task": low_task})
    client.call("queues.add_task", {"queue": high, "task": high_task})
    body = {"queue": high, "then_queues": [low], "wait": WAIT}
    first = client.call("queues.get_next_task", body)
    second = client.call("queues.get_next_task", body)
    assert (first["queue"], first["entry"]["task"]) == (high, high_task)
    assert (second["queue"], second["entry"]["task"]) == (low, low_task)
    waiter = Waiter(client, body)  # both empty now: an entry in the second ends the wait
    waiter.start()
    assert waiter.waiting()
    late = new_task(client)
    client.call("queues.add_task", {"queue": low, "task": late})
    waiter.join(WOKEN_WITHIN)
    assert waiter.answer is not None and (waiter.answer["queue"], waiter.answer["entry"]["task"]) == (
        low,
        late,
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"wait": -1},
        {"wait": WAIT + 1},
        {"wait": "soon"},
        {"wait": [1]},
        {"wait": {"s": 1}},
        {"wait": True},
        {"then_queues": "one"},
        {"then_queues": [1]},
        {"then_queues": [None]},
        {"with_task": [True]},
    ],
)
def test_malformed_long_poll_fields_are_a_400(client: Client, fields: dict[str, Any]) -> None:
    queue = fresh_queue(client)
    with pytest.raises(APICallError) as e:
        client.call("queues.get_next_task", {"queue": queue, **fields})
    assert e.value.code == 400 and next(iter(fields)) in e.value.message


def test_an_unknown_queue_among_then_queues_is_the_unknown_queue_error(client: Client) -> None:
    with pytest.raises(APICallError) as e:
        client.call("queues.get_next_task", {"queue": fresh_queue(client), "then_queues": [uuid.uuid4().hex]})
    assert (e.value.code, e.value.subcode) == (400, 701)


def test_with_task_the_answer_holds_the_document_of_the_task_taken(client: Client) -> None:
    queue = fresh_queue(client)
    first, second = new_task(client), new_task(client)
    for task_id in (first, second):
        client.enqueue(task_id, queue)
    assert "task" not in client.call("queues.get_next_task", {"queue": queue})  # ClearML's answer
    found = client.call("queues.get_next_task", {"queue": queue, "with_task": True})
    assert found["entry"]["task"] == second
    assert found["task"] == client.get_task(second)  # as tasks.get_by_id gives it
    assert client.call("queues.get_next_task", {"queue": queue, "with_task": True}) == {}  # empty: nothing
    client.enqueue(first, queue)
    assert client.take_next([queue], 0, with_task=True) == (queue, first, client.get_task(first))
    client.enqueue(first, queue)
    assert client.take_next([queue], 0) == (queue, first, None)


def test_server_info_says_how_long_it_may_wait(client: Client, tmp_path: Path) -> None:
    assert client.call("server.info")["get_next_task_max_wait"] == WAIT
    assert client.long_poll() == (WAIT, True)
    app = App(tmp_path / "no-waits", environ={}, max_wait=0)  # `clearml-launcher server --max-wait 0`
    token = app.tokens.issue(app.users.first)
    code, envelope = app.handle("/server.info", b"{}", authorization=f"Bearer {token}")
    assert code == 200 and "get_next_task_max_wait" not in envelope["data"]


def test_past_max_waiters_a_call_answers_at_once(tmp_path: Path) -> None:
    """Each waiting call holds one of the HTTP server's threads: the ones past the limit do not wait."""
    with serving(tmp_path / "server", threads=3) as (served, _):  # 3 threads: one may wait
        keys = served.app.keys
        config = ServerConfig(served.url, None, None, keys.access_key, keys.secret_key, "test", tmp_path)
        client = Client(Session(config, retries=2))
        first, second = fresh_queue(client), fresh_queue(client)
        waiter = Waiter(client, {"queue": first, "wait": WAIT})
        waiter.start()
        assert waiter.waiting()
        assert client.call("queues.get_next_task", {"queue": second, "wait": WAIT}) == {}
        assert waiter.is_alive()  # the first still waits; the second answered without waiting
        task_id = new_task(client)
        client.call("queues.add_task", {"queue": first, "task": task_id})
        waiter.join(WOKEN_WITHIN)
        assert waiter.answer is not None and waiter.answer["entry"]["task"] == task_id


def test_a_client_that_hung_up_takes_nothing(tmp_path: Path) -> None:
    """The entry added after a waiting client went away stays in its queue for the next one."""
    with serving(tmp_path / "server") as (served, _):
        keys = served.app.keys
        config = ServerConfig(served.url, None, None, keys.access_key, keys.secret_key, "test", tmp_path)
        client = Client(Session(config, retries=2))
        queue, task_id = fresh_queue(client), new_task(client)
        body = json.dumps({"queue": queue, "wait": WAIT}).encode()
        request = (
            f"POST /queues.get_next_task HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {client.session.token()}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        with socket.create_connection((served.host, served.port)) as hung_up:
            hung_up.sendall(request)
            time.sleep(0.5)  # the server reads the request and waits
        time.sleep(0.5)  # ...and sees the connection closed
        client.call("queues.add_task", {"queue": queue, "task": task_id})
        time.sleep(0.5)  # a waiting call that missed the hang-up would have taken the entry by now
        entries = client.call("queues.get_by_id", {"queue": queue})["queue"]["entries"]
        assert [e["task"] for e in entries] == [task_id]
