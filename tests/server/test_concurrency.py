"""Several OS processes, each with its own in-process server, drain one queue in one SQLite file.

This is the promise the store makes (BEGIN IMMEDIATE serialises read-modify-write cycles across
processes): queues.get_next_task hands every entry to exactly one caller, none twice, none lost.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from clearml_task.api import Session
from clearml_task.config import ServerConfig
from clearml_task.server.app import DB_FILE

WORKERS = 4
TASKS = 400
DEADLINE_SEC = 50.0  # a hang fails the test instead of blocking the run; nothing is asserted on time

# One worker: open the embedded server on the shared data dir, say it is ready, wait for the start
# signal, then pop entries until the queue answers {} and write the task ids it got, one a line.
WORKER = """
import sys, time
from pathlib import Path
from clearml_task.api import Session
from clearml_task.config import ServerConfig

home, queue, ready, go, out = sys.argv[1:6]
session = Session(ServerConfig(None, None, None, None, None, "embedded", Path(home)), retries=2)
session.token()  # log in before the start, so the race is only over the queue
Path(ready).touch()
deadline = time.monotonic() + 30
while not Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.001)
got = []
while True:
    entry = session.call("queues.get_next_task", {"queue": queue}).get("entry")
    if not entry:
        break
    got.append(entry["task"])
Path(out).write_text("".join(f"{task}\\n" for task in got))
"""


def _fill_queue(home: Path) -> tuple[str, list[str]]:
    session = Session(ServerConfig(None, None, None, None, None, "embedded", home), retries=2)
    project = session.call("projects.create", {"name": "concurrency"})["id"]
    queue = session.call("queues.create", {"name": "drained"})["id"]
    ids = []
    for n in range(TASKS):
        task = session.call("tasks.create", {"name": f"task {n:03d}", "type": "training", "project": project})
        session.call("tasks.enqueue", {"task": task["id"], "queue": queue})
        ids.append(str(task["id"]))
    entries = session.call("queues.get_by_id", {"queue": queue})["queue"]["entries"]
    assert [e["task"] for e in entries] == ids
    return queue, ids


def _wait_for(paths: list[Path], processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + DEADLINE_SEC
    while not all(p.exists() for p in paths):
        failed = [p for p in processes if p.poll() is not None]
        if failed:
            _, err = failed[0].communicate()
            pytest.fail(f"a worker exited before the start: {err.decode()}")
        if time.monotonic() > deadline:
            pytest.fail("the workers did not get ready")
        time.sleep(0.01)


@pytest.mark.slow
def test_processes_draining_one_queue_get_each_entry_exactly_once(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    queue, ids = _fill_queue(home)
    assert (home / "server" / DB_FILE).is_file()  # the one SQLite file all the workers open

    ready = [tmp_path / f"ready-{n}" for n in range(WORKERS)]
    outs = [tmp_path / f"got-{n}.txt" for n in range(WORKERS)]
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(home), queue, str(ready[n]), str(go), str(outs[n])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(WORKERS)
    ]
    try:
        _wait_for(ready, processes)
        go.touch()
        for process in processes:
            _, err = process.communicate(timeout=DEADLINE_SEC)
            assert process.returncode == 0, err.decode()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    got = [out.read_text().split() for out in outs]
    handed_out = Counter(task for share in got for task in share)
    twice = [task for task, count in handed_out.items() if count > 1]
    assert not twice, f"{len(twice)} entries were handed out more than once"
    assert set(handed_out) == set(ids), (
        f"lost {len(set(ids) - set(handed_out))}, unknown {len(set(handed_out) - set(ids))}"
    )
    assert sum(len(share) for share in got) == TASKS
    assert sum(1 for share in got if share) > 1, f"only one process got entries: {[len(s) for s in got]}"
    for share in got:  # each process saw the queue's order: what it got is in enqueue order
        positions = [ids.index(task) for task in share]
        assert positions == sorted(positions)

    after = Session(ServerConfig(None, None, None, None, None, "embedded", home), retries=2)
    assert after.call("queues.get_by_id", {"queue": queue})["queue"]["entries"] == []
