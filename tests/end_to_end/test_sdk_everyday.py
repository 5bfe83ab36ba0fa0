"""ClearML's SDK's everyday calls against our server, run locally and as a task under our launcher: what
the script stores (parameters, a configuration object, scalars, a debug image, plots, a single value,
artifacts, an output model and their files) reads back whole with `Task.get_task`, and the SDK logs no
error."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearml_task.api import Client
from testing.interop import Tools, server_env, tool_env
from testing.launching import create_task, launcher, status
from testing.repos import Repo, make_repo
from testing.servers import ServerProcess, start_server, stop_server

pytestmark = pytest.mark.interop

# Reporting from a thread, not a forked process (see test_interop.SDK_CONFIG; our launcher does the same).
SDK_CONFIG = "sdk.development.report_use_subprocess: false\n"
ERROR_LINE = re.compile(r" - (ERROR|CRITICAL) - |^Traceback|Failed uploading|Unable to find endpoint", re.M)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = start_server(tmp_path_factory.mktemp("everyday") / "server")
    yield running
    stop_server(running)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "repo", "sdk_everyday")


def found_in(output: str) -> dict[str, Any]:
    line = re.search(r"^EVERYDAY (.*)$", output, re.MULTILINE)
    assert line, output[-4000:]
    found: dict[str, Any] = json.loads(line[1])
    return found


def assert_everything_read_back(found: dict[str, Any], output: str) -> None:
    assert found["params"] == {"lr": 0.1, "epochs": 3}
    assert found["parameters"] == {"General/lr": "0.1", "General/epochs": "3"}
    assert found["config"] == found["configuration"] == {"layers": [1, 2, 3]}
    assert found["artifact_numbers"] == {"a": 1, "b": [1, 2]}
    assert found["artifact_file"] is True  # get_local_copy() byte-exact
    assert found["frame"] in (None, [1, 2, 3])  # a DataFrame when pandas is there
    assert found["model_bytes"] is True  # the output model's get_local_copy() byte-exact
    assert found["scalars"] == [1 / 3, 0.5, 1.0]
    assert found["debug_samples"] == 1
    assert found["single_values"] == {"accuracy": 0.93}
    assert found["plots"] == ["plotly", "table"]
    assert found["task_id"] in found["tasks_in_project"]  # Task.get_tasks(project_name=...)
    assert found["model_id"] in found["models_found"]  # Model.query_models(project_name=...)
    assert not ERROR_LINE.search(output), output[-4000:]


def test_everyday_sdk_calls_locally(tools: Tools, server: ServerProcess, repo: Repo, tmp_path: Path) -> None:
    config = tmp_path / "sdk.clearml.conf"
    config.write_text(SDK_CONFIG)
    env = {**tool_env(tools, server, Path(os.environ["HOME"])), "CLEARML_CONFIG_FILE": str(config)}
    result = subprocess.run(
        [tools.bin("python"), str(repo.work / "everyday.py")],
        env=env, cwd=repo.work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert_everything_read_back(found_in(output), output)


def test_everyday_sdk_calls_as_a_task_under_our_launcher(
    server: ServerProcess, repo: Repo, launcher_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in server_env(server).items():
        monkeypatch.setenv(key, value)
    task_id = create_task(repo.work, "everyday.py", name="everyday")
    result = launcher("execute", "--id", task_id, env={"CLEARML_TASK_HOME": str(launcher_home)}, timeout=600)
    log = launcher("logs", task_id, timeout=60).stdout
    assert result.returncode == 0 and status(task_id) == "completed", (result.stdout + result.stderr + log)[
        -4000:
    ]
    found = found_in(log)
    assert found["task_id"] == task_id  # the script's Task.init attached to the launched task
    assert_everything_read_back(found, log)
    assert Client().get_task(task_id)["models"]["output"]


FIXES_SCRIPT = r"""
import json, os, tempfile
from clearml import Dataset, Model, OutputModel, Task

task = Task.create(project_name="sdk-fixes", task_name="fixes")
task.set_parameters({"Args/lr": 0.1, "Args/epochs": 3})
task.set_user_properties(owner="me", team="a")
deleted = task.delete_parameter("Args/lr")
task.delete_user_properties([("properties", "team")])
task.reload()
weights = os.path.join(tempfile.mkdtemp(), "w.bin")
open(weights, "wb").write(b"weights")
output = OutputModel(task=task, name="fixes model")
output.update_weights(weights_filename=weights)
Model(output.id).archive()
queued = Task.create(project_name="sdk-fixes", task_name="queued")
Task.enqueue(queued, queue_name="sdk-fixes-queue")
dataset = Dataset.create(dataset_name="fixes data", dataset_project="sdk-fixes")
found = {
    "deleted": deleted,
    "params": sorted(task.get_parameters()),
    "properties": sorted(task.get_user_properties()),
    "model": output.id,
    "enqueued": Task.get_num_enqueued_tasks(queue_name="sdk-fixes-queue"),
    "dataset": bool(dataset.id),
}
Task.dequeue(queued)
queued.delete()
print("FIXES " + json.dumps(found), flush=True)
"""


def test_sdk_deletes_parameters_archives_a_model_counts_a_queue_and_creates_a_dataset(
    tools: Tools, server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Task.delete_parameter / delete_user_properties (tasks.delete_hyper_params), Model.archive
    (models.archive_many), Task.get_num_enqueued_tasks (queues.get_num_entries), Dataset.create (dotted
    only_fields under an empty `runtime`) and Task.delete (`deleted` a boolean), with no error logged."""
    for key, value in server_env(server).items():
        monkeypatch.setenv(key, value)
    Client().call("queues.create", {"name": "sdk-fixes-queue"})
    config = tmp_path / "sdk.clearml.conf"
    config.write_text(SDK_CONFIG)
    script = tmp_path / "fixes.py"
    script.write_text(FIXES_SCRIPT)
    env = {**tool_env(tools, server, Path(os.environ["HOME"])), "CLEARML_CONFIG_FILE": str(config)}
    result = subprocess.run(
        [tools.bin("python"), str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    line = re.search(r"^FIXES (.*)$", output, re.MULTILINE)
    assert line, output[-4000:]
    found = json.loads(line[1])
    assert found["deleted"] is True and found["params"] == ["Args/epochs", "properties/owner"], found
    assert found["properties"] == ["owner"] and found["enqueued"] == 1 and found["dataset"] is True, found
    assert not ERROR_LINE.search(output) and "Failed parsing response" not in output, output[-4000:]
    model = Client().call("models.get_by_id", {"model": found["model"]})["model"]
    assert "archived" in model["system_tags"]
