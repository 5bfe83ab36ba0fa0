"""Our tools and ClearML's, against our server over loopback HTTP.

1. Our clearml-task → our server → ClearML's `clearml-agent execute --id` and `clearml-agent daemon --queue`.
2. ClearML's clearml-task 2.1.12 → our server → our `clearml-launcher execute --id` and `daemon --once`.

ClearML's tools come from a venv of their own (testing/interop.py), cached between sessions."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearml_task.api import Client
from testing.interop import Tools, server_env, tool_env
from testing.launching import create_task, launcher, status, wait_for
from testing.repos import Repo, make_repo
from testing.servers import ServerProcess, start_server, stop_server

pytestmark = pytest.mark.interop

ARGS = ["epochs=3", "lr=0.5", "run-name=interop"]
GIVEN = {"epochs": 3, "lr": 0.5, "run_name": "interop"}
DEFAULTS = {"epochs": 1, "lr": 0.1, "run_name": "unnamed"}
AGENT_TIMEOUT = 300  # a cold agent builds the task's venv with pip (and clearml in it, for the SDK variant)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = start_server(tmp_path_factory.mktemp("interop") / "server")
    yield running
    stop_server(running)


@pytest.fixture
def ours(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Client:
    """Our code in this process, and our launcher's subprocesses, pointed at the server."""
    for key, value in server_env(server).items():
        monkeypatch.setenv(key, value)
    return Client()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "repo", "interop")


def queue(client: Client) -> tuple[str, str]:
    """A new queue: (name, id)."""
    name = f"interop-{uuid.uuid4().hex[:8]}"
    return name, client.queue_id(name, create=True)


def printed(task_id: str) -> dict[str, Any]:
    """What the fixture script printed, read back with `clearml-launcher logs` (a subprocess, over HTTP)."""
    result = launcher("logs", task_id, timeout=60)
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = {"log": result.stdout}
    for key, value in re.findall(r"^interop (argv|args) (.*)$", result.stdout, re.MULTILINE):
        out[key] = json.loads(value)
    sdk = re.search(r"^interop sdk (absent|task (\S+))$", result.stdout, re.MULTILINE)
    out["sdk"] = sdk and (sdk[2] or "absent")
    return out


def run_tool(
    argv: list[str], env: dict[str, str], log: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """One of ClearML's tools, to completion; its output kept in `log` for the failure message."""
    result = subprocess.run(argv, env=env, cwd=log.parent, capture_output=True, text=True, timeout=timeout)
    log.write_text(f"$ {' '.join(argv)}\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


# --- 1. our clearml-task → ClearML's agent ----------------------------------------------------------------


def agent_execute(tools: Tools, server: ServerProcess, task_id: str, tmp_path: Path) -> str:
    """ClearML's agent runs the task to its end; returns what the agent printed."""
    env = tool_env(tools, server, Path(os.environ["HOME"]))
    argv = [tools.bin("clearml-agent"), "execute", "--id", task_id, "--cpu-only"]
    result = run_tool(argv, env, tmp_path / "agent-execute.log", AGENT_TIMEOUT)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    return result.stdout + result.stderr


def test_agent_executes_our_task(tools: Tools, server: ServerProcess, ours: Client, repo: Repo,
                                 tmp_path: Path) -> None:  # fmt: skip
    task_id = create_task(repo.work, "train.py", args=ARGS, name="agent execute", skip_task_init=True)
    agent_execute(tools, server, task_id, tmp_path)
    assert status(task_id) == "completed"
    seen = printed(task_id)
    # Without ClearML's SDK in the task the agent passes no arguments: they reach a script only through the
    # SDK's argparse binding (the next test); our launcher puts them on the command line instead.
    assert seen.get("argv") == [] and seen.get("args") == DEFAULTS, seen["log"]
    assert seen["sdk"] == "absent", seen["log"]


def test_agent_executes_our_task_with_task_init(tools: Tools, server: ServerProcess, ours: Client, repo: Repo,
                                                tmp_path: Path) -> None:  # fmt: skip
    task_id = create_task(repo.work, "train.py", args=ARGS, name="agent sdk", packages=["clearml==2.1.12"])
    agent_execute(tools, server, task_id, tmp_path)
    assert status(task_id) == "completed"
    seen = printed(task_id)
    # the agent passes no arguments; ClearML's SDK (our injected Task.init) sets them from hyperparams.Args
    assert seen.get("argv") == [] and seen.get("args") == GIVEN, seen["log"]
    assert seen["sdk"] == task_id, seen["log"]  # Task.init attached to the task the agent ran
    assert_sdk_reported(task_id, ours, seen["log"])


def test_agent_executes_our_task_whose_repository_declares_requirements(
    tools: Tools, server: ServerProcess, ours: Client, repo: Repo, tmp_path: Path
) -> None:
    """ClearML's agent installs only script.requirements.pip: it carries the declared lines and clearml, so
    the injected Task.init runs there and the SDK gives the script its --args."""
    repo.write("requirements.txt", "six\n")
    task_id = create_task(repo.work, "train.py", args=ARGS, name="agent declared")
    recorded = ours.get_task(task_id)["script"]["requirements"]
    assert recorded["source"] == "requirements.txt" and recorded["pip"] == "six\nclearml\n"
    agent_execute(tools, server, task_id, tmp_path)
    assert status(task_id) == "completed"
    seen = printed(task_id)
    assert seen.get("args") == GIVEN, seen["log"]
    assert seen["sdk"] == task_id, seen["log"]


# Prints the name and the bytes of every file under data/ as hex, as the checkout it runs in has them.
SHOW_BYTES = """import os

for name in sorted(os.listdir(b"data")):
    with open(os.path.join(b"data", name), "rb") as handle:
        print("interop bytes " + name.hex() + " " + handle.read().hex())
"""


def data_files(directory: Path) -> dict[bytes, bytes]:
    return {name: (directory / os.fsdecode(name)).read_bytes() for name in os.listdir(os.fsencode(directory))}


def agent_applies(tools: Tools, server: ServerProcess, ours: Client, repo: Repo, tmp_path: Path) -> str:
    """Our clearml-task captures the uncommitted changes under data/ (as git binary patches), ClearML's agent
    applies them and the script sees exactly the work tree's names and bytes. Returns the patch."""
    task_id = create_task(repo.work, "show_bytes.py", name="agent bytes", skip_task_init=True,
                          force_no_requirements=True)  # fmt: skip
    patch: str = ours.get_task(task_id)["script"]["diff"]
    said = agent_execute(tools, server, task_id, tmp_path)
    # the agent says so before `git apply`, and fails the run if it fails (its success line is debug-level)
    assert "Applying uncommitted changes" in said and "Failed applying" not in said, tail(said)
    assert status(task_id) == "completed"
    log = printed(task_id)["log"]
    seen = {bytes.fromhex(name): bytes.fromhex(data)
            for name, data in re.findall(r"^interop bytes (\S+) (\S*)$", log, re.MULTILINE)}  # fmt: skip
    assert seen == data_files(repo.work / "data"), log
    return patch


def test_agent_applies_our_latin1_change_byte_exact(tools: Tools, server: ServerProcess, ours: Client,
                                                    repo: Repo, tmp_path: Path) -> None:  # fmt: skip
    repo.write("data/data.txt", "café\n".encode("latin-1"))
    repo.write("show_bytes.py", SHOW_BYTES)
    repo.commit("latin-1 data")
    repo.git("push", "-q")
    repo.write("data/data.txt", "café crème\nà bientôt\n".encode("latin-1"))
    patch = agent_applies(tools, server, ours, repo, tmp_path)
    assert patch.count("GIT binary patch") == 1, patch


def test_agent_applies_our_binary_changes_byte_exact(tools: Tools, server: ServerProcess, ours: Client,
                                                     repo: Repo, tmp_path: Path) -> None:  # fmt: skip
    """A changed binary file (a delta hunk), a new one (a literal hunk) whose name is not UTF-8 (C-quoted in
    the patch), both with NUL and high bytes, and a deleted one."""
    blob = bytes(range(256)) * 32
    repo.write("data/weights.bin", blob)
    repo.write("data/gone.bin", b"\0gone\xff")
    repo.write("show_bytes.py", SHOW_BYTES)
    repo.commit("binary data")
    repo.git("push", "-q")
    repo.write("data/weights.bin", blob[:1000] + b"\0\xff changed \0" + blob[1000:])
    repo.write(os.fsdecode(b"data/n\xe4me.bin"), b"\x00\x01\x02\xfe\xff\x00" * 50)
    (repo.work / "data" / "gone.bin").unlink()
    patch = agent_applies(tools, server, ours, repo, tmp_path)
    assert patch.count("GIT binary patch") == 3 and '"b/data/n\\344me.bin"' in patch, patch
    assert "\ndelta " in patch and "\nliteral " in patch, patch


def test_agent_daemon_runs_our_task(tools: Tools, server: ServerProcess, ours: Client, repo: Repo,
                                    tmp_path: Path) -> None:  # fmt: skip
    q, q_id = queue(ours)
    task_id = create_task(repo.work, "train.py", args=ARGS, name="agent daemon", skip_task_init=True, queue=q)
    env = tool_env(tools, server, Path(os.environ["HOME"]))
    log = tmp_path / "agent-daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            [tools.bin("clearml-agent"), "daemon", "--queue", q, "--cpu-only"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    registered: set[str] = set()

    def finished() -> bool:
        registered.update(w["id"] for w in listening(ours, q_id))
        return status(task_id) in ("completed", "failed", "stopped") or daemon.poll() is not None

    try:
        wait_for(finished, timeout=AGENT_TIMEOUT, interval=0.5)
    finally:
        daemon.terminate()  # SIGTERM: the agent unregisters its worker
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)  # the agent and whatever it started
            daemon.wait()
    assert status(task_id) == "completed", tail(log.read_text())
    assert printed(task_id).get("args") == DEFAULTS
    assert registered, "the agent's worker never showed in workers.get_all"
    assert not listening(ours, q_id)


def listening(client: Client, queue_id: str) -> list[dict[str, Any]]:
    """The workers that serve a queue (workers.get_all)."""
    workers = client.call("workers.get_all")["workers"]
    return [w for w in workers if any(q["id"] == queue_id for q in w.get("queues") or [])]


# --- 2. ClearML's clearml-task → our launcher ---------------------------------------------------------------

# ClearML's clearml-task records --args keys as typed, and ClearML's SDK matches them to the parser by
# `dest`: `run-name=...` would be recorded as "run-name" and reach the script through neither the SDK nor our
# launcher (ours records the dest for either spelling).
THEIR_ARGS = ["epochs=3", "lr=0.5", "run_name=interop"]
THEIR_ARGV = ["--epochs", "3", "--lr", "0.5", "--run-name", "interop"]


def clearml_task(
    tools: Tools, server: ServerProcess, repo: Repo, name: str, tmp_path: Path, *extra: str
) -> str:
    """ClearML's clearml-task 2.1.12 on the fixture repo. It needs `--cwd .` with a --folder (its own bug),
    and requirements (here `--packages`; without them it wants a requirements.txt in the repo). It injects
    Task.init, so the task runs with ClearML's SDK."""
    env = tool_env(tools, server, Path(os.environ["HOME"]))
    argv = [tools.bin("clearml-task"), "--project", "interop", "--name", name, "--folder", str(repo.work),
            "--cwd", ".", "--script", "train.py", "--args", *THEIR_ARGS, "--packages", "clearml==2.1.12",
            *extra]  # fmt: skip
    result = run_tool(argv, env, tmp_path / "clearml-task.log", 120)
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    found = re.search(r"New task created id=(\w+)", result.stdout)
    assert found, result.stdout
    return found[1]


def assert_ran_with_their_args(task_id: str, ours: Client) -> None:
    assert status(task_id) == "completed"
    seen = printed(task_id)
    assert seen.get("argv") == THEIR_ARGV, seen["log"]  # our launcher put them on the command line
    assert seen.get("args") == GIVEN, seen["log"]
    assert seen["sdk"] == task_id, seen["log"]  # their Task.init attached to the task our launcher ran
    assert_sdk_reported(task_id, ours, seen["log"])


def assert_sdk_reported(task_id: str, ours: Client, log: str) -> None:
    """The SDK's report_scalar values are stored and readable through the API, and it printed no error."""
    series = ours.call("events.scalar_metrics_iter_histogram", {"task": task_id})
    assert series["loss"]["train"]["x"] == [0, 1, 2]
    assert series["loss"]["train"]["y"] == pytest.approx([1.0, 0.5, 1 / 3])
    errors = [line for line in log.splitlines() if re.search(r"\bERROR\b|Traceback|Exception:", line)]
    assert not errors, "\n".join(errors)


def test_launcher_executes_clearml_task(tools: Tools, server: ServerProcess, ours: Client, repo: Repo,
                                        launcher_home: Path, tmp_path: Path) -> None:  # fmt: skip
    task_id = clearml_task(tools, server, repo, "clearml-task execute", tmp_path)
    assert status(task_id) == "created"
    result = launcher("execute", "--id", task_id, env={"CLEARML_TASK_HOME": str(launcher_home)})
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    assert_ran_with_their_args(task_id, ours)


def test_daemon_runs_clearml_task(tools: Tools, server: ServerProcess, ours: Client, repo: Repo,
                                  launcher_home: Path, tmp_path: Path) -> None:  # fmt: skip
    q, _ = queue(ours)
    task_id = clearml_task(tools, server, repo, "clearml-task daemon", tmp_path, "--queue", q)
    assert status(task_id) == "queued"
    result = launcher("daemon", "--queue", q, "--once", env={"CLEARML_TASK_HOME": str(launcher_home)})
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    assert_ran_with_their_args(task_id, ours)


# --- 4. the SDK enqueues work for our daemon --------------------------------------------------------------
# The SDK, run locally, forks its reporting process at the end of Task.init() while its repository-detection
# thread runs git: a fork landing while git starts leaves the child holding that pipe's write end, and the
# thread (which close() waits for, up to 300 s) never sees EOF. Found with stack dumps and a 20-line
# reproduction without ClearML; offline mode stalls too, so it is not the server. Reporting from a thread
# (the SDK's own setting; our launcher gives the SDK the same) means no fork: 60 of 60 runs enqueued in 1-2 s.
SDK_CONFIG = "sdk.development.report_use_subprocess: false\n"


def run_sdk_script(tools: Tools, server: ServerProcess, repo: Repo, script: str, q: str, tmp_path: Path,
                   *argv: str, done_when: str) -> str:  # fmt: skip
    """A script using ClearML's SDK, run locally (from the tools' venv) in the committed, pushed repo, to its
    end. Returns its output."""
    config = tmp_path / "sdk.clearml.conf"
    config.write_text(SDK_CONFIG)
    env = {**tool_env(tools, server, Path(os.environ["HOME"])), "INTEROP_QUEUE": q,
           "CLEARML_CONFIG_FILE": str(config)}  # fmt: skip
    command = [tools.bin("python"), str(repo.work / script), *argv]
    log = tmp_path / f"{script}.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, cwd=repo.work, stdout=out, stderr=subprocess.STDOUT)
    try:
        process.wait(120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    text = log.read_text()
    assert process.returncode == 0 and done_when in text, tail(text)
    return text


def test_execute_remotely_is_run_by_our_daemon(tools: Tools, server: ServerProcess, ours: Client, repo: Repo,
                                               launcher_home: Path, tmp_path: Path) -> None:  # fmt: skip
    q, _ = queue(ours)
    local = run_sdk_script(tools, server, repo, "remote.py", q, tmp_path, "--epochs", "4",
                           done_when="continuing execution remotely")  # fmt: skip
    assert "interop remote run" not in local  # the local process stopped at execute_remotely
    task_id = re.search(r"created new task id=(\w+)", local)[1]  # type: ignore[index]
    assert status(task_id) == "queued"
    task = ours.get_task(task_id)
    assert task["script"]["entry_point"] == "remote.py" and task["script"]["version_num"]  # detected in time
    result = launcher("daemon", "--queue", q, "--once", env={"CLEARML_TASK_HOME": str(launcher_home)})
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    log = launcher("logs", task_id).stdout
    assert status(task_id) == "completed", tail(log)
    assert f"interop remote run epochs=4 task={task_id}" in log, tail(log)


def test_function_task_is_run_by_our_daemon(tools: Tools, server: ServerProcess, ours: Client, repo: Repo,
                                            launcher_home: Path, tmp_path: Path) -> None:  # fmt: skip
    q, _ = queue(ours)
    local = run_sdk_script(tools, server, repo, "function.py", q, tmp_path, done_when="interop function task")
    task_id = re.search(r"interop function task (\w+)", local)[1]  # type: ignore[index]
    assert status(task_id) == "queued"
    result = launcher("daemon", "--queue", q, "--once", env={"CLEARML_TASK_HOME": str(launcher_home)})
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    assert status(task_id) == "completed"
    assert "interop function result 7" in launcher("logs", task_id).stdout
