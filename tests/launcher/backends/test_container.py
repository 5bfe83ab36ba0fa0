"""The container runner on a real engine: podman (runc) and an image with nothing but Debian's python3."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uv

from clearml_task.api import Client, Session
from launcher import registry
from launcher.backends.container import check_arguments, check_image, gpu_options, remove_left
from launcher.errors import ReproductionError
from testing import containers
from testing.engines import require
from testing.launching import create_task, launcher, log_lines, spawn, status, wait_for
from testing.repos import Repo, make_repo
from testing.servers import embedded_config


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
    # the engine's monitor (conmon, handed to the launcher) ends by itself once it has the exit code: it is
    # not something the task left running
    assert not any(line.startswith("launcher: the task left") for line in lines), lines


SHOW_VERSIONS = """import six

print("six " + six.__version__)
try:
    import attr
except ImportError:
    print("attrs absent")
else:
    print("attrs " + attr.__version__)
"""


def locked_repo(tmp_path: Path) -> Repo:
    """A repository whose pyproject.toml asks for any six and whose uv.lock pins six 1.16.0 (locked while
    pyproject.toml pinned it; uv keeps a locked version that still fits): a fresh resolve would take a newer
    six. Locked against this machine's index, as the launcher's uv reaches it."""
    repo = make_repo(tmp_path / "locked", "reqs_uvlock")
    repo.write("train.py", SHOW_VERSIONS)
    lock = [uv.find_uv_bin(), "lock", "--quiet", "--no-python-downloads"]
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    subprocess.run(lock, cwd=repo.work, env=env, check=True)
    pyproject = repo.work / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six==1.16.0"', '"six"'))
    subprocess.run(lock, cwd=repo.work, env=env, check=True)
    assert 'name = "six"\nversion = "1.16.0"' in (repo.work / "uv.lock").read_text()
    repo.commit("any six, locked at 1.16.0")
    repo.git("push", "-q")
    return repo


def test_a_uv_lock_is_installed_as_locked_with_extra_on_top(engine: tuple[dict[str, str], str],
                                                            tmp_path: Path) -> None:  # fmt: skip
    env, image = engine
    repo = locked_repo(tmp_path)
    task_id = create_task(repo.work, "train.py", docker=image, skip_task_init=True)
    script = Client().get_task(task_id)["script"]
    assert script["requirements"]["source"] == "uv.lock"
    script["requirements"]["extra"] = "attrs==23.2.0\n"  # as clearml for an injected Task.init()
    Client().edit_task(task_id, script=script)
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman", env=env)
    lines = log_lines(task_id)
    assert result.returncode == 0 and status(task_id) == "completed", lines
    assert "six 1.16.0" in lines and "attrs 23.2.0" in lines
    described = "from uv.lock (uv sync --locked in .), then attrs==23.2.0 (built in the container)"
    assert f"environment: requirements {described}" in lines
    recorded = Client().get_task(task_id)["script"]["requirements"]["pip"]  # what was installed
    assert "six==1.16.0" in recorded and "attrs==23.2.0" in recorded


def test_a_stale_uv_lock_fails_the_task_as_on_the_host(engine: tuple[dict[str, str], str],
                                                       tmp_path: Path) -> None:  # fmt: skip
    env, image = engine
    repo = locked_repo(tmp_path)
    repo.write("pyproject.toml", (repo.work / "pyproject.toml").read_text().replace('"six"', '"six>=1.17"'))
    repo.commit("pyproject.toml changed, uv.lock not")
    repo.git("push", "-q")
    messages = []
    for where in (["--docker", "--container-engine", "podman"], []):
        task_id = create_task(repo.work, "train.py", docker=image, skip_task_init=True)
        result = launcher("execute", "--id", task_id, *where, env=env)
        task = Client().get_task(task_id)
        assert result.returncode == 1 and task["status"] == "failed", log_lines(task_id)
        assert not any(line.startswith("six ") for line in log_lines(task_id))
        messages.append(task["status_message"])
    assert messages[0] == messages[1]
    assert messages[0].startswith("cannot install the task's requirements: ")
    assert "uv.lock" in messages[0] and "--locked" in messages[0]


def test_a_pyproject_without_a_lock_is_synced_and_the_checkout_left_as_it_was(
    engine: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, image = engine
    repo = make_repo(tmp_path / "unlocked", "reqs_uvlock")
    repo.write("train.py", SHOW_VERSIONS)
    repo.git("rm", "-q", "uv.lock")
    repo.commit("no lock")
    repo.git("push", "-q")
    task_id = create_task(repo.work, "train.py", docker=image, skip_task_init=True)
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman",
                      "--keep-workspace", env=env)  # fmt: skip
    lines = log_lines(task_id)
    assert result.returncode == 0 and status(task_id) == "completed", lines
    assert "six 1.16.0" in lines and "attrs absent" in lines
    assert "environment: requirements from pyproject.toml (uv sync in .) (built in the container)" in lines
    [kept] = (Path(os.environ["CLEARML_TASK_HOME"]) / "launcher" / "work").glob(f"{task_id}-*")
    assert (kept / "pyproject.toml").is_file() and not (kept / "uv.lock").exists()  # the sync wrote one


def test_a_poetry_lock_is_installed_by_poetry_in_the_container(engine: tuple[dict[str, str], str],
                                                               tmp_path: Path) -> None:  # fmt: skip
    env, image = engine
    repo = make_repo(tmp_path / "poetry", "reqs_poetry")
    task_id = create_task(repo.work, "train.py", docker=image, skip_task_init=True)
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman", env=env)
    lines = log_lines(task_id)
    assert result.returncode == 0 and status(task_id) == "completed", result.stdout
    assert "poetry job ran with six 1.17.0" in lines
    assert "environment: requirements from poetry.lock (poetry install in .) (built in the container)" in (
        lines
    )


def test_the_exit_code_comes_from_the_engine(engine: tuple[dict[str, str], str], jobs: Repo) -> None:
    env, image = engine
    task_id = create_task(jobs.work, "fail.py")
    result = launcher("execute", "--id", task_id, "--docker", image, "--container-engine", "podman", env=env)
    assert result.returncode == 1
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert "exit code 3" in task["status_message"]
    assert "about to fail" in log_lines(task_id)
    assert not any(line.startswith("launcher: the task left") for line in log_lines(task_id))
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
                    "--device /dev/sda", "--cap-add=ALL", "--security-opt seccomp=unconfined",
                    "-e OPERATORS_SECRET", "--env HOME", 5, True, {"-e": "A=1"}):  # fmt: skip
        with pytest.raises(ReproductionError):  # a bare -e NAME copied the daemon's own variable
            check_arguments(hostile)  # type: ignore[arg-type]


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


def test_a_bad_docker_flag_is_refused_before_a_clone_is_made(jobs: Repo) -> None:
    """`execute --clone` made the clone, then refused `--docker` (exit 2), leaving a stray clone `created`."""
    task_id = create_task(jobs.work, "train.py", skip_task_init=True)
    result = launcher("execute", "--id", task_id, "--clone", "--docker", "-v /:/host")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: --docker: '-v' is not an image reference" in result.stderr
    assert [task["id"] for task in Client().tasks()] == [task_id], "no clone was made"


def test_an_engine_that_does_not_answer_is_refused_before_a_clone_is_made(
    engine: tuple[dict[str, str], str], jobs: Repo, tmp_path: Path
) -> None:
    _, image = engine
    broken = tmp_path / "broken.conf"
    broken.write_text("not toml [[[\n")
    task_id = create_task(jobs.work, "train.py", skip_task_init=True)
    flags = ["--clone", "--docker", image, "--container-engine", "podman"]
    result = launcher("execute", "--id", task_id, *flags, env={"CONTAINERS_CONF": str(broken)})
    assert result.returncode == 1 and "`podman info` fails here" in result.stderr, result.stderr
    assert [task["id"] for task in Client().tasks()] == [task_id], "no clone was made"


def test_a_restarted_daemon_removes_the_container_its_predecessor_left(
    engine: tuple[dict[str, str], str], jobs: Repo, tmp_path: Path
) -> None:
    """kill -9 of a daemon running a task in a container: the engine keeps the container running (it is
    the engine's child, not the daemon's); the daemon that takes the dead one's id removes it and fails the
    task."""
    env, image = engine
    queue = Client().queue_id("containers", create=True)
    task_id = create_task(jobs.work, "sleepy.py", args=["pidfile=pids"], docker=image, queue=queue)
    argv = ("daemon", "--queue", "containers", "--docker", "--container-engine", "podman",
            "--polling-interval", "0.2", "--grace", "2")  # fmt: skip
    first = spawn(*argv, env=env)
    try:
        wait_for(lambda: "tick 2" in log_lines(task_id), timeout=300)
        assert leftovers(env, task_id)
        first.kill()
        first.wait()
        assert leftovers(env, task_id), "the engine keeps a dead daemon's container running"
        second = spawn(*argv, env=env)
        try:
            wait_for(lambda: status(task_id) == "failed", timeout=120)
            assert Client().get_task(task_id)["status_message"] == registry.RESTARTED
            assert leftovers(env, task_id) == []
        finally:
            second.terminate()
            second.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        for name in leftovers(env, task_id):
            subprocess.run(["podman", "rm", "--force", name], env={**os.environ, **env}, capture_output=True)


def test_a_container_recorded_before_runs_named_their_backend_is_removed(
    engine: tuple[dict[str, str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon upgraded while a container run went on reads the old record (no `backend`, the container
    only) and still removes what the run left."""
    env, image = engine
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = Client(Session(embedded_config(tmp_path / "server")))
    task_id = client.create_task({"name": "in a container", "type": "training"})
    client.set_status(task_id, "started", force=True)
    name = f"clearml-{task_id[:32]}-{secrets.token_hex(4)}"
    subprocess.run(["podman", "run", "--detach", "--name", name, image, "sleep", "600"], check=True,
                   capture_output=True)  # fmt: skip
    try:
        said: list[str] = []
        old = {"run": {"task": task_id, "container": {"engine": "podman", "name": name}}}
        registry.reconcile(client, old, said.append)
        assert leftovers(env, task_id) == []
        assert f"removed the container {name} a dead run left" in said
        assert client.get_task(task_id)["status_message"] == registry.RESTARTED
    finally:
        subprocess.run(["podman", "rm", "--force", name], capture_output=True)


def test_a_daemon_killed_while_the_engine_fetches_the_image_leaves_no_keys_and_no_staging(
    engine: tuple[dict[str, str], str], jobs: Repo
) -> None:
    """kill -9 while the engine waits on a registry that never answers: the run's staging folder (whose env
    file, mode 0600, holds the server's secret key) stayed for ever, for the next daemon removed the dead
    run's work tree and lock, never that folder. The env file is written only once the image is here, and
    the next daemon's start removes what the run left beside its work tree."""
    env, _ = engine
    with socket.socket() as silent:  # a registry that takes the connection and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(120)
        image = f"127.0.0.1:{silent.getsockname()[1]}/never/answers:1"
        Client().queue_id("stalled", create=True)
        task_id = create_task(jobs.work, "train.py", docker=image, queue="stalled", skip_task_init=True)
        argv = ("daemon", "--queue", "stalled", "--docker", "--container-engine", "podman",
                "--polling-interval", "0.2")  # fmt: skip
        work = Path(os.environ["CLEARML_TASK_HOME"]) / "launcher" / "work"
        first = spawn(*argv, env=env)
        try:
            connection, _ = silent.accept()  # the engine is after the image
            connection.close()
            assert list(work.glob("*.container")), "the run's staging folder is there while the engine waits"
            assert not list(work.glob("*.container/env")), "no file holds the keys before the image is here"
        finally:
            first.kill()
            first.wait()
        result = launcher(*argv, "--once", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(task_id) == "failed"
    left = [path.name for path in work.iterdir()]
    assert all(name.endswith(registry.LOCK_SUFFIX) for name in left), left  # (its lock goes once it is old)


def set_environment(task_id: str, **variables: str) -> None:
    """The task's `Environment` hyperparams, as a task's author (anyone who can edit it) sets them."""
    params = [{"section": "Environment", "name": k, "value": v} for k, v in variables.items()]
    Client().call("tasks.edit_hyper_params", {"task": task_id, "hyperparams": params, "force": True})


def test_a_tasks_variables_reach_its_container_never_the_engine(
    engine: tuple[dict[str, str], str], jobs: Repo, tmp_path: Path
) -> None:
    """A task's CONTAINERS_CONF (or LD_PRELOAD, DOCKER_HOST, ...) is the container's variable: it once was
    also the engine's own, on the host, so a task could have podman mount the host's files into it."""
    env, image = engine
    canary = tmp_path / "host-only"
    canary.mkdir()
    (canary / "secret").write_text("the host's")
    evil = tmp_path / "evil.conf"
    evil.write_text(containers.CONTAINERS_CONF.replace(
        "[engine]", f'volumes = ["{canary}:/hostcanary:ro"]\n[engine]'))  # fmt: skip
    probe = 'test -e /hostcanary/secret && echo ESCAPED || echo CONTAINED; echo "TASK-VAR=$CONTAINERS_CONF"'
    task_id = create_task(jobs.work, "train.py", docker=image, docker_bash_setup_script=probe,
                          skip_task_init=True)  # fmt: skip
    set_environment(task_id, CONTAINERS_CONF=str(evil))
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman", env=env)
    lines = log_lines(task_id)
    assert result.returncode == 0 and status(task_id) == "completed", "\n".join(lines)
    assert "CONTAINED" in lines and "ESCAPED" not in lines
    assert f"TASK-VAR={evil}" in lines  # the task still gets its variable, inside
    assert leftovers(env, task_id) == []


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("TWO_LINES", "one\nLD_PRELOAD=/tmp/x.so", "TWO_LINES holds a line break"),
        # the engines read an env file's lines with a 64 KiB buffer: said as such, not as the engine's
        # "bufio.Scanner: token too long" with a hint about the image
        ("BIG", "x" * 70_000, "the value of BIG is too long for a container's environment file"),
    ],
)
def test_a_variable_an_env_file_cannot_carry_fails_the_container_task_naming_it(
    engine: tuple[dict[str, str], str], jobs: Repo, name: str, value: str, said: str
) -> None:
    env, image = engine
    task_id = create_task(jobs.work, "train.py", docker=image, skip_task_init=True)
    set_environment(task_id, **{name: value})
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman", env=env)
    task = Client().get_task(task_id)
    assert result.returncode == 1 and task["status"] == "failed"
    assert said in task["status_message"]
    assert leftovers(env, task_id) == []


def test_a_container_the_engine_cannot_start_fails_the_task(
    engine: tuple[dict[str, str], str], jobs: Repo
) -> None:
    """The engine refuses to start it (a limit above the host's): `wait` says 0 for a container that never
    ran, and the task was reported completed without running a line."""
    env, image = engine
    task_id = create_task(jobs.work, "train.py", docker=image, skip_task_init=True,
                          docker_args="--ulimit nofile=99999999:99999999")  # fmt: skip
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman", env=env)
    task = Client().get_task(task_id)
    assert result.returncode == 1 and task["status"] == "failed", task["status_message"]
    assert "the container did not run" in task["status_message"]
    assert "epochs=1 lr=0.1 fast=False" not in log_lines(task_id)
    assert leftovers(env, task_id) == []


@pytest.mark.parametrize(
    ("flags", "docker_args", "reason"),
    [
        (["--gpus", "99"], "", "unresolvable CDI devices nvidia.com/gpu=99"),  # no such GPU here
        ([], "--memory=1b", "memory limit"),  # below what any process needs
    ],
)
def test_the_engines_reason_for_not_starting_a_container_is_the_tasks_status_message(
    engine: tuple[dict[str, str], str], jobs: Repo, flags: list[str], docker_args: str, reason: str
) -> None:
    """It said only `exit code 125 (the container did not run: the engine did not start it)`: the reason
    was in the log alone."""
    env, image = engine
    task_id = create_task(jobs.work, "train.py", docker=image, skip_task_init=True, docker_args=docker_args)
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman", *flags, env=env)
    message = Client().get_task(task_id)["status_message"]
    assert result.returncode == 1 and status(task_id) == "failed", message
    assert "exit code 125 (the container did not run: " in message and reason in message, message
    assert leftovers(env, task_id) == []


def test_an_engine_that_does_not_answer_is_one_line_before_any_task_is_taken(
    engine: tuple[dict[str, str], str], jobs: Repo, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.conf"
    broken.write_text("not toml [[[\n")
    Client().queue_id("engine-broken", create=True)
    task_id = create_task(jobs.work, "train.py", queue="engine-broken", skip_task_init=True)
    daemon = ["daemon", "--queue", "engine-broken", "--once", "--docker", "--container-engine", "podman"]
    result = launcher(*daemon, env={"CONTAINERS_CONF": str(broken)})
    said = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert any("--container-engine podman: `podman info` fails here" in line for line in said), said
    assert status(task_id) == "queued"


def test_only_a_recorded_container_of_ours_is_removed() -> None:
    """The record is a file: an engine or a name of another shape is never run."""
    assert remove_left({"engine": "/bin/rm", "name": "clearml-abc-0123abcd"}) is None
    assert remove_left({"engine": "podman", "name": "--all"}) is None
    assert remove_left({"engine": "podman", "name": "other-container"}) is None
    assert remove_left("podman rm -f x") is None


def test_a_uv_cache_that_cannot_be_made_fails_the_task_with_the_reason(
    engine: tuple[dict[str, str], str], jobs: Repo
) -> None:
    """UV_CACHE_DIR names a place no one can make a directory (under /proc): the task fails saying which
    cache and what to set, before any container is made; nothing is left."""
    env, image = engine
    task_id = create_task(jobs.work, "train.py", docker=image, skip_task_init=True)
    unmakeable = "/proc/no-such-cache/uv"
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman",
                      env={**env, "UV_CACHE_DIR": unmakeable})  # fmt: skip
    task = Client().get_task(task_id)
    assert result.returncode == 1 and task["status"] == "failed", result.stderr
    assert task["status_message"].startswith(f"cannot make the package cache {unmakeable}: "), task
    assert "Traceback" not in result.stderr + "\n".join(log_lines(task_id))
    assert any(
        "set UV_CACHE_DIR to a directory the launcher can write" in line for line in log_lines(task_id)
    )
    assert leftovers(env, task_id) == []


HAND_BACK_LINKS = """import argparse
import os

parser = argparse.ArgumentParser()
parser.add_argument("--target", default="")
parser.add_argument("--install_failed", action="store_true")
args = parser.parse_args()
out = "/opt/clearml-launcher-out"
names = ["install-error.txt"] if args.install_failed else ["frozen.txt"]
for name in names:
    path = os.path.join(out, name)
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(args.target, path)  # a host file, not even visible in here
if args.install_failed:
    with open(os.path.join(out, "install-failed.txt"), "w") as failed:
        failed.write("declared")
print("links planted", os.path.exists(args.target))
"""


@pytest.mark.parametrize("install_failed", [False, True])
def test_the_host_never_reads_a_file_the_task_links_from_what_it_hands_back(
    engine: tuple[dict[str, str], str], jobs: Repo, tmp_path: Path, install_failed: bool
) -> None:
    """The host reads uv's freeze (the task's recorded requirements) and an install error (the task's status
    message) from a folder the container writes: a symlink there to a host file was read, as the
    launcher's user, and published in the task."""
    env, image = engine
    secret = tmp_path / "host-only-secret.txt"
    secret.write_text("HOST-ONLY-SECRET-4242\n")
    secret.chmod(0o600)
    jobs.write("plant.py", HAND_BACK_LINKS)
    args = [f"target={secret}", *(["install_failed=true"] if install_failed else [])]
    task_id = create_task(jobs.work, "plant.py", args=args, docker=image)
    result = launcher("execute", "--id", task_id, "--docker", "--container-engine", "podman", env=env)
    assert "links planted False" in log_lines(task_id), result.stdout + result.stderr
    task = Client().get_task(task_id)
    everything = str(task) + "\n".join(log_lines(task_id)) + result.stdout + result.stderr
    assert "HOST-ONLY-SECRET-4242" not in everything
    if install_failed:
        assert task["status"] == "failed" and "cannot install" in task["status_message"], task[
            "status_message"
        ]
    else:
        assert task["status"] == "completed", result.stdout + result.stderr
    assert leftovers(env, task_id) == []


SHOW_HOSTNAME = "import socket\n\nprint('hostname', socket.gethostname())\n"


def test_the_operators_container_options_win_over_the_tasks(
    engine: tuple[dict[str, str], str], jobs: Repo, tmp_path: Path
) -> None:
    """The engine keeps the last of an option given twice: a task's container.arguments came after the
    daemon's own (--docker IMAGE ARGS...) and undid its limits (--memory, --cpus, ...)."""
    env, image = engine
    jobs.write("hostname.py", SHOW_HOSTNAME)
    queue = f"operator-{secrets.token_hex(4)}"
    Client().queue_id(queue, create=True)
    task_id = create_task(jobs.work, "hostname.py", docker=image, docker_args="--hostname=chosen-by-task",
                          queue=queue)  # fmt: skip
    operator = f"{image} --hostname=chosen-by-operator"
    daemon = ["daemon", "--queue", queue, "--once", "--container-engine", "podman"]
    result = launcher(*daemon, "--docker", operator, env=env)
    assert status(task_id) == "completed", result.stdout + result.stderr
    assert "hostname chosen-by-operator" in log_lines(task_id)
    # Where the operator sets nothing, the task's option holds.
    again = create_task(jobs.work, "hostname.py", docker=image, docker_args="--hostname=chosen-by-task")
    assert (
        launcher("execute", "--id", again, "--docker", "--container-engine", "podman", env=env).returncode
        == 0
    )
    assert "hostname chosen-by-task" in log_lines(again)
    # The launcher's home is its user's alone: what a rootful container leaves there (as root) is out of
    # other users' reach.
    home = Path(os.environ["CLEARML_TASK_HOME"]) / "launcher"
    assert home.stat().st_mode & 0o777 == 0o700


class SilentRegistry:
    """A registry on a loopback port that takes connections and never answers (a pull hangs there)."""

    def __init__(self) -> None:
        import socket
        import threading

        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, name="silent-registry", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self._held.append(self._socket.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self._socket.close()
        for held in self._held:
            held.close()


def test_an_abort_while_the_engine_pulls_the_image_stops_the_task(
    engine: tuple[dict[str, str], str], jobs: Repo
) -> None:
    """`podman create` pulling from a registry that never answers held the task "stopping" for the pull's
    own timeout, then failed it; the abort now ends the engine's command and the task ends stopped."""
    env, _ = engine
    registry = SilentRegistry()
    try:
        task_id = create_task(jobs.work, "train.py", docker=f"127.0.0.1:{registry.port}/never/answers:1")
        running = spawn("execute", "--id", task_id, "--docker", "--container-engine", "podman", env=env)
        try:
            made = "launcher: container clearml-"
            wait_for(lambda: any(line.startswith(made) for line in log_lines(task_id)))
            time.sleep(1)  # the engine is pulling now
            began = time.monotonic()
            assert launcher("abort", task_id).returncode == 0
            assert running.wait(timeout=60) == 1
            assert time.monotonic() - began < 30
        finally:
            if running.poll() is None:
                running.kill()
        assert status(task_id) == "stopped"
        assert leftovers(env, task_id) == []
    finally:
        registry.close()
