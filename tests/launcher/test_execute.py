"""clearml-launcher execute, end to end: real repositories, real processes, real uv, the real server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

import pytest

from clearml_task import console
from clearml_task.api import Client
from clearml_task.errors import APICallError
from testing.launching import (
    Sleepy,
    alive,
    create_task,
    launcher,
    log_lines,
    sleepy_task,
    spawn,
    status,
    wait_for,
)
from testing.repos import Repo, make_repo
from testing.servers import start_server, stop_server


@pytest.fixture
def jobs(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "jobs", "jobs")


def test_completed_with_its_args_log_and_requirements(jobs: Repo) -> None:
    task_id = create_task(jobs.work, "train.py", args=["epochs=3", "lr=0.5", "fast=true"])
    result = launcher("execute", "--id", task_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(task_id) == "completed"
    lines = log_lines(task_id)
    assert "epochs=3 lr=0.5 fast=True" in lines
    assert f"CLEARML_TASK_ID={task_id}" in lines
    assert any(line.startswith("workspace:") for line in lines)
    assert any(line.startswith("environment:") for line in lines)
    task = Client().get_task(task_id)
    assert "org_pip" in task["script"]["requirements"]


def test_a_clone_of_a_task_that_ran_keeps_its_requirements_as_first_given(jobs: Repo) -> None:
    """A re-run records nothing new when the task already holds what was installed: org_pip stays the
    requirements first given (not the first run's freeze), and no update is sent."""
    first = create_task(jobs.work, "train.py", packages=["six"], skip_task_init=True)
    assert launcher("execute", "--id", first).returncode == 0
    ran = Client().get_task(first)["script"]["requirements"]
    assert ran["org_pip"].strip() == "six" and ran["pip"].strip().startswith("six==")
    clone = Client().clone_task(first, new_task_name="again")
    result = launcher("execute", "--id", clone)
    assert result.returncode == 0, result.stdout + result.stderr
    again = Client().get_task(clone)
    assert again["script"]["requirements"] == ran
    assert "launcher: the task already records its 1 installed packages" in log_lines(clone)


def test_the_uncommitted_change_is_what_runs(jobs: Repo) -> None:
    jobs.write("train.py", jobs.work.joinpath("train.py").read_text() + "print('LOCAL EDIT')\n")
    task_id = create_task(jobs.work, "train.py")
    assert launcher("execute", "--id", task_id).returncode == 0
    assert "LOCAL EDIT" in log_lines(task_id)


def test_failed_with_the_exit_code(jobs: Repo) -> None:
    task_id = create_task(jobs.work, "fail.py")
    result = launcher("execute", "--id", task_id)
    assert result.returncode == 1
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert "exit code 3" in task["status_message"]
    assert "about to fail" in log_lines(task_id)


def test_aborted_mid_run_kills_the_whole_tree(jobs: Repo, tmp_path: Path) -> None:
    stopped_mid_run(jobs, tmp_path, 3, lambda task, running: launcher("abort", task.task_id).returncode == 0)


def stopped_mid_run(
    jobs: Repo, tmp_path: Path, tick: int, stop: Callable[[Sleepy, Popen[bytes]], bool]
) -> str:
    """sleepy.py under `clearml-launcher execute` until it printed `tick N`, then `stop`: the task ends
    stopped, and its whole process tree is gone. Returns the task's id."""
    task = sleepy_task(jobs.work, tmp_path)
    running = spawn("execute", "--id", task.task_id, "--grace", "2")
    try:
        task.wait_for_tick(tick)
        assert stop(task, running)
        running.wait(60)
    finally:
        if running.poll() is None:
            running.kill()
    assert status(task.task_id) == "stopped"
    task.assert_tree_gone()
    return task.task_id


def test_a_patch_that_does_not_apply_fails_readably(jobs: Repo) -> None:
    jobs.write("train.py", jobs.work.joinpath("train.py").read_text() + "print('x')\n")
    task_id = create_task(jobs.work, "train.py")
    client = Client()
    script = client.get_task(task_id)["script"]
    client.edit_task(
        task_id, script={"diff": script["diff"].replace("import argparse", "import nothing_like_it")}
    )
    assert launcher("execute", "--id", task_id).returncode == 1
    task = client.get_task(task_id)
    assert task["status"] == "failed" and "does not apply" in task["status_message"]
    assert any("hint:" in line for line in log_lines(task_id))


def test_an_unknown_commit_fails_readably(jobs: Repo) -> None:
    task_id = create_task(jobs.work, "train.py")
    Client().edit_task(task_id, script={"version_num": "0123456789abcdef0123456789abcdef01234567"})
    assert launcher("execute", "--id", task_id).returncode == 1
    task = Client().get_task(task_id)
    assert task["status"] == "failed" and "is not on" in task["status_message"]


def test_a_missing_requirement_fails_readably(jobs: Repo) -> None:
    task_id = create_task(jobs.work, "train.py", packages=["this-package-does-not-exist-xyz==1.0"])
    assert launcher("execute", "--id", task_id).returncode == 1
    task = Client().get_task(task_id)
    assert task["status"] == "failed" and "requirements" in task["status_message"]


def test_the_environment_cache_is_hit_the_second_time(jobs: Repo) -> None:
    first = create_task(jobs.work, "train.py")
    second = create_task(jobs.work, "train.py")
    assert launcher("execute", "--id", first).returncode == 0
    assert launcher("execute", "--id", second).returncode == 0
    assert any("cache hit" in line for line in log_lines(second) if line.startswith("environment:"))
    assert not any(line.startswith("environment: built") for line in log_lines(second))


def test_gpu_variables(jobs: Repo) -> None:
    task_id = create_task(jobs.work, "train.py")
    assert launcher("execute", "--id", task_id, "--gpus", "0,1").returncode == 0
    assert "CUDA_VISIBLE_DEVICES=0,1" in log_lines(task_id)
    cpu = create_task(jobs.work, "train.py")
    assert launcher("execute", "--id", cpu, "--cpu-only").returncode == 0
    assert "CUDA_VISIBLE_DEVICES=" in log_lines(cpu)


def test_ten_thousand_lines_arrive_complete_and_in_order(jobs: Repo) -> None:
    task_id = create_task(jobs.work, "many.py", args=["lines=10000"])
    assert launcher("execute", "--id", task_id).returncode == 0
    printed = [line for line in log_lines(task_id) if line.startswith("line ")]
    assert printed == [f"line {i:05d}" for i in range(10000)]


def test_execute_clone_and_require_queue(jobs: Repo) -> None:
    task_id = create_task(jobs.work, "train.py")
    refused = launcher("execute", "--id", task_id, "--require-queue")
    assert refused.returncode == 1 and "not queued" in refused.stderr
    assert launcher("execute", "--id", task_id).returncode == 0
    again = launcher("execute", "--id", task_id)
    assert again.returncode == 1 and "--clone" in again.stderr  # a completed task does not run again
    cloned = launcher("execute", "--id", task_id, "--clone")
    assert cloned.returncode == 0
    assert status(task_id) == "completed"


def test_over_http(jobs: Repo, tmp_path: Path) -> None:
    server = start_server(tmp_path / "srv")
    try:
        keys = server.keys
        env = {"CLEARML_API_HOST": server.url, "CLEARML_API_ACCESS_KEY": keys["access_key"],
               "CLEARML_API_SECRET_KEY": keys["secret_key"]}  # fmt: skip
        import os

        previous = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            task_id = create_task(jobs.work, "train.py", args=["epochs=7"])
            result = launcher("execute", "--id", task_id, env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "epochs=7 lr=0.1 fast=False" in log_lines(task_id)
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        stop_server(server)


def test_steps_stand_out_on_a_terminal_and_are_plain_when_piped(jobs: Repo) -> None:
    import os
    import pty
    import subprocess
    import sys

    from testing.servers import ROOT

    piped = launcher("execute", "--id", create_task(jobs.work, "train.py"))
    assert "workspace:" in piped.stdout and "\x1b[" not in piped.stdout
    task_id = create_task(jobs.work, "train.py")
    leader, follower = pty.openpty()
    child = subprocess.Popen([sys.executable, "-m", "launcher", "execute", "--id", task_id], cwd=ROOT,
                             stdout=follower, stderr=follower, env=dict(os.environ))  # fmt: skip
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the child is done
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert child.wait(60) == 0
    text = seen.decode(errors="replace")
    assert "\x1b[" in text and "workspace" in text and "epochs=1 lr=0.1 fast=False" in text


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_stopping_the_launcher_stops_the_task_never_completes_it(
    jobs: Repo, tmp_path: Path, signum: str
) -> None:
    import signal

    sent: list[Popen[bytes]] = []

    def send(task: Sleepy, running: Popen[bytes]) -> bool:
        running.send_signal(getattr(signal, signum))
        sent.append(running)
        return True

    task_id = stopped_mid_run(jobs, tmp_path, 2, send)
    # Said as what it was (not "stopped on the server"), and the command's own exit: 130 for Ctrl-C (with
    # `error: interrupted`, as every command), 143 for SIGTERM.
    assert sent[0].returncode == (130 if signum == "SIGINT" else 143)
    assert Client().get_task(task_id)["status_message"] == "stopped: the launcher running it was stopped"
    lines = log_lines(task_id)
    assert "launcher: stopped: the launcher itself was stopped (Ctrl-C, SIGTERM or --stop)" in lines
    assert not any("stopped on the server" in line for line in lines)


SHOW_SDK_CONFIG = """import os, stat
path = os.environ.get("CLEARML_CONFIG_FILE", "")
mode = oct(stat.S_IMODE(os.stat(path).st_mode)) if path else "-"
print("config mode", mode, "same", path == os.environ.get("TRAINS_CONFIG_FILE"))
print("config inside the checkout", os.path.abspath(path).startswith(os.getcwd() + os.sep) if path else "-")
print(open(path).read() if path else "no config file")
print("config path", path)
"""


def test_the_sdk_gets_a_config_that_reports_from_a_thread(jobs: Repo, isolated_env: Path) -> None:
    """The SDK's own ~/clearml.conf settings are kept, the launcher's added; the file (0600) is gone after."""
    (isolated_env / "clearml.conf").write_text("sdk { aws { s3 { region: eu-west-1 } } }\n")
    jobs.write("show.py", SHOW_SDK_CONFIG)
    task_id = create_task(jobs.work, "show.py", skip_task_init=True)
    assert launcher("execute", "--id", task_id).returncode == 0
    lines = log_lines(task_id)
    assert "config mode 0o600 same True" in lines and "config inside the checkout False" in lines
    assert "sdk { aws { s3 { region: eu-west-1 } } }" in lines
    assert "sdk.development.report_use_subprocess: false" in lines
    path = next(line.removeprefix("config path ") for line in lines if line.startswith("config path "))
    assert path.endswith(".clearml.conf") and not Path(path).exists()

    (isolated_env / "other.conf").write_text("sdk { storage { cache { default_base_dir: /x } } }\n")
    task_id = create_task(jobs.work, "show.py", skip_task_init=True)
    assert launcher("execute", "--id", task_id, env={"CLEARML_CONFIG_FILE": "~/other.conf"}).returncode == 0
    assert "sdk { storage { cache { default_base_dir: /x } } }" in log_lines(task_id)  # ~ expanded

    task_id = create_task(jobs.work, "show.py", skip_task_init=True)
    assert launcher("execute", "--id", task_id, "--sdk-report-subprocess").returncode == 0
    assert "no config file" in log_lines(task_id)


def test_no_log_line_or_name_hands_the_terminal_an_escape_sequence(jobs: Repo) -> None:
    """The task's output (and any event a key holder adds) is shown with its control characters escaped:
    a line cannot set the window title, clear the screen or write the clipboard of whoever reads the log."""
    hostile = "\x1b]0;PWNED\x07\x1b[2Jhello\x9b31m\x1b]52;c;ZWNobyBwd25lZA==\x07"
    jobs.write("esc.py", f"print({hostile!r})\n")
    jobs.commit("escape sequences")
    task_id = create_task(jobs.work, "esc.py", force_no_requirements=True, name="name\x1b[2J")
    ran = launcher("execute", "--id", task_id)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert hostile in log_lines(task_id)  # stored as printed
    Client().send_log(task_id, [("info", "a carriage \r return")])
    with pytest.raises(APICallError, match="lone surrogate"):  # not text: our server refuses to store it
        Client().send_log(task_id, [("info", "lone \ud800 surrogate")])
    shown = launcher("logs", task_id)
    listed = launcher("tasks")
    assert shown.returncode == 0 and listed.returncode == 0, shown.stderr + listed.stderr
    assert r"\x1b]0;PWNED\x07\x1b[2Jhello\x9b31m" in ran.stdout and r"\x1b]0;PWNED" in shown.stdout
    assert r"a carriage \x0d return" in shown.stdout and r"name\x1b[2J" in listed.stdout
    for output in (ran.stdout, shown.stdout, listed.stdout):
        assert not any(char in output for char in "\x1b\x07\x9b\r"), output
    # another server may hand one over: shown escaped all the same
    assert console.visible("lone \ud800 surrogate \r over") == r"lone \ud800 surrogate \x0d over"


def test_an_error_of_the_launchers_own_fails_the_task_never_strands_it(jobs: Repo, tmp_path: Path) -> None:
    """Something the launcher did not foresee (here: a file where its work trees go, as a full disk or a
    bug would): the task is failed with the error, its traceback in the task's log, not left in_progress."""
    import os

    task_id = create_task(jobs.work, "train.py", skip_task_init=True, skip_python_env_install=True)
    work = Path(os.environ["CLEARML_TASK_HOME"]) / "launcher" / "work"
    work.parent.mkdir(parents=True, exist_ok=True)
    work.write_text("not a directory\n")
    result = launcher("execute", "--id", task_id)
    task = Client().get_task(task_id)
    assert result.returncode == 1 and task["status"] == "failed", result.stdout + result.stderr
    assert task["status_message"].startswith("the launcher failed: FileExistsError: "), task
    assert str(work) in task["status_message"]
    assert "Traceback" not in result.stderr
    assert any(line.strip() == "Traceback (most recent call last):" for line in log_lines(task_id))


def test_a_launcher_error_while_the_task_runs_ends_the_tasks_processes(jobs: Repo, tmp_path: Path) -> None:
    """The run's record cannot be written once the process is started (a full disk, with a long and
    many-line error): the task is failed, its status message one line cut to the record's limit (the whole
    text in the log), and no process of the task outlives the run (nothing would track it any more)."""
    import os

    from launcher import execute
    from launcher.logship import LogShipper
    from launcher.registry import MAX_MESSAGE

    sleepy = sleepy_task(jobs.work, tmp_path, skip_task_init=True, skip_python_env_install=True)
    client = Client()
    task = execute.take(client, sleepy.task_id)
    said = "No space left on device\n" + "x" * 2000

    def record_a_full_disk_refuses(change: dict[str, object]) -> None:
        if "pid" in change:
            raise OSError(28, said)

    home = Path(os.environ["CLEARML_TASK_HOME"]) / "launcher"
    settings = execute.Settings(home=home, echo=False, on_run=record_a_full_disk_refuses)
    log = LogShipper(client, sleepy.task_id, "test")
    try:
        assert execute.run(client, task, settings, log) == "failed"
    finally:
        log.close()
    message = client.get_task(sleepy.task_id)["status_message"]
    assert message.startswith("the launcher failed: OSError: [Errno 28] No space left on device\\nxxx"), (
        message
    )
    assert "\n" not in message and len(message) == MAX_MESSAGE
    assert any(said.splitlines()[1] in line for line in log_lines(sleepy.task_id))
    wait_for(lambda: not processes_of(sleepy.task_id), timeout=10)


def processes_of(task_id: str) -> list[int]:
    """The live processes whose environment names the task (its process and what it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            marked = f"CLEARML_TASK_ID={task_id}".encode() in (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marked and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("how", ["abort", "sigterm"])
def test_a_task_stuck_in_its_checkout_is_stopped_by_an_abort_or_the_launchers_stop(
    jobs: Repo, how: str
) -> None:
    """A repository whose server takes the connection and never answers: `git fetch` would wait forever.
    An abort from the server (or SIGTERM to the launcher) ends the fetch and the task ends stopped (they
    were ignored until the fetch ended: a stuck remote held the task `in_progress` and the launcher for
    good)."""
    import signal

    from testing.servers import SilentServer

    task_id = create_task(jobs.work, "train.py", skip_task_init=True)
    silent = SilentServer()
    try:
        Client().edit_task(task_id, script={"repository": f"{silent.url}/stuck.git"})
        running = spawn("execute", "--id", task_id)
        try:
            wait_for(lambda: silent.connections > 0, timeout=60)  # git is fetching now
            if how == "abort":
                assert launcher("abort", task_id).returncode == 0
            else:
                running.send_signal(signal.SIGTERM)
            code = running.wait(60)  # TimeoutExpired: the fetch still holds the launcher
        finally:
            if running.poll() is None:
                running.kill()
    finally:
        silent.stop()
    assert status(task_id) == "stopped"
    expected = "aborted" if how == "abort" else "stopped: the launcher running it was stopped"
    assert Client().get_task(task_id)["status_message"] == expected
    assert code == (1 if how == "abort" else 143)


def test_a_remote_that_stalls_is_given_up(jobs: Repo) -> None:
    """A fetch that gets nothing for the stall limit (GIT_HTTP_LOW_SPEED_TIME; by default 5 minutes under 1
    KB/s) fails the task saying the fetch failed, rather than holding an unattended launcher for ever."""
    from testing.servers import SilentServer

    task_id = create_task(jobs.work, "train.py", skip_task_init=True)
    silent = SilentServer()
    try:
        Client().edit_task(task_id, script={"repository": f"{silent.url}/stuck.git"})
        result = launcher("execute", "--id", task_id, env={"GIT_HTTP_LOW_SPEED_TIME": "2"}, timeout=120)
    finally:
        silent.stop()
    assert result.returncode == 1 and status(task_id) == "failed"
    assert "could not fetch" in Client().get_task(task_id)["status_message"]


def test_the_checkouts_git_dies_with_a_killed_launcher(jobs: Repo) -> None:
    """kill -9 of the launcher while its git fetch waits on a remote: the fetch ends too (it went on as an
    orphan, for as long as the remote held it), as a run's processes do (the warden ends them)."""
    import signal

    from testing.servers import SilentServer

    task_id = create_task(jobs.work, "train.py", skip_task_init=True)
    silent = SilentServer()
    name = f"stuck-{task_id}.git"
    try:
        Client().edit_task(task_id, script={"repository": f"{silent.url}/{name}"})
        running = spawn("execute", "--id", task_id)
        wait_for(lambda: silent.connections > 0, timeout=60)
        running.send_signal(signal.SIGKILL)
        running.wait(30)
        wait_for(lambda: not _processes_naming(name), timeout=30)  # the warden ends them within seconds
    finally:
        silent.stop()


def _processes_naming(text: str) -> list[int]:
    """The processes whose command line holds `text`."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if text.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found
