"""The daemon's wake-up: on our server it long-polls, so a task enqueued while it waits starts without
waiting for a polling interval; a server that does not wait (ClearML's, or ours with --max-wait 0) is
polled; a stop ends an idle daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearml_task.api import Client
from testing.launching import create_task, launcher, status, wait_for
from testing.repos import Repo, make_repo
from testing.servers import ROOT, start_server, stop_server

# The daemons below poll every 30 s (24-36 s with jitter) when they poll: a task that starts within
# STARTS_WITHIN was not found by a poll.
INTERVAL = "30"
STARTS_WITHIN = 20


@pytest.fixture
def jobs(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "jobs", "jobs")


@pytest.fixture(params=["embedded", "http"])
def server(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Ephemeral mode (other processes' enqueues are seen in the shared SQLite file), or our server over
    loopback HTTP."""
    if request.param == "embedded":
        yield "embedded"
        return
    found = start_server(tmp_path / "server")
    keys = found.keys
    monkeypatch.setenv("CLEARML_API_HOST", found.url)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", keys["access_key"])
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", keys["secret_key"])
    yield "http"
    stop_server(found)


class Daemon:
    """`clearml-launcher daemon` in the background, its output in a file."""

    def __init__(self, tmp: Path, *argv: str) -> None:
        self.out = tmp / f"daemon-{uuid.uuid4().hex[:6]}.log"
        with self.out.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "launcher", "daemon", *argv], stdout=out, stderr=subprocess.STDOUT,
                cwd=ROOT, env=dict(os.environ),
            )  # fmt: skip

    def said(self, text: str) -> bool:
        return text in self.out.read_text(errors="replace")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def queue(name: str) -> str:
    return Client().queue_id(f"{name}-{uuid.uuid4().hex[:6]}", create=True)


def test_a_task_enqueued_while_the_daemon_waits_starts_without_a_poll(
    server: str, jobs: Repo, tmp_path: Path
) -> None:
    q = queue("wake")
    daemon = Daemon(tmp_path, "--queue", q, "--polling-interval", INTERVAL)
    try:
        wait_for(lambda: daemon.said(f"waits on {q}"))
        time.sleep(
            1
        )  # its first call (right after that line) found nothing: a polling daemon would sleep now
        task_id = create_task(jobs.work, "train.py", queue=q)
        wait_for(lambda: status(task_id) != "queued", timeout=STARTS_WITHIN)
        wait_for(lambda: status(task_id) == "completed")
    finally:
        assert daemon.stop() == 0
    assert daemon.said(f"task {task_id} completed")


def test_a_server_that_does_not_wait_is_polled(
    jobs: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = start_server(tmp_path / "server", "--max-wait", "0")
    try:
        keys = found.keys
        monkeypatch.setenv("CLEARML_API_HOST", found.url)
        monkeypatch.setenv("CLEARML_API_ACCESS_KEY", keys["access_key"])
        monkeypatch.setenv("CLEARML_API_SECRET_KEY", keys["secret_key"])
        q = queue("polled")
        daemon = Daemon(tmp_path, "--queue", q, "--polling-interval", "0.2")
        try:
            wait_for(lambda: daemon.said(f"polls every 0.2s {q}"))
            task_id = create_task(jobs.work, "train.py", queue=q)
            wait_for(lambda: status(task_id) == "completed")
        finally:
            assert daemon.stop() == 0
    finally:
        stop_server(found)


def test_a_stop_ends_an_idle_long_polling_daemon(server: str, tmp_path: Path) -> None:
    q = queue("idle")
    daemon = Daemon(tmp_path, "--queue", q, "--polling-interval", INTERVAL)
    wait_for(lambda: daemon.said(f"waits on {q}"))
    worker = daemon.out.read_text().split("worker ", 1)[1].split()[0]
    assert daemon.stop() == 0
    assert worker not in [w["id"] for w in Client().call("workers.get_all")["workers"]]


def test_max_wait_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    refused = launcher("server", "--port", "0", "--data-dir", str(tmp_path / "s"), "--max-wait", "31")
    assert refused.returncode == 2 and "--max-wait must be from 0 to 30" in refused.stderr
