"""clearml-launcher daemon --services-mode: several tasks at once, each with its own run and abort."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from clearml_task.api import Client
from testing.launching import alive, launcher, log_lines, sleepy_task, spawn, status, wait_for
from testing.repos import Repo, make_repo


@pytest.fixture
def jobs(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "jobs", "jobs")


def test_tasks_run_at_once_and_abort_alone(jobs: Repo, tmp_path: Path) -> None:
    services = Client().queue_id(f"services-{uuid.uuid4().hex[:6]}", create=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = sleepy_task(jobs.work, tmp_path / "a", queue=services)
    second = sleepy_task(jobs.work, tmp_path / "b", queue=services)
    daemon = spawn("daemon", "--queue", services, "--services-mode", "2", "--grace", "2")
    try:
        first.wait_for_tick(2)
        second.wait_for_tick(2)
        assert launcher("abort", first.task_id).returncode == 0
        wait_for(lambda: status(first.task_id) == "stopped")
        first.assert_tree_gone()
        # the first run's end took nothing of the second's (both are children of the one daemon)
        assert all(alive(int(pid)) for pid in second.pidfile.read_text().split())
        ticks = [int(line[5:]) for line in log_lines(second.task_id) if line.startswith("tick ")]
        second.wait_for_tick(max(ticks) + 30)  # well past the first run's clean-up (its grace: 2 s)
        assert status(second.task_id) == "in_progress"
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    wait_for(lambda: status(second.task_id) == "stopped")
    second.assert_tree_gone()
