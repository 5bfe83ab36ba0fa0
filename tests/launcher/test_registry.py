"""This machine's daemons: ids claimed once, records, --stop's choice, a dead daemon's run reconciled, and
dead runs' work trees swept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from clearml_task.api import Client, Session
from clearml_task.errors import UserError
from launcher import registry
from testing.servers import embedded_config


def test_ids_are_claimed_once_and_freed_with_their_daemon(tmp_path: Path) -> None:
    first = registry.claim(tmp_path, None, ["q1"])
    second = registry.claim(tmp_path, None, ["q2"])
    gpu = registry.claim(tmp_path, "0,1", ["q1"])
    assert [c.worker.rsplit(":", 1)[1] for c in (first, second, gpu)] == ["0", "1", "0"]
    assert ":gpu0,1:" in gpu.worker
    assert sorted(d["worker"] for d in registry.running(tmp_path)) == sorted(
        c.worker for c in (first, second, gpu)
    )
    assert [d["worker"] for d in registry.select(tmp_path, None, ["q2"], None)] == [second.worker]
    assert [d["worker"] for d in registry.select(tmp_path, None, [], "0,1")] == [gpu.worker]
    assert len(registry.select(tmp_path, None, [], None)) == 3
    with pytest.raises(UserError):
        registry.select(tmp_path, "nobody:7", [], None)
    first.release()
    assert registry.claim(tmp_path, None, ["q3"]).worker == first.worker  # free again


def test_a_run_is_recorded_where_it_will_live_before_it_starts_and_unchanged_fields_are_not_rewritten(
    tmp_path: Path,
) -> None:
    claim = registry.claim(tmp_path, None, ["q"])
    where = {"backend": "local", "work_tree": str(tmp_path / "work" / "t-1"), "sdk_config": "t-1.conf"}
    claim.run_started("t", where)
    assert registry.running(tmp_path)[0]["runs"] == {"t": {"task": "t", **where}}
    written = claim.path.stat().st_ino  # every write is a new file renamed over the old one
    claim.run_changed("t", dict(where))  # what the run tells as it starts: nothing new
    assert claim.path.stat().st_ino == written
    claim.run_changed("t", {"pid": 42})
    assert claim.path.stat().st_ino != written
    assert registry.running(tmp_path)[0]["runs"]["t"] == {"task": "t", **where, "pid": 42}


def test_a_task_taken_but_never_started_goes_back_to_its_queue(tmp_path: Path) -> None:
    client = Client(Session(embedded_config(tmp_path / "server")))
    queue = client.queue_id("back", create=True)
    task_id = client.create_task({"name": "taken", "type": "training"})
    client.enqueue(task_id, queue)
    assert client.next_task(queue) == task_id  # the daemon took it, and died
    said: list[str] = []
    registry.reconcile(client, {"run": {"task": task_id}}, said.append)
    assert client.next_task(queue) == task_id and said


def test_every_run_a_record_holds_is_reconciled(tmp_path: Path) -> None:
    client = Client(Session(embedded_config(tmp_path / "server")))
    ids = [client.create_task({"name": f"run {n}", "type": "training"}) for n in range(3)]
    for task_id in ids:
        client.set_status(task_id, "started", force=True)
    trees = [tmp_path / "work" / task_id for task_id in ids]
    for tree in trees:
        (tree / "src").mkdir(parents=True)
    claim = registry.claim(tmp_path, None, ["q"])
    for task_id, tree in zip(ids[:2], trees, strict=False):  # services mode: two runs at once
        claim.run_started(task_id)
        claim.run_changed(task_id, {"work_tree": str(tree)})
    claim.run_started("ended")
    claim.run_ended("ended")
    record = registry.runs_of(registry.running(tmp_path)[0])
    assert sorted(run["task"] for run in record) == sorted(ids[:2])
    older = {"run": {"task": ids[2], "work_tree": str(trees[2])}}  # a record written before services mode
    registry.reconcile(client, {"runs": {run["task"]: run for run in record}} | older, lambda line: None)
    assert [client.get_task(task_id)["status_message"] for task_id in ids] == [registry.RESTARTED] * 3
    assert not any(tree.exists() for tree in trees)
    claim.release()


def test_a_dead_daemons_runs_stay_on_record_until_the_next_one_has_ended_them(tmp_path: Path) -> None:
    """A record left with runs (its daemon was killed, or stopped while the server was away) is not lost
    when the daemon taking its id dies or is stopped before it ended them: they move into its record, and
    leave it one by one as they are reconciled."""
    client = Client(Session(embedded_config(tmp_path / "server")))
    ids = [client.create_task({"name": f"run {n}", "type": "training"}) for n in range(2)]
    for task_id in ids:
        client.set_status(task_id, "started", force=True)
    dead = registry.claim(tmp_path, None, ["q"])
    for task_id in ids:
        dead.run_started(task_id)
    dead.release()  # runs in it: the file stays
    stopped_early = registry.claim(tmp_path, None, ["q"])
    assert stopped_early.worker == dead.worker and sorted(stopped_early.runs) == sorted(ids)
    stopped_early.release()  # before it reconciled anything
    taker = registry.claim(tmp_path, None, ["q"])
    assert registry.inherited(taker.previous) == stopped_early.runs
    ended: list[str] = []

    def end(key: str) -> None:
        ended.append(key)
        taker.run_ended(key)

    registry.reconcile(client, taker.previous, lambda line: None, ended=end)
    assert sorted(ended) == sorted(ids) and taker.runs == {}
    assert [client.get_task(task_id)["status_message"] for task_id in ids] == [registry.RESTARTED] * 2
    taker.release()
    assert not list((tmp_path / "daemons").glob("*.json"))  # nothing left: the record goes


def test_a_run_is_cleaned_up_by_the_backend_its_record_names(tmp_path: Path) -> None:
    """The record is a file: a backend name that is not one of our runner modules is never imported; a run
    then counts as a host run (as a record written before runs named their backend)."""
    client = Client(Session(embedded_config(tmp_path / "server")))
    ids = [client.create_task({"name": f"run {n}", "type": "training"}) for n in range(3)]
    for task_id in ids:
        client.set_status(task_id, "started", force=True)
    backends = ["local", "os", "../../registry"]
    said: list[str] = []
    runs = {
        task_id: {"task": task_id, "backend": backend} for task_id, backend in zip(ids, backends, strict=True)
    }
    registry.reconcile(client, {"runs": runs}, said.append)
    assert [client.get_task(task_id)["status_message"] for task_id in ids] == [registry.RESTARTED] * 3
    assert all("container" not in line for line in said)


def test_work_trees_of_dead_runs_are_swept_kept_ones_stay(tmp_path: Path) -> None:
    work = tmp_path / "work"
    dead, kept, young = work / "dead-1", work / "kept-1", work / "young-1"
    for tree in (dead, kept, young):
        (tree / "src").mkdir(parents=True)
    registry.run_lock(dead).touch()
    registry.run_lock(young).touch()
    (work / "dead-1.clearml.conf").touch()
    old = time.time() - 2 * registry.SWEEP_AGE
    for tree in (dead, kept):
        os.utime(tree, (old, old))
    assert registry.sweep(work, lambda line: None) == 1
    assert not dead.exists() and not (work / "dead-1.clearml.conf").exists()
    assert kept.exists() and young.exists()


def test_lock_files_of_runs_whose_tree_is_gone_are_swept_unless_held(tmp_path: Path) -> None:
    """A killed run's lock, its work tree removed by the daemon that took its id, used to stay for ever."""
    from clearml_task import locks

    work = tmp_path / "work"
    work.mkdir()
    stale, held, young = (registry.run_lock(work / name) for name in ("gone-1", "held-1", "young-1"))
    for lock in (stale, held, young):
        lock.touch()
    old = time.time() - 2 * registry.SWEEP_AGE
    for lock in (stale, held):
        os.utime(lock, (old, old))
    holding = locks.hold(held)
    assert holding is not None
    try:
        registry.sweep(work, lambda line: None)
    finally:
        holding.close()
    assert not stale.exists() and held.exists() and young.exists()


def test_what_a_dead_run_left_beside_its_removed_work_tree_is_swept_unless_its_run_goes_on(
    tmp_path: Path,
) -> None:
    """A container run's staging folder (its env file holds the server's keys) stayed for ever once a
    restarted daemon had removed the dead run's work tree, and then its lock."""
    from clearml_task import locks

    work = tmp_path / "work"
    orphan, with_lock, held, young = (
        work / f"{name}-1.container" for name in ("orphan", "locked", "held", "young")
    )
    for staging in (orphan, with_lock, held, young):
        staging.mkdir(parents=True)
        (staging / "env").write_text("CLEARML_API_SECRET_KEY=secret\n")
    registry.run_lock(work / "locked-1").touch()
    (work / "orphan-1.clearml.conf").touch()
    old = time.time() - 2 * registry.SWEEP_AGE
    for path in [*work.iterdir(), *work.glob("*/env")]:
        if not path.name.startswith("young"):
            os.utime(path, (old, old))
    holding = locks.hold(registry.run_lock(work / "held-1"))
    assert holding is not None
    said: list[str] = []
    try:
        registry.sweep(work, said.append)
    finally:
        holding.close()
    assert sorted(path.name for path in work.iterdir()) == [
        "held-1.container",
        "held-1.lock",
        "young-1.container",
    ]
    assert said == [
        "removed what 2 run(s) left beside a work tree already gone (a container's staging folder)"
    ]
