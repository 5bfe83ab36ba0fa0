"""Faults, end to end: a real server subprocess over loopback HTTP, real daemons as subprocesses, kill -9.

No task is stranded, no log line is lost or doubled, and a daemon rides out a server that goes away.
CLEARML_TASK_TEST_OUTAGE (seconds the server stays down, default 60), CLEARML_TASK_TEST_FLOOD (seconds of
output flood, default 20) and CLEARML_TASK_TEST_TASKS (tasks over 6 daemons, default 1000: about 7 minutes
on 2 cores) size them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from clearml_task.api import Client
from clearml_task.server import watchdog
from launcher import registry
from testing.launching import alive, create_task, launcher, log_lines, sleepy_task, status, wait_for
from testing.repos import Repo, make_repo
from testing.servers import (
    ROOT,
    LoopbackServer,
    ProxyHandler,
    ServerProcess,
    relay,
    respond,
    start_server,
    stop_server,
)

OUTAGE = float(os.environ.get("CLEARML_TASK_TEST_OUTAGE", "60"))
FLOOD = float(os.environ.get("CLEARML_TASK_TEST_FLOOD", "20"))
TASKS = int(os.environ.get("CLEARML_TASK_TEST_TASKS", "1000"))
Daemons = list[subprocess.Popen[bytes]]
# Tasks that print only what the test reads: no Task.init() (the SDK's monitor thread prints into the same
# stdout, mid-line), and no environment to build.
PLAIN = {"skip_task_init": True, "skip_python_env_install": True}
WATCHDOG = 4.0  # seconds of silence before the server stops a task, in the watchdog's test


@dataclass
class Rig:
    """A server subprocess the test can kill -9 and start again on the same port and data."""

    server: ServerProcess
    tmp: Path

    @property
    def port(self) -> str:
        return self.server.url.rsplit(":", 1)[1]

    def kill(self) -> None:
        self.server.process.kill()
        self.server.process.wait()

    def start_again(self, watchdog: float = 0) -> None:
        """The server again, on its port and data; `watchdog`: its non-responsive timeout (0: none)."""
        self.server = start_server(self.server.data_dir, "--port", self.port,
                                   "--non-responsive-timeout", str(watchdog))  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    # No watchdog at first: a task's first run builds its environment, silent for longer than a short one.
    server = start_server(tmp_path / "server", "--non-responsive-timeout", "0")
    keys = server.keys
    monkeypatch.setenv("CLEARML_API_HOST", server.url)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", keys["access_key"])
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", keys["secret_key"])
    found = Rig(server, tmp_path)
    yield found
    stop_server(found.server)


@pytest.fixture
def jobs(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "jobs", "jobs")


@pytest.fixture
def daemons() -> Iterator[Daemons]:
    """Daemons a test starts; whatever is left of them is ended with the test, and what they printed is
    shown with a test that failed (pytest prints a failed test's captured output)."""
    started: Daemons = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for number, process in enumerate(started):
        log = home().parent / f"daemon-{number}.log"
        if log.exists():
            said = log.read_text(errors="replace")[-4000:]
            print(f"--- daemon-{number}.log (exit {process.returncode})", said, sep="\n")


def daemon(started: Daemons, q: str, *extra: str) -> subprocess.Popen[bytes]:
    """A daemon on `q`; its output goes to daemon-N.log beside the launcher's home (for when one fails)."""
    log = home().parent / f"daemon-{len(started)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "launcher", "daemon", "--queue", q, "--polling-interval", "0.2", "--grace",
             "2", *extra], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    started.append(process)
    return process


def queue() -> str:
    return Client().queue_id(f"q-{uuid.uuid4().hex[:6]}", create=True)


def home() -> Path:
    return Path(os.environ["CLEARML_TASK_HOME"]) / "launcher"


def recorded_tasks() -> list[str]:
    """The tasks of the runs this machine's daemon records hold, the records of daemons gone included."""
    records = (registry._read(path) for path in sorted((home() / "daemons").glob("*.json")))
    return [run["task"] for info in records if info for run in registry.runs_of(info)]


def workers_of(q: str) -> list[str]:
    return sorted(w["id"] for w in Client().call("workers.get_all")["workers"]
                  if any(x["id"] == q for x in w.get("queues", [])))  # fmt: skip


def numbered(task_id: str) -> list[int]:
    """The numbers of a chatty.py task's `line N` lines, in the log's order; and it printed them all."""
    lines = log_lines(task_id)
    printed = [int(m[1]) for line in lines if (m := re.fullmatch(r"printed (\d+) lines", line))]
    numbers = [int(line[5:]) for line in lines if re.fullmatch(r"line \d{7}", line)]
    assert printed and numbers == list(range(printed[0])), (len(numbers), printed)
    return numbers


def test_a_killed_daemons_task_is_stopped_by_the_watchdog(
    rig: Rig, jobs: Repo, tmp_path: Path, daemons: Daemons
) -> None:
    q = queue()
    running = daemon(daemons, q)
    task = sleepy_task(jobs.work, tmp_path, queue=q)
    task.wait_for_tick(2)
    running.kill()
    running.wait()
    rig.kill()
    rig.start_again(watchdog=WATCHDOG)
    killed = time.monotonic()
    wait_for(lambda: status(task.task_id) != "in_progress", timeout=60, interval=0.2)
    assert time.monotonic() - killed < WATCHDOG + watchdog.interval(WATCHDOG) + 5  # + the last log's flight
    assert Client().get_task(task.task_id)["status_reason"] == watchdog.REASON
    daemon(daemons, q)  # the same id again: what the dead one left is ended and swept
    task.assert_tree_gone()
    wait_for(lambda: not any(p.is_dir() for p in (home() / "work").iterdir()), timeout=30)


def test_a_restarted_daemon_fails_the_task_its_predecessor_ran(
    jobs: Repo, tmp_path: Path, daemons: Daemons
) -> None:
    q = queue()
    running = daemon(daemons, q)
    task = sleepy_task(jobs.work, tmp_path, queue=q)
    task.wait_for_tick(2)
    (record,) = registry.running(home())
    (run,) = record["runs"].values()
    assert run["task"] == task.task_id and run["pid"] and run["backend"] == "local"
    running.kill()
    running.wait()
    daemon(daemons, q)
    wait_for(lambda: status(task.task_id) == "failed", timeout=60)
    assert Client().get_task(task.task_id)["status_message"] == registry.RESTARTED
    task.assert_tree_gone()
    assert not Path(run["work_tree"]).exists()
    assert not Path(run["sdk_config"]).exists()


def test_a_daemon_stopped_while_the_server_is_away_leaves_and_its_run_is_ended_later(
    rig: Rig, jobs: Repo, tmp_path: Path, daemons: Daemons
) -> None:
    """SIGTERM while the server is down: a daemon running a task and an idle one both leave within seconds
    (they used to retry for as long as the server was away); the run whose end could not be told stays in
    the record, and the next daemon of that id tells how it ended (stopped) once the server is back."""
    q, idle_q = queue(), queue()
    busy = daemon(daemons, q)
    task = sleepy_task(jobs.work, tmp_path, queue=q)
    task.wait_for_tick(2)
    idle = daemon(daemons, idle_q)  # started second: the busy one holds the first id
    wait_for(lambda: len(workers_of(idle_q)) == 1)
    rig.kill()
    time.sleep(3)  # both are retrying by now
    for process in (busy, idle):
        process.terminate()
    for process in (busy, idle):
        assert process.wait(45) == 0  # TimeoutExpired when a daemon waits for the server; stopped, not failed
    task.assert_tree_gone()
    assert recorded_tasks() == [task.task_id]
    listed = launcher("daemon", "--status").stdout  # the run left is shown, with the id that will end it
    [gone] = registry.left(home())
    [row] = [line for line in listed.splitlines() if task.task_id in line]
    assert row.split()[:2] == [gone["worker"], task.task_id], listed
    rig.start_again()
    assert status(task.task_id) == "in_progress"
    daemon(daemons, q)
    wait_for(lambda: status(task.task_id) != "in_progress", timeout=60)
    assert status(task.task_id) == "stopped"  # as the stop ended it, told by the next daemon


@pytest.mark.parametrize("end", ["terminate", "kill"])
def test_a_run_that_ended_while_the_server_was_away_is_told_as_it_ended_by_the_next_daemon(
    rig: Rig, jobs: Repo, tmp_path: Path, daemons: Daemons, end: str
) -> None:
    """A task completes while the server is away; its daemon, stopped (or killed: kill -9) before the server
    is back, cannot tell it: the record keeps the run with its final status, and the next daemon of that id
    tells that (completed), not a failure (a killed daemon's run was failed as 'restarted')."""
    q = queue()
    busy = daemon(daemons, q)
    go, done = tmp_path / "go", tmp_path / "done"
    task_id = create_task(jobs.work, "until.py", args=[f"until={go}", f"done={done}"], queue=q, **PLAIN)
    wait_for(lambda: "waiting" in log_lines(task_id))
    rig.kill()
    go.touch()
    wait_for(done.exists)
    time.sleep(2)  # the process is gone, and its end is being retried
    getattr(busy, end)()
    assert busy.wait(45) == (0 if end == "terminate" else -signal.SIGKILL)
    assert recorded_tasks() == [task_id]
    rig.start_again()
    assert status(task_id) == "in_progress"
    daemon(daemons, q)
    wait_for(lambda: status(task_id) != "in_progress", timeout=60)
    assert status(task_id) == "completed"
    wait_for(lambda: recorded_tasks() == [])


def test_a_task_taken_as_the_stop_comes_while_the_server_goes_goes_back_to_its_queue(
    rig: Rig, jobs: Repo, daemons: Daemons, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon's call takes a task off its queue just as the daemon is stopped; handing it back fails (the
    server is gone by then): the task stays in the record, and the next daemon of that id puts it back in
    its queue, where it runs."""
    q = queue()
    task_id = create_task(jobs.work, "train.py", **PLAIN)
    upstream = rig.server.url
    stopped: list[subprocess.Popen[bytes]] = []

    class Handler(ProxyHandler):
        def do_POST(self) -> None:
            body, endpoint = self.body(), self.path.rsplit("/", 1)[-1]
            if endpoint == "queues.add_task" and stopped:  # the hand-back: the server goes away first
                rig.kill()
            try:
                answer = relay(self, upstream, body)
            except OSError:
                answer = (502, "text/html", b"<html>bad gateway</html>")
            if endpoint == "queues.get_next_task" and task_id.encode() in answer[2] and not stopped:
                stopped.append(busy)
                busy.terminate()  # the answer comes after the stop
                time.sleep(0.5)
            respond(self, *answer)

    proxy = LoopbackServer(Handler)
    try:
        monkeypatch.setenv("CLEARML_API_HOST", proxy.url)
        busy = daemon(daemons, q)
        wait_for(lambda: len(workers_of(q)) == 1)
        Client().enqueue(task_id, q)
        assert busy.wait(45) == 0
    finally:
        proxy.stop()
    assert recorded_tasks() == [task_id]
    rig.start_again()
    monkeypatch.setenv("CLEARML_API_HOST", rig.server.url)
    assert status(task_id) == "queued"  # off its queue, in no other
    daemon(daemons, q)
    wait_for(lambda: status(task_id) == "completed", timeout=120)


def quiet_tasks(jobs: Repo, tmp_path: Path, q: str, count: int) -> dict[str, Path]:
    """`count` tasks on `q` that print nothing: task id -> the file their three pids go to."""
    found = {}
    for n in range(count):
        pidfile = tmp_path / f"quiet-{n}"
        found[create_task(jobs.work, "quiet.py", args=[f"pidfile={pidfile}"], queue=q, **PLAIN)] = pidfile
    return found


def pids_of(pidfile: Path) -> list[int]:
    return [int(pid) for pid in pidfile.read_text().split()]


def test_a_services_mode_daemon_restarted_fails_every_task_it_ran(
    jobs: Repo, tmp_path: Path, daemons: Daemons
) -> None:
    q = queue()
    tasks = quiet_tasks(jobs, tmp_path, q, 3)
    running = daemon(daemons, q, "--services-mode", "3")
    wait_for(lambda: all(pidfile.exists() for pidfile in tasks.values()), timeout=180)

    def every_run_recorded() -> dict[str, dict[str, object]] | None:
        found = registry.running(home())
        runs = found[0]["runs"] if found else {}
        return runs if set(runs) == set(tasks) and all(run.get("pid") for run in runs.values()) else None

    runs = wait_for(every_run_recorded, timeout=30)
    running.kill()
    running.wait()
    daemon(daemons, q, "--services-mode", "3")
    for task_id, pidfile in tasks.items():
        wait_for(lambda task_id=task_id: status(task_id) == "failed", timeout=60)
        assert Client().get_task(task_id)["status_message"] == registry.RESTARTED
        wait_for(lambda pidfile=pidfile: not any(alive(pid) for pid in pids_of(pidfile)), timeout=30)
        assert not Path(str(runs[task_id]["work_tree"])).exists()
        assert not Path(str(runs[task_id]["sdk_config"])).exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warden is Linux's")
def test_a_quiet_task_does_not_outlive_its_killed_daemon(
    jobs: Repo, tmp_path: Path, daemons: Daemons
) -> None:
    q = queue()
    ((task_id, pidfile),) = quiet_tasks(jobs, tmp_path, q, 1).items()
    running = daemon(daemons, q)
    wait_for(pidfile.exists, timeout=180)
    pids = pids_of(pidfile)
    assert all(alive(pid) for pid in pids)
    running.kill()
    running.wait()
    # no daemon takes its id again: the task's processes (the setsid escapee too) end by themselves
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=30)
    assert status(task_id) == "in_progress"  # nobody has told the server yet (a restart or its watchdog does)


def test_daemons_ride_out_a_server_outage(rig: Rig, jobs: Repo, daemons: Daemons) -> None:
    """kill -9 of the server for OUTAGE seconds while one daemon idles and another's task prints."""
    busy_q, idle_q = queue(), queue()
    busy, idle = daemon(daemons, busy_q), daemon(daemons, idle_q)
    lines = int((OUTAGE + 15) / 0.05)
    printing = create_task(
        jobs.work, "chatty.py", args=[f"lines={lines}", "interval=0.05"], queue=busy_q, **PLAIN
    )
    wait_for(lambda: len(log_lines(printing)) > 20 and len(workers_of(idle_q)) == 1)
    rig.kill()
    time.sleep(OUTAGE)
    assert busy.poll() is None and idle.poll() is None
    rig.start_again()
    later = create_task(jobs.work, "train.py", queue=idle_q)
    wait_for(lambda: status(printing) in ("completed", "failed", "stopped"), timeout=OUTAGE + 180)
    assert status(printing) == "completed"
    assert len(numbered(printing)) == lines  # every line exactly once, in order
    wait_for(lambda: status(later) == "completed", timeout=120)
    assert busy.poll() is None and idle.poll() is None
    said = [(home().parent / f"daemon-{number}.log").read_text(errors="replace") for number in (0, 1)]
    retries = [line for text in said for line in text.splitlines() if "retrying" in line]
    assert retries and all(line.startswith("clearml-launcher: ") for line in retries), retries[:3]


def test_a_flood_of_output_arrives_exactly_once_in_order(rig: Rig, jobs: Repo, daemons: Daemons) -> None:
    q = queue()
    daemon(daemons, q)
    task_id = create_task(jobs.work, "chatty.py", args=[f"seconds={FLOOD}"], queue=q, **PLAIN)
    wait_for(lambda: status(task_id) == "completed", timeout=FLOOD + 300, interval=0.5)
    assert numbered(task_id)


def test_what_a_task_leaves_running_ends_with_it(
    rig: Rig, jobs: Repo, tmp_path: Path, daemons: Daemons
) -> None:
    q = queue()
    daemon(daemons, q)
    pidfile = tmp_path / "escapee"
    task_id = create_task(jobs.work, "escape.py", args=[f"pidfile={pidfile}"], queue=q)
    wait_for(lambda: status(task_id) == "completed", timeout=300)
    task = Client().get_task(task_id)
    (last_line,) = [e for e in Client().task_log(task_id) if e["msg"] == "left a process behind"]
    ended = datetime.fromisoformat(task["completed"]).timestamp()
    assert ended - last_line["timestamp"] / 1000 < 5  # not the escapee's 45 s
    assert not alive(int(pidfile.read_text()))


def test_daemons_started_together_get_their_own_ids_and_stop_by_queue(rig: Rig, daemons: Daemons) -> None:
    q, other = queue(), queue()
    for _ in range(3):
        daemon(daemons, q)
    daemon(daemons, other)
    ids = wait_for(lambda: len(workers_of(q)) == 3 and workers_of(q))
    assert len(set(ids)) == 3 and all(re.fullmatch(r".+:\d+", i) for i in ids)
    listed = launcher("daemon", "--status").stdout
    assert all(i in listed for i in ids)
    assert launcher("daemon", "--stop", "--queue", q).returncode == 0
    assert [p.poll() is None for p in daemons] == [False, False, False, True]
    assert launcher("daemon", "--stop", "--queue", q).returncode == 1  # none left with those
    assert launcher("daemon", "--polling-interval", "0", "--queue", q).returncode == 2


def test_many_tasks_over_six_daemons_run_exactly_once(rig: Rig, jobs: Repo, daemons: Daemons) -> None:
    q = queue()
    client = Client()
    first = create_task(jobs.work, "train.py", name="many", **PLAIN)
    ids = [client.clone_task(first) for _ in range(TASKS)]
    for task_id in ids:
        client.enqueue(task_id, q)
    for _ in range(6):
        daemon(daemons, q)
    deadline = time.monotonic() + 120 + TASKS * 1.0  # a bound for a stuck run, not a figure

    def finished() -> bool:
        found = client.tasks(id=ids, only_fields=["status"], size=len(ids))
        return len(found) == TASKS and all(t["status"] == "completed" for t in found)

    wait_for(finished, timeout=deadline - time.monotonic(), interval=2)
    runs = [sum(line.startswith("epochs=") for line in log_lines(t)) for t in ids]
    assert runs == [1] * TASKS
    workers = client.tasks(id=ids, only_fields=["last_worker"], size=len(ids))
    assert len(workers) == TASKS and len({t["last_worker"] for t in workers}) > 1


def test_the_log_is_what_the_task_printed(jobs: Repo) -> None:
    """A 1 MB line whole (in ordered pieces), a \\r bar as its states, stderr at error, non-UTF-8 escaped."""
    task_id = create_task(jobs.work, "fidelity.py", **PLAIN)
    assert launcher("execute", "--id", task_id).returncode == 0
    ours = ("launcher:", "workspace:", "environment:")
    events = [e for e in Client().task_log(task_id) if not str(e["msg"]).startswith(ours)]
    pieces = [e["msg"] for e in events if set(e["msg"]) == {"x"}]
    assert "".join(pieces) == "x" * 1_000_000 and len(pieces) > 1
    shown = [e["msg"] for e in events if e["msg"].startswith("progress")]
    assert shown[-1] == "progress 100%" and len(shown) <= 2
    assert [e["level"] for e in events if e["msg"] == "to stderr"] == ["error"]
    assert "latin-1: caf\\xe9" in [e["msg"] for e in events]
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and stamps[-1] <= time.time() * 1000 + 1000  # real time, never ahead
