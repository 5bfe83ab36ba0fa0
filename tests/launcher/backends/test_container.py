"""The container runner on a real engine: podman (runc) and an image with nothing but Debian's python3."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearml_task.api import Client
from launcher.backends.container import check_arguments, check_image, gpu_options
from launcher.errors import ReproductionError
from testing import containers
from testing.engines import require
from testing.launching import create_task, launcher, log_lines, spawn, status, wait_for
from testing.repos import Repo, make_repo


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str]]:
    require(containers.missing())
    env = containers.engine_env(tmp_path_factory.mktemp("engine"))
    yield env, containers.test_image(env)


@pytest.fixture
def jobs(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "jobs", "jobs")


def leftovers(env: dict[str, str], task_id: str) -> list[str]:
    found = subprocess.run(["podman", "ps", "--all", "--format", "{{.Names}}", "--filter", f"name={task_id}"],
                           env={**os.environ, **env}, capture_output=True, text=True, check=True)  # fmt: skip
    return found.stdout.split()


def test_runs_in_the_task_image_with_its_setup_script(engine: tuple[dict[str, str], str], jobs: Repo) -> None:
    env, image = engine
    task_id = create_task(jobs.work, "train.py", args=["epochs=3", "fast=true"], docker=image,
                          docker_bash_setup_script="echo SETUP-RAN-IN $(cat /etc/debian_version | cut -c1-2)",
                          docker_args="--env FROM_ARGS=yes --shm-size=64m")  # fmt: skip
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(task_id) == "completed"
    lines = log_lines(task_id)
    assert "epochs=3 lr=0.1 fast=True" in lines
    assert f"CLEARML_TASK_ID={task_id}" in lines
    assert "SETUP-RAN-IN 12" in lines
    assert lines.index("SETUP-RAN-IN 12") < lines.index("epochs=3 lr=0.1 fast=True")
    assert any(line.startswith("launcher: environment: Python 3.11") and "/usr/bin/python3" in line
               for line in lines)  # fmt: skip
    assert any(line.startswith("launcher: container clearml-") for line in lines)
    assert "org_pip" in Client().get_task(task_id)["script"]["requirements"]
    assert leftovers(env, task_id) == []


def test_the_exit_code_comes_from_the_engine(engine: tuple[dict[str, str], str], jobs: Repo) -> None:
    env, image = engine
    task_id = create_task(jobs.work, "fail.py")
    result = launcher("execute", "--id", task_id, "--docker", image, "--container-engine", "podman", env=env)
    assert result.returncode == 1
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert "exit code 3" in task["status_message"]
    assert "about to fail" in log_lines(task_id)
    assert leftovers(env, task_id) == []


def test_abort_stops_and_removes_the_container(engine: tuple[dict[str, str], str], jobs: Repo) -> None:
    env, image = engine
    task_id = create_task(jobs.work, "sleepy.py", args=["pidfile=pids"], docker=image)  # in the work tree
    running = spawn("execute", "--id", task_id, "--docker", "--container-engine", "podman", "--grace", "2",
                    env=env)  # fmt: skip
    try:
        wait_for(lambda: "tick 3" in log_lines(task_id))
        assert leftovers(env, task_id)
        assert launcher("abort", task_id).returncode == 0
        assert running.wait(timeout=60) == 1
    finally:
        if running.poll() is None:
            running.kill()
    assert status(task_id) == "stopped"
    assert leftovers(env, task_id) == []


def test_hostile_container_arguments_are_refused(engine: tuple[dict[str, str], str], jobs: Repo) -> None:
    env, image = engine
    for hostile in ("--privileged", "-v /:/host", "--pid=host", "--env=A=1 --volume /etc:/x"):
        task_id = create_task(jobs.work, "train.py", docker=image, docker_args=hostile)
        result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman", env=env)
        assert result.returncode == 1
        task = Client().get_task(task_id)
        assert task["status"] == "failed"
        assert "is not allowed" in task["status_message"], hostile
        assert leftovers(env, task_id) == []


def test_a_host_run_says_the_container_settings_are_not_used(jobs: Repo) -> None:
    task_id = create_task(jobs.work, "train.py", docker="python:3.11", docker_args="--shm-size=1g",
                          docker_bash_setup_script="apt-get update")  # fmt: skip
    assert launcher("execute", "--id", task_id).returncode == 0
    warning = [line for line in log_lines(task_id) if "container settings" in line]
    assert warning and "runs on the host" in warning[0] and "'python:3.11'" in warning[0]


def test_safe_options_only_each_value_one_word() -> None:
    assert check_arguments("-e A=1 --env B=two --shm-size 1g --cpus=2") == [
        "-e=A=1", "--env=B=two", "--shm-size=1g", "--cpus=2",
    ]  # fmt: skip
    for hostile in ("--privileged", "--network=host", "--ipc host", "-e", "--shm-size=--privileged",
                    "--device /dev/sda", "--cap-add=ALL", "--security-opt seccomp=unconfined"):  # fmt: skip
        with pytest.raises(ReproductionError):
            check_arguments(hostile)


def test_image_references() -> None:
    for good in (
        "python:3.11",
        "nvidia/cuda:12.2.0-runtime-ubuntu22.04",
        "localhost:5000/a/b@sha256:" + "0" * 64,
    ):
        assert check_image(good, "image") == good
    for bad in ("--privileged", "python 3", "a;rm -rf /", "UPPER/case", ""):
        with pytest.raises(ReproductionError):
            check_image(bad, "image")


def test_gpus_in_the_engine_form() -> None:
    assert gpu_options("/usr/bin/docker", "0,1") == ["--gpus", '"device=0,1"']
    assert gpu_options("/usr/bin/podman", "0,1") == [
        "--device",
        "nvidia.com/gpu=0",
        "--device",
        "nvidia.com/gpu=1",
    ]
    assert gpu_options("/usr/bin/podman", "") == []


def test_an_engine_without_docker_is_a_usage_error(jobs: Repo) -> None:
    task_id = create_task(jobs.work, "train.py")
    result = launcher("execute", "--id", task_id, "--container-engine", "podman")
    assert result.returncode == 2
    assert "--container-engine goes with --docker" in result.stderr + result.stdout
    assert status(task_id) == "created"
