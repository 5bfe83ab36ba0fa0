"""Both commands as a user runs them: real subprocesses on the embedded default and over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, start_server, stop_server

TRAIN = ROOT / "fixtures" / "repos" / "quickstart" / "train.py"


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    module = "launcher" if argv[0] == "clearml-launcher" else "clearml_task.cli"
    return subprocess.run(
        [sys.executable, "-m", module, *argv[1:]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr


def test_create_enqueue_and_list_on_the_embedded_default() -> None:
    created = run(
        "clearml-task",
        "--project",
        "demo",
        "--name",
        "quickstart",
        "--script",
        str(TRAIN),
        "--queue",
        "default",
        "--args",
        "epochs=2",
        "lr=0.5",
        "--output",
        "json",
    )
    assert created.returncode == 0, created.stderr
    result = json.loads(created.stdout)
    assert len(result["id"]) == 32 and result["queue"] and result["project"]
    queues = run("clearml-launcher", "queues")
    assert queues.returncode == 0
    assert "default" in queues.stdout and result["id"] in queues.stdout
    tasks = run("clearml-launcher", "tasks", "--status", "queued")
    assert result["id"] in tasks.stdout


def test_the_task_document_records_the_script_and_args() -> None:
    created = run(
        "clearml-task",
        "--project",
        "demo",
        "--name",
        "quickstart",
        "--script",
        str(TRAIN),
        "--args",
        "epochs=3",
        "note=a=b",
        "--output",
        "json",
    )
    task_id = json.loads(created.stdout)["id"]
    from clearml_task.api import Client

    task = Client().get_task(task_id)
    assert task["status"] == "created"
    assert task["script"]["entry_point"] == "train.py"
    assert task["script"]["diff"] == TRAIN.read_text()
    assert {k: v["value"] for k, v in task["hyperparams"]["Args"].items()} == {"epochs": "3", "note": "a=b"}


def test_bad_input_is_one_line_and_creates_nothing() -> None:
    missing = run("clearml-task", "--project", "demo", "--name", "nothing", "--script", "no/such/file.py")
    assert_one_line_error(missing, 1, "does not exist")
    unknown_queue = run(
        "clearml-task",
        "--project",
        "demo",
        "--name",
        "nothing",
        "--script",
        str(TRAIN),
        "--queue",
        "no-such-queue",
    )
    assert_one_line_error(unknown_queue, 1, "no queue named 'no-such-queue' (known queues: default)")
    bad_args = run(
        "clearml-task", "--project", "demo", "--name", "nothing", "--script", str(TRAIN), "--args", "novalue"
    )
    assert_one_line_error(bad_args, 2, "--args takes key=value pairs")
    bad_type = run(
        "clearml-task",
        "--project",
        "demo",
        "--name",
        "nothing",
        "--script",
        str(TRAIN),
        "--task-type",
        "nonsense",
    )
    assert_one_line_error(bad_type, 1, "unknown --task-type")
    listed = run("clearml-launcher", "tasks")
    assert "nothing" not in listed.stdout


def test_logs_command_prints_the_log() -> None:
    from clearml_task.api import Client

    client = Client()
    task_id = client.create_task({"name": "with a log", "type": "training"})
    client.send_log(task_id, [("info", "first line"), ("error", "second line")])
    result = run("clearml-launcher", "logs", task_id)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["first line", "second line"]
    assert_one_line_error(run("clearml-launcher", "logs", "0" * 32), 1, "no task with id")


def test_server_prints_the_config_block_once_and_binds_loopback(tmp_path: Path) -> None:
    server = start_server(tmp_path / "srv")
    try:
        first = server.log.read_text()
        assert server.url.startswith("http://127.0.0.1:")
        keys = server.keys
        assert f'"access_key" = "{keys["access_key"]}"' in first and f"api_server: {server.url}" in first
    finally:
        stop_server(server)
    again = start_server(tmp_path / "srv")
    try:
        second = again.log.read_text()
        assert keys["secret_key"] not in second and "credentials.json" in second
        created = run(
            "clearml-task",
            "--project",
            "p-http",
            "--name",
            "over http",
            "--script",
            str(TRAIN),
            "--output",
            "json",
            env={
                "CLEARML_API_HOST": again.url,
                "CLEARML_API_ACCESS_KEY": keys["access_key"],
                "CLEARML_API_SECRET_KEY": keys["secret_key"],
            },
        )
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["url"].endswith(
            f"/tasks/{json.loads(created.stdout)['id']}/output/log"
        )
    finally:
        stop_server(again)


def test_server_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    server = start_server(tmp_path / "srv")
    try:
        port = server.url.rsplit(":", 1)[1]
        busy = run("clearml-launcher", "server", "--port", port, "--data-dir", str(tmp_path / "other"))
        assert_one_line_error(busy, 1, f"cannot listen on 127.0.0.1:{port}")
    finally:
        stop_server(server)


def test_unreachable_server_is_a_clear_error() -> None:
    from clearml_task.server.serve import free_port

    env = {
        "CLEARML_API_HOST": f"http://127.0.0.1:{free_port()}",
        "CLEARML_API_ACCESS_KEY": "K",
        "CLEARML_API_SECRET_KEY": "S",
    }
    result = run("clearml-launcher", "queues", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach the ClearML server" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("command", ["clearml-task", "clearml-launcher"])
def test_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout
