"""clearml-launcher daemon, end to end: priority, fairness, --once, --detached/--stop/--status."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clearml_task import config
from clearml_task.api import Client
from testing.holding_proxy import HoldingProxy
from testing.launching import create_task, launcher, log_lines, sleepy_task, spawn, status, wait_for
from testing.repos import Repo, make_repo
from testing.servers import ServerProcess, start_server, stop_server


@pytest.fixture
def jobs(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "jobs", "jobs")


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """Our server over loopback HTTP, the environment pointing at it."""
    found = start_server(tmp_path / "server")
    keys = found.keys
    monkeypatch.setenv("CLEARML_API_HOST", found.url)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", keys["access_key"])
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", keys["secret_key"])
    yield found
    stop_server(found)


@pytest.fixture
def holding(served: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., HoldingProxy]]:
    """Makes a HoldingProxy in front of `served` and points the environment at it."""
    made: list[HoldingProxy] = []

    def make(**settings: Any) -> HoldingProxy:
        made.append(HoldingProxy(served.url, **settings))
        monkeypatch.setenv("CLEARML_API_HOST", made[-1].start())
        return made[-1]

    yield make
    for proxy in made:
        proxy.stop()


def queue(name: str) -> str:
    return Client().queue_id(f"{name}-{uuid.uuid4().hex[:6]}", create=True)


def started(task_id: str) -> str:
    return str(Client().get_task(task_id)["started"])


def test_strict_priority_across_queues(jobs: Repo) -> None:
    high, low = queue("high"), queue("low")
    first_low = create_task(jobs.work, "train.py", queue=low, name="low one")
    first_high = create_task(jobs.work, "train.py", queue=high, name="high one")
    second_high = create_task(jobs.work, "train.py", queue=high, name="high two")
    result = launcher("daemon", "--queue", high, low, "--max-tasks", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [status(t) for t in (first_low, first_high, second_high)] == ["completed"] * 3
    assert started(first_high) < started(second_high) < started(first_low)


def test_order_fairness_takes_turns(jobs: Repo) -> None:
    one, two = queue("one"), queue("two")
    a1, a2 = (create_task(jobs.work, "train.py", queue=one, name=f"task a{i}") for i in (1, 2))
    b1, b2 = (create_task(jobs.work, "train.py", queue=two, name=f"task b{i}") for i in (1, 2))
    result = launcher("daemon", "--queue", one, two, "--order-fairness", "--max-tasks", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    order = sorted((a1, a2, b1, b2), key=started)
    assert order == [a1, b1, a2, b2]


def test_once_runs_one_task_and_exits(jobs: Repo) -> None:
    q = queue("once")
    first = create_task(jobs.work, "train.py", queue=q)
    second = create_task(jobs.work, "train.py", queue=q)
    result = launcher("daemon", "--queue", q, "--once")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (status(first), status(second)) == ("completed", "queued")
    empty = queue("empty")
    assert launcher("daemon", "--queue", empty, "--once").returncode == 0  # nothing to do: exits


def test_an_error_of_the_launchers_own_fails_the_task_and_the_daemon_goes_on(jobs: Repo) -> None:
    """A file where the work trees go (as a full disk or a bug would): each task fails with the error, none
    is left in_progress, and the daemon takes the next one and exits cleanly."""
    q = queue("own")
    tasks = [create_task(jobs.work, "train.py", queue=q, skip_task_init=True) for _ in range(2)]
    work = Path(os.environ["CLEARML_TASK_HOME"]) / "launcher" / "work"
    work.parent.mkdir(parents=True, exist_ok=True)
    work.write_text("not a directory\n")
    result = launcher("daemon", "--queue", q, "--max-tasks", "2")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    for task_id in tasks:
        task = Client().get_task(task_id)
        assert task["status"] == "failed", task
        assert task["status_message"].startswith("the launcher failed: "), task


def test_a_record_that_cannot_be_written_puts_the_task_back_and_stops_the_daemon(jobs: Repo) -> None:
    """The daemon's record cannot be written as a task is taken (a full disk; here a directory where the
    record's next version goes): the task is not at fault, so it goes back to the front of its queue, not
    failed and not lost off it; the daemon takes nothing more and exits with one line saying why. Once the
    record can be written, a daemon runs the task."""
    import json
    import subprocess
    import sys

    from launcher import registry

    q = queue("record")
    daemon = subprocess.Popen([sys.executable, "-m", "launcher", "daemon", "--queue", q, "--polling-interval",
                               "0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[2])  # fmt: skip
    folder = registry.directory(Path(os.environ["CLEARML_TASK_HOME"]) / "launcher")
    try:

        def registered() -> Path | None:
            for path in folder.glob("*.json"):
                info = json.loads(path.read_text())
                if info.get("registered") and info.get("pid") == daemon.pid:
                    return path
            return None

        record = wait_for(registered)
        blocker = record.with_suffix(".tmp")
        blocker.mkdir()
        task_id = create_task(jobs.work, "train.py", queue=q, skip_task_init=True)
        _, stderr = daemon.communicate(timeout=120)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 1, stderr
    assert "Traceback" not in stderr and f"cannot write the daemon's record {record}" in stderr, stderr
    assert len(stderr.strip().splitlines()) <= 2, stderr  # the line, and its hint
    assert status(task_id) == "queued"
    entries = Client().call("queues.get_by_id", {"queue": q})["queue"]["entries"]
    assert [entry["task"] for entry in entries] == [task_id]
    blocker.rmdir()
    ran = launcher("daemon", "--queue", q, "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert status(task_id) == "completed"


def test_no_gpus_is_still_a_gpu_list() -> None:
    """`--gpus ""` (no GPU for the task, as --cpu-only) stays accepted."""
    listed = launcher("daemon", "--gpus", "", "--status", timeout=60)
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("server", "--port", "99999"),
        ("ui", "--port", "-1"),
        ("server", "--threads", "0"),
        ("daemon", "--queue", "q", "--max-tasks", "0"),
        ("daemon", "--queue", "q", "--gpus", "x;y"),
        ("daemon", "--queue", "q", "--services-mode", "-1"),
        ("daemon", "--queue", "q", "--grace", "-1"),
        ("execute", "--id", "x", "--grace", "nan"),
        ("slurm", "--queue", "q", "--max-jobs", "-1"),
        ("slurm", "--queue", "q", "--polling-interval", "1e-9"),
        ("tasks", "--status", "bogus"),  # listed nothing, as if no task had it
        ("daemon", "--queue", "q", "--polling-interval", "-1"),
    ],
)
def test_a_flag_out_of_its_range_is_a_usage_error(argv: tuple[str, ...]) -> None:
    """A port over 65535 was served modulo 65536, --max-tasks 0 never stopped, --gpus took any text into the
    worker's id: each is one usage line naming the flag, before anything runs."""
    refused = launcher(*argv, timeout=60)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"argument {argv[-2]}" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    if argv[-2] == "--polling-interval":  # said once, as it is: not "0 or more", which 0 is not
        assert "at least 0.1" in refused.stderr and "0 or more" not in refused.stderr, refused.stderr


@pytest.mark.parametrize(
    "argv", [("abort", ""), ("logs", "a b"), ("execute", "--id", ""), ("abort", "--", "-x")]
)
def test_a_task_id_that_cannot_be_one_is_a_usage_error(argv: tuple[str, ...]) -> None:
    """`abort ''` answered with the server's raw 'Missing required fields: field=task (HTTP 400/11)'."""
    refused = launcher(*argv, timeout=60)
    assert refused.returncode == 2 and "is not a task id" in refused.stderr, refused.stdout + refused.stderr
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .endswith("is not a task id (letters and digits, as `tasks` lists them)")
    )


@pytest.mark.parametrize("command", ["execute", "daemon"])
def test_a_home_the_launcher_cannot_write_is_one_line_and_the_task_is_left_as_it_was(
    jobs: Repo, served: ServerProcess, tmp_path: Path, command: str
) -> None:
    """CLEARML_TASK_HOME where no directory can be made: one line saying so, before the task is taken (it
    was failed by `execute` with a traceback of the launcher's own, and `daemon` ended in a traceback)."""
    q = queue("home")
    task_id = create_task(jobs.work, "train.py", queue=q, skip_task_init=True)
    (tmp_path / "a-file").write_text("")
    home = tmp_path / "a-file" / "home"
    argv = ("execute", "--id", task_id) if command == "execute" else ("daemon", "--queue", q, "--once")
    result = launcher(*argv, env={"CLEARML_TASK_HOME": str(home)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot use the launcher's home {home / 'launcher'}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert status(task_id) == "queued"


def test_unknown_queue_is_a_clear_error_unless_created() -> None:
    refused = launcher("daemon", "--queue", "no-such-queue", "--once")
    assert refused.returncode == 1 and "no queue named 'no-such-queue'" in refused.stderr
    assert launcher("daemon", "--queue", "made-now", "--create-queue", "--once").returncode == 0
    assert Client().queue_id("made-now")


def test_a_worker_registers_while_it_runs(jobs: Repo) -> None:
    q = queue("reg")
    running = spawn("daemon", "--queue", q, "--polling-interval", "0.2")
    try:
        workers = wait_for(lambda: [w for w in Client().call("workers.get_all")["workers"]
                                    if any(x["id"] == q for x in w.get("queues", []))])  # fmt: skip
        assert ":" in workers[0]["id"]
        task_id = create_task(jobs.work, "train.py", queue=q)
        wait_for(lambda: status(task_id) == "completed")
        assert Client().get_task(task_id)["last_worker"] == workers[0]["id"]
    finally:
        running.terminate()
        running.wait(60)
    assert not [w for w in Client().call("workers.get_all")["workers"] if w["id"] == workers[0]["id"]]


def test_detached_status_and_stop_never_mark_a_running_task_completed(jobs: Repo, tmp_path: Path) -> None:
    q = queue("bg")
    started_bg = launcher("daemon", "--queue", q, "--detached", "--polling-interval", "0.2", "--grace", "2")
    assert started_bg.returncode == 0 and "started in the background" in started_bg.stdout
    task = sleepy_task(jobs.work, tmp_path, queue=q)
    task.wait_for_tick(2)
    listed = launcher("daemon", "--status")
    assert q in listed.stdout
    stopped = launcher("daemon", "--stop")
    assert stopped.returncode == 0
    assert status(task.task_id) == "stopped"
    task.assert_tree_gone()
    assert q not in launcher("daemon", "--status").stdout


def test_abort_of_a_task_a_daemon_runs(jobs: Repo, tmp_path: Path) -> None:
    """tasks.stop only asks ("stopping") when a live worker holds the task; the daemon then ends it."""
    q = queue("abort")
    running = spawn("daemon", "--queue", q, "--polling-interval", "0.2", "--grace", "2")
    try:
        task = sleepy_task(jobs.work, tmp_path, queue=q)
        task.wait_for_tick(2)
        assert launcher("abort", task.task_id).stdout.strip().endswith("its worker stops it")
        wait_for(lambda: status(task.task_id) == "stopped", timeout=30)
        task.assert_tree_gone()
        assert running.poll() is None  # the daemon goes on
    finally:
        running.terminate()
        running.wait(60)


PROBE = """\
import base64, json, os, urllib.request

url = os.environ["CLEARML_API_HOST"]
keys = f"{os.environ['CLEARML_API_ACCESS_KEY']}:{os.environ['CLEARML_API_SECRET_KEY']}"
request = urllib.request.Request(url + "/auth.login", data=b"{}", headers={
    "Content-Type": "application/json", "Authorization": "Basic " + base64.b64encode(keys.encode()).decode()})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(request, timeout=30) as answer:
    print("reached", url, json.load(answer)["meta"]["result_code"])
"""


def test_an_ephemeral_daemon_serves_the_embedded_server_once_for_all_its_tasks(jobs: Repo) -> None:
    """In ephemeral mode a task's SDK reaches the embedded app over loopback HTTP. A daemon serves it once
    for its whole life, not per task: both tasks reach it, at the same address."""
    assert Client().session.config.embedded
    jobs.write("probe.py", PROBE)
    q = queue("served")
    tasks = [
        create_task(jobs.work, "probe.py", queue=q, name=f"probe {i}", skip_task_init=True) for i in (1, 2)
    ]
    result = launcher("daemon", "--queue", q, "--max-tasks", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    reached = []
    for task_id in tasks:
        assert status(task_id) == "completed", log_lines(task_id)
        reached += [line for line in log_lines(task_id) if line.startswith("reached ")]
    assert len(reached) == 2 and reached[0].endswith(" 200"), reached
    assert reached[0].startswith("reached http://127.0.0.1:") and reached[0] == reached[1]


def test_machine_stats_have_cpu_and_memory() -> None:
    from launcher.daemon import machine_stats

    stats = machine_stats()
    assert 0 <= stats["cpu_usage"][0] <= 100
    assert stats["memory_used"] > 0 and stats["memory_free"] > 0


def test_gpu_figures_come_from_nvidia_smi_at_most_every_few_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report as each short task starts must not start nvidia-smi each time (tens of ms of CPU)."""
    from launcher import daemon

    calls = tmp_path / "calls"
    smi = tmp_path / "bin" / "nvidia-smi"  # no GPU here: a stand-in that answers as nvidia-smi does
    smi.parent.mkdir()
    smi.write_text(f"#!/bin/sh\necho asked >> {calls}\necho '37, 1024, 15360, 61'\necho '0, 10, 16374, 40'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(daemon, "_gpu_seen", None)
    first, second = daemon.machine_stats(), daemon.machine_stats()
    assert first["gpu_usage"] == second["gpu_usage"] == [37.0, 0.0]
    assert first["gpu_memory_free"] == [15360.0, 16374.0] and first["gpu_temperature"] == [61.0, 40.0]
    assert calls.read_text().count("asked") == 1
    monkeypatch.setattr(daemon, "GPU_STATS_MAX_AGE", 0.0)  # older than that: asked again
    daemon.machine_stats()
    assert calls.read_text().count("asked") == 2


def test_the_next_task_starts_while_the_last_ones_final_status_is_told(
    jobs: Repo, holding: Callable[..., HoldingProxy]
) -> None:
    """Its process gone, a task's log and final status go to the server while the daemon takes the next one
    (the first task's completion is held until the second has started: a daemon that waited for it would
    never start the second); the run stays in the daemon's record until the server has its status; and the
    task's document comes with its queue entry from our server (no tasks.get_by_id of its own)."""
    from launcher import registry

    def recorded_runs() -> list[list[str]]:
        return [list(daemon["runs"]) for daemon in registry.running(config.home() / "launcher")]

    q = queue("pipelined")
    # no Task.init: the SDK in the task would read its own task (tasks.get_by_id) through the proxy
    first = create_task(jobs.work, "train.py", queue=q, name="first", skip_task_init=True)
    second = create_task(jobs.work, "train.py", queue=q, name="second", skip_task_init=True)
    proxy = holding(hold="tasks.completed", until="tasks.started", look=recorded_runs)
    result = launcher("daemon", "--queue", q, "--max-tasks", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = list(proxy.calls)  # the daemon's (what the test asks next goes through the proxy too)
    assert proxy.released_in_time, "the daemon waited for the first task's final status"
    assert calls.index(("tasks.started", second)) < calls.index(("tasks.completed", first))
    assert proxy.looked == [[first, second]]  # the first still recorded while its status was held
    assert [call for call in calls if call[0] == "tasks.get_by_id"] == []
    assert (status(first), status(second)) == ("completed", "completed")
    assert [line for line in log_lines(first) if "done in" in line]  # its last lines shipped


def test_a_task_taken_again_before_its_last_runs_end_was_told_starts_after_it(
    jobs: Repo, holding: Callable[..., HoldingProxy]
) -> None:
    """Enqueued again (forced) while its first run's final status is still on its way: the second run
    starts only once the first run's status has gone (they never cross on the server)."""
    q = queue("again")
    task_id = create_task(jobs.work, "train.py", queue=q, skip_task_init=True)
    client = Client()
    proxy = holding(hold="tasks.completed", until="none", patience=5)
    daemon = spawn("daemon", "--queue", q, "--max-tasks", "2")
    try:
        wait_for(lambda: proxy.holding)
        client.call("tasks.enqueue", {"task": task_id, "queue": q, "force": True})
        assert daemon.wait(120) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    starts = [i for i, call in enumerate(proxy.calls) if call == ("tasks.started", task_id)]
    assert len(starts) == 2
    assert starts[0] < proxy.calls.index(("tasks.completed", task_id)) < starts[1]


def test_a_run_is_prepared_while_its_task_is_marked_started_and_starts_after_it(
    jobs: Repo, served: ServerProcess, holding: Callable[..., HoldingProxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon prepares the run (work tree, environment) while its `started` call is on its way (held
    here for 3 s), and the task's code runs only once the call has gone."""
    warm = create_task(jobs.work, "train.py", skip_task_init=True)  # its environment cached: the run
    assert launcher("execute", "--id", warm).returncode == 0  # below would start in well under 3 s
    q = queue("meanwhile")
    task_id = create_task(jobs.work, "train.py", queue=q, skip_task_init=True)
    proxy = holding(hold="tasks.started", until="none", patience=3)
    result = launcher("daemon", "--queue", q, "--max-tasks", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    monkeypatch.setenv("CLEARML_API_HOST", served.url)
    assert status(task_id) == "completed"
    stamps = {str(e.get("msg")): int(e["timestamp"]) / 1000 for e in Client().task_log(task_id)}
    printed = next(stamp for line, stamp in stamps.items() if line.startswith("epochs="))
    assert min(stamps.values()) < proxy.released_at - 1  # prepared while the call was held
    assert printed >= proxy.released_at - 0.01  # the code ran after it
