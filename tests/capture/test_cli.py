"""Both commands as a user runs them: real subprocesses on the embedded default and over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from clearml_task.api import Client
from testing.commands import assert_one_line_error, run
from testing.repos import git, make_repo
from testing.servers import ROOT, start_server, stop_server

FIXTURE = ROOT / "fixtures" / "repos" / "quickstart" / "train.py"


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    """The quickstart fixture as a real repository with a bare origin; returns its train.py."""
    return make_repo(tmp_path / "qs", "quickstart").work / "train.py"


@pytest.fixture
def standalone(tmp_path: Path) -> Path:
    """A script outside any repository."""
    script = tmp_path / "alone" / "train.py"
    script.parent.mkdir()
    script.write_text(FIXTURE.read_text())
    return script


def test_create_enqueue_and_list_on_the_embedded_default(quickstart: Path) -> None:
    created = run(
        "clearml-task",
        "--project",
        "demo",
        "--name",
        "quickstart",
        "--script",
        str(quickstart),
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


def test_text_output_summarises_what_will_run(quickstart: Path) -> None:
    (quickstart.parent / "extra.py").write_text("X = 1\n")
    created = run(
        "clearml-task",
        "--project",
        "demo",
        "--name",
        "summary",
        "--folder",
        str(quickstart.parent),
        "--script",
        "train.py",
        "--queue",
        "default",
        "--args",
        "epochs=2",
    )
    assert created.returncode == 0, created.stderr
    out = created.stdout
    for expected in (
        "repository",
        "commit",
        "on main",
        "local changes",
        "1 untracked",
        "entry point",
        "train.py",
        "args",
        "epochs=2",
        "Task created and enqueued",
        "clearml-launcher logs",
    ):
        assert expected in out, expected


def test_a_standalone_script_travels_as_it_is(standalone: Path) -> None:
    created = run(
        "clearml-task",
        "--project",
        "demo",
        "--name",
        "quickstart",
        "--script",
        str(standalone),
        "--args",
        "epochs=3",
        "lr=0.5",
        "--output",
        "json",
    )
    assert created.returncode == 0, created.stderr
    task_id = json.loads(created.stdout)["id"]
    from clearml_task.api import Client
    from clearml_task.inject import inject_task_init

    task = Client().get_task(task_id)
    assert task["status"] == "created"
    assert task["script"]["entry_point"] == "train.py" and task["script"]["repository"] == ""
    assert task["script"]["diff"] == inject_task_init(standalone.read_text(), "train.py").text
    assert {k: v["value"] for k, v in task["hyperparams"]["Args"].items()} == {"epochs": "3", "lr": "0.5"}


def test_dry_run_prints_yaml_and_contacts_no_server(quickstart: Path) -> None:
    env = {
        "CLEARML_API_HOST": "http://127.0.0.1:9",
        "CLEARML_API_ACCESS_KEY": "K",
        "CLEARML_API_SECRET_KEY": "S",
    }
    result = run(
        "clearml-task",
        "--project",
        "demo",
        "--name",
        "dry",
        "--script",
        str(quickstart),
        "--dry-run",
        "--queue",
        "gpu",
        "--docker",
        "python:3.11",
        "--packages",
        "numpy",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    import yaml

    shaped = yaml.safe_load(result.stdout)
    assert shaped["name"] == "dry" and shaped["project"] == "demo" and shaped["status"] == "created"
    assert shaped["script"]["entry_point"] == "train.py" and shaped["script"]["version_num"]
    assert shaped["container"]["image"] == "python:3.11"
    assert shaped["script"]["requirements"]["pip"] == "numpy\nclearml\n"
    assert shaped["execution"]["queue"] == "gpu"


def test_base_task_id_clones_and_overrides_only_what_is_given(quickstart: Path) -> None:
    from clearml_task.api import Client

    created = run(
        "clearml-task",
        "--project",
        "demo",
        "--name",
        "base",
        "--script",
        str(quickstart),
        "--args",
        "epochs=2",
        "lr=0.1",
        "--docker",
        "img:1",
        "--output",
        "json",
    )
    base_id = json.loads(created.stdout)["id"]
    cloned = run(
        "clearml-task",
        "--base-task-id",
        base_id,
        "--args",
        "epochs=9",
        "--queue",
        "default",
        "--output",
        "json",
    )
    assert cloned.returncode == 0, cloned.stderr
    clone = Client().get_task(json.loads(cloned.stdout)["id"])
    base = Client().get_task(base_id)
    assert clone["status"] == "queued" and clone["parent"] == base_id
    assert clone["name"] == "base" and clone["project"] == base["project"]
    assert clone["script"] == base["script"]  # never blanked
    assert clone["container"] == base["container"]
    assert {k: v["value"] for k, v in clone["hyperparams"]["Args"].items()} == {"epochs": "9", "lr": "0.1"}
    renamed = run(
        "clearml-task",
        "--base-task-id",
        base_id,
        "--name",
        "renamed",
        "--project",
        "other",
        "--output",
        "json",
    )
    task = Client().get_task(json.loads(renamed.stdout)["id"])
    assert task["name"] == "renamed" and task["project"] == Client().project_id("other", create=False)


@pytest.mark.parametrize("skip_task_init", [False, True])
def test_a_clone_given_packages_keeps_clearml_when_its_code_calls_task_init(
    quickstart: Path, skip_task_init: bool
) -> None:
    """The base's code got Task.init() (and clearml among its requirements): a clone given --packages that
    lost clearml ran its injected call's ImportError branch, untracked."""
    from clearml_task.api import Client

    skip = ["--skip-task-init"] if skip_task_init else []
    made = run("clearml-task", "--project", "demo", "--name", "base", "--script", str(quickstart), *skip,
               "--output", "json")  # fmt: skip
    base = Client().get_task(json.loads(made.stdout)["id"])
    cloned = run("clearml-task", "--base-task-id", base["id"], "--packages", "tqdm", "--output", "json")
    assert cloned.returncode == 0, cloned.stderr
    pip = Client().get_task(json.loads(cloned.stdout)["id"])["script"]["requirements"]["pip"].split()
    assert "tqdm" in pip
    assert ("clearml" in pip) is (not skip_task_init), pip


def test_a_clone_s_args_are_checked_against_the_base_task_before_anything_is_created(
    quickstart: Path,
) -> None:
    from clearml_task.api import Client

    created = run("clearml-task", "--project", "demo", "--name", "base", "--script", str(quickstart),
                  "--args", "epochs=2", "lr=0.1", "--output", "json")  # fmt: skip
    base_id = json.loads(created.stdout)["id"]
    typo = run("clearml-task", "--base-task-id", base_id, "--args", "lrr=0.9")
    assert typo.returncode == 2 and "Traceback" not in typo.stderr
    assert f"--args lrr: the base task {base_id} has no argument 'lrr'; did you mean lr?" in typo.stderr
    bad = run("clearml-task", "--base-task-id", base_id, "--args", "lr=abc", "--queue", "default")
    assert bad.returncode == 2 and "--lr takes a number, not 'abc'" in bad.stderr
    assert [task["id"] for task in Client().call("tasks.get_all", {})["tasks"]] == [base_id]


def test_bad_input_is_one_line_and_creates_nothing(quickstart: Path) -> None:
    train = str(quickstart)
    cases = [
        (["--project", "demo", "--name", "nothing", "--script", "no/such/file.py"], 1, "not found"),
        (
            ["--project", "demo", "--name", "nothing", "--script", train, "--queue", "no-such-queue"],
            1,
            "no queue named 'no-such-queue' (known queues: default)",
        ),
        (
            ["--project", "demo", "--name", "nothing", "--script", train, "--args", "novalue"],
            2,
            "--args takes key=value pairs",
        ),
        (
            ["--project", "demo", "--name", "nothing", "--script", train, "--task-type", "nonsense"],
            2,
            "unknown --task-type",
        ),
        (["--project", "demo", "--script", train], 2, "--name is required"),
        (["--name", "nothing", "--script", train], 2, "--project is required"),
        (["--project", "demo", "--name", "nothing"], 2, "--script or --module is required"),
        (["--base-task-id", "0" * 32, "--script", train], 2, "cannot go with it"),
        (["--base-task-id", "0" * 32], 1, "no task with id"),
        (
            ["--project", "demo", "--name", "nothing", "--script", train, "--commit", "abc"],
            2,
            "--branch and --commit go with --repo",
        ),
        (
            ["--project", "demo", "--name", "nothing", "--script", train, "--requirements", "nope.txt"],
            1,
            "--requirements nope.txt does not exist",
        ),
    ]
    for argv, code, text in cases:
        assert_one_line_error(run("clearml-task", *argv), code, text)
    listed = run("clearml-launcher", "tasks")
    assert "nothing" not in listed.stdout


def test_a_modules_args_are_checked_as_a_scripts_are(tmp_path: Path) -> None:
    """--module reads the module's file from the checkout (pkg/main.py for pkg.main, a package's
    __main__.py) as --script reads the script; a module the checkout does not hold keeps its --args as
    given."""
    repo = make_repo(tmp_path, "args")
    repo.write("tool/__init__.py", "")
    repo.write("tool/__main__.py", "import argparse\np = argparse.ArgumentParser()\n"
               "p.add_argument('--size', type=int, default=1)\np.parse_args()\n")  # fmt: skip
    flags = ["--project", "demo", "--name", "module args", "--folder", str(repo.work), "--queue", "default"]
    for entry in (["--script", "pkg/main.py"], ["--module", "pkg.main"]):
        unknown = run("clearml-task", *flags, *entry, "--args", "kk=4", "steps=3")
        assert_one_line_error(unknown, 2, "--args kk: main.py has no argument 'kk'")
        wrong = run("clearml-task", *flags, *entry, "--args", "steps=notint")
        assert_one_line_error(wrong, 2, "--steps takes an integer, not 'notint'")
    assert_one_line_error(run("clearml-task", *flags, "--module", "tool", "--args", "size=big"), 2,
                          "--size takes an integer, not 'big'")  # fmt: skip
    hydra = run("clearml-task", *flags, "--module", "hydra_app", "--args", "nosuch=1")
    assert_one_line_error(hydra, 2, "the Hydra config of hydra_app.py (conf/config.yaml) has no key 'nosuch'")
    assert "module args" not in run("clearml-launcher", "tasks").stdout
    args = {}
    for module, given in [("pkg.main", "steps=3"), ("json.tool", "k=notint")]:
        created = run("clearml-task", *flags, "--module", module, "--args", given, "--output", "json")
        assert created.returncode == 0, created.stderr
        task = Client().get_task(json.loads(created.stdout)["id"])
        args[module] = {key: entry["value"] for key, entry in task["hyperparams"]["Args"].items()}
    assert args == {"pkg.main": {"steps": "3"}, "json.tool": {"k": "notint"}}  # json.tool: as given


def test_logs_command_prints_the_log() -> None:
    from clearml_task.api import Client

    client = Client()
    task_id = client.create_task({"name": "with a log", "type": "training"})
    client.send_log(task_id, [("info", "first line"), ("error", "second line")])
    result = run("clearml-launcher", "logs", task_id)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["first line", "second line"]
    assert_one_line_error(run("clearml-launcher", "logs", "0" * 32), 1, "no task with id")


def test_server_prints_the_config_block_once_and_binds_loopback(tmp_path: Path, quickstart: Path) -> None:
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
        env = {
            "CLEARML_API_HOST": again.url,
            "CLEARML_API_ACCESS_KEY": keys["access_key"],
            "CLEARML_API_SECRET_KEY": keys["secret_key"],
        }
        created = run(
            "clearml-task",
            "--project",
            "p-http",
            "--name",
            "over http",
            "--script",
            str(quickstart),
            "--output",
            "json",
            env=env,
        )
        assert created.returncode == 0, created.stderr
        result = json.loads(created.stdout)
        assert result["url"].endswith(f"/tasks/{result['id']}/output/log")
        assert keys["secret_key"] not in created.stdout + created.stderr
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


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("localhost:8008", "is not an http:// or https:// URL"),
        ("-oProxyCommand=x", "is not an http:// or https:// URL"),
        ("http://127.0.0.1:99999", "is not a valid URL (Port out of range"),
        ("http://[::1", "is not a valid URL"),
    ],
)
def test_a_server_url_that_is_not_one_is_a_clear_error(quickstart: Path, host: str, problem: str) -> None:
    env = {"CLEARML_API_HOST": host, "CLEARML_API_ACCESS_KEY": "K", "CLEARML_API_SECRET_KEY": "S"}
    for command in (
        ("clearml-task", "--project", "demo", "--name", "bad host", "--script", str(quickstart)),
        ("clearml-launcher", "queues"),
    ):
        assert_one_line_error(run(*command, env=env), 1, f"CLEARML_API_HOST {host!r} {problem}")


def test_credentials_in_the_server_url_are_never_printed(tmp_path: Path, quickstart: Path) -> None:
    from clearml_task.server.serve import free_port

    unreachable = f"http://someone:url-secret@127.0.0.1:{free_port()}"
    no_keys = run("clearml-task", "--project", "demo", "--name", "no keys", "--script", str(quickstart),
                  env={"CLEARML_API_HOST": unreachable})  # fmt: skip
    assert_one_line_error(no_keys, 1, "no credentials for the ClearML server http://127.0.0.1:")
    server = start_server(tmp_path / "srv")
    try:
        env = {
            "CLEARML_API_HOST": server.url.replace("http://", "http://someone:url-secret@"),
            "CLEARML_API_ACCESS_KEY": server.keys["access_key"],
            "CLEARML_API_SECRET_KEY": server.keys["secret_key"],
        }
        created = run("clearml-task", "--project", "demo", "--name", "with url", "--script", str(quickstart),
                      "--output", "json", env=env)  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout)["url"].startswith("http://127.0.0.1:")
        assert "url-secret" not in created.stdout + created.stderr
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        ("home is a file", "cannot keep the server's data in"),
        ("database is not one", "cannot open the server's database"),
        ("credentials are not JSON", "credentials.json is not a credentials file"),
        ("credentials lack a key", "credentials.json is not a credentials file (KeyError"),
    ],
)
def test_an_unusable_embedded_data_dir_is_a_clear_error(
    tmp_path: Path, quickstart: Path, spoil: str, said: str
) -> None:
    home = tmp_path / "task-home"
    server = home / "server"
    server.mkdir(parents=True)
    if spoil == "home is a file":
        server.rmdir()
        server.write_text("")
    elif spoil == "database is not one":
        (server / "clearml.db").write_text("not a database\n" * 100)
    else:
        (server / "credentials.json").write_text("{" if spoil.endswith("JSON") else '{"access_key": "A"}')
    env = {"CLEARML_TASK_HOME": str(home)}
    flags = ("--project", "demo", "--name", "spoilt home", "--script", str(quickstart))
    assert_one_line_error(run("clearml-task", *flags, env=env), 1, said)
    assert_one_line_error(run("clearml-launcher", "queues", env=env), 1, said)


def test_the_summary_shows_the_users_words_as_text(tmp_path: Path) -> None:
    # `--args tag=[/]` was read as rich markup: a MarkupError traceback after the task was created; a file
    # name's terminal codes reached the terminal
    repo = make_repo(tmp_path / "repo")
    repo.write(
        "tagged.py",
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--tag')\np.parse_args()\n",
    )
    repo.write(".env\x1b[2J", "SECRET=1\n")
    flags = ("--project", "demo", "--name", "markup", "--script", str(repo.work / "tagged.py"))
    result = run("clearml-task", *flags, "--args", "tag=[/]")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "tag=[/]" in result.stdout
    assert ".env\\x1b[2J" in result.stdout and "\x1b" not in result.stdout


def test_a_current_directory_that_is_gone_is_a_clear_error(tmp_path: Path, quickstart: Path) -> None:
    import subprocess
    import sys

    # the shell enters a directory, removes it, then starts clearml-task there (a FileNotFoundError before)
    command = 'cd "$1" && rmdir "$1" && shift && exec "$@"'
    gone = tmp_path / "gone"
    gone.mkdir()
    flags = ["--project", "demo", "--name", "nowhere", "--script", str(quickstart), "--dry-run"]
    result = subprocess.run(
        ["sh", "-c", command, "sh", str(gone), sys.executable, "-m", "clearml_task", *flags],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert_one_line_error(result, 1, "the current directory no longer exists")


@pytest.mark.parametrize("command", ["clearml-task", "clearml-launcher"])
def test_help(command: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


def test_a_server_that_does_not_answer_is_one_line_after_one_wait(quickstart: Path) -> None:
    """The capture's look-ahead thread waits for the server while the code is captured; when it gets no
    answer, that is what the command says, without waiting again."""
    from testing.servers import SilentServer

    silent = SilentServer()
    try:
        env = {"CLEARML_API_HOST": silent.url, "CLEARML_API_ACCESS_KEY": "K", "CLEARML_API_SECRET_KEY": "S"}
        started = time.monotonic()
        result = run("clearml-task", "--project", "demo", "--name", "silent", "--script", str(quickstart),
                     "--queue", "default", env=env)  # fmt: skip
        waited = time.monotonic() - started
    finally:
        silent.stop()
    said = f"the ClearML server at {silent.url} did not answer auth.login within 30s"
    assert_one_line_error(result, 1, said)
    assert waited < 2 * 30  # one wait of 30 s, not one per try (nor the look-ahead's and then the command's)


# Interrupted this long after it starts, a command is in the interpreter's start, its imports, the flags,
# or its work (here: waiting for a server that never answers).
INTERRUPT_DELAYS = [i * 0.015 for i in range(40)]


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("clearml-task", ["--project", "demo", "--name", "interrupted", "--queue", "default", "--script"]),
        ("clearml-launcher", ["queues"]),
    ],
)
def test_a_ctrl_c_at_any_moment_is_one_line(command: str, argv: list[str], quickstart: Path) -> None:
    """The installed command, interrupted at any moment: `<command>: error: interrupted` and 130, never a
    traceback nor a Ctrl-C swallowed ("Exception ignored"); only in the interpreter's own start (before
    any of the command's code) does Python's default apply."""
    from testing.servers import SilentServer

    executable = Path(sys.executable).with_name(command)
    silent = SilentServer()
    env = {**os.environ, "CLEARML_API_HOST": silent.url, "CLEARML_API_ACCESS_KEY": "K",
           "CLEARML_API_SECRET_KEY": "S"}  # fmt: skip
    argv = [*argv, str(quickstart)] if command == "clearml-task" else argv
    outcomes: dict[str, int] = {}
    try:
        for delay in INTERRUPT_DELAYS:
            child = subprocess.Popen([str(executable), *argv], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env, text=True)  # fmt: skip
            time.sleep(delay)
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=20)  # ended by the Ctrl-C, not by the 30 s wait
            if child.returncode == 130:
                assert stderr == f"{command}: error: interrupted\n", stderr
                outcomes["one line"] = outcomes.get("one line", 0) + 1
            else:  # the signal came before any of the command's code ran
                assert child.returncode in (-signal.SIGINT, 1), (delay, child.returncode, stderr)
                assert "Traceback" not in stderr or _in_the_interpreters_start(stderr, executable), stderr
                outcomes["before"] = outcomes.get("before", 0) + 1
    finally:
        silent.stop()
    assert outcomes.get("one line", 0) >= len(INTERRUPT_DELAYS) // 3, outcomes  # the guarded part was hit


def _in_the_interpreters_start(stderr: str, executable: Path) -> bool:
    """A traceback from before the command's guard: the interpreter's own start (its site, with the .pth
    files of the venv), or the installed script's first import (the package's tiny __init__ and
    __main__, the standard library's modules the installed script imports first (`import re`), and the
    import hook a venv's setuptools installs from its .pth: `_distutils_hack`)."""
    import sysconfig

    if "Exception ignored" in stderr:
        return False
    files = re.findall(r'File "([^"]+)", line \d+', stderr)
    ours = {str(executable), str(ROOT / "clearml_task" / "interrupts.py"),
            *(str(ROOT / package / name) for package in ("clearml_task", "launcher")
              for name in ("__init__.py", "__main__.py"))}  # fmt: skip
    hook = f"{os.sep}site-packages{os.sep}_distutils_hack{os.sep}"
    stdlib = sysconfig.get_paths()["stdlib"] + os.sep
    return "<frozen site>" in files or all(
        name.startswith(("<frozen ", stdlib)) or name in ours or hook in name for name in files
    )


def _calling(argv: list[str], silent: Any, **popen: Any) -> subprocess.Popen[str]:
    """The installed command, once it is calling the silent server (its own code runs by then)."""
    from testing.launching import wait_for

    env = {**os.environ, "CLEARML_API_HOST": silent.url, "CLEARML_API_ACCESS_KEY": "K",
           "CLEARML_API_SECRET_KEY": "S"}  # fmt: skip
    executable = Path(sys.executable).with_name(argv[0])
    child = subprocess.Popen([str(executable), *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, text=True, **popen)  # fmt: skip
    wait_for(lambda: silent.connections > 0 or child.poll() is not None, timeout=60)
    return child


@pytest.mark.parametrize("gap", [0.001, 0.003, 0.01, 0.03])
def test_a_second_ctrl_c_ends_the_command_at_once_and_quietly(gap: float, quickstart: Path) -> None:
    """Two Ctrl-Cs close together: one `interrupted` line at most, never a second one nor a traceback (the
    interpreter's shutdown included)."""
    from testing.servers import SilentServer

    silent = SilentServer()
    try:
        for command in (["clearml-task", "--project", "demo", "--name", "twice", "--queue", "default",
                         "--script", str(quickstart)], ["clearml-launcher", "queues"]):  # fmt: skip
            child = _calling(command, silent)
            child.send_signal(signal.SIGINT)
            time.sleep(gap)
            child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(timeout=20)
            assert child.returncode in (130, -signal.SIGINT), stderr
            assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
            assert stderr.count("interrupted") <= 1, stderr
    finally:
        silent.stop()


def test_a_command_started_with_ctrl_c_ignored_ignores_it(quickstart: Path) -> None:
    """Started with SIGINT ignored (a shell script's background job), a command keeps it ignored, as
    Python itself does."""
    from testing.servers import SilentServer

    silent = SilentServer()
    try:
        child = _calling(["clearml-launcher", "queues"], silent,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # fmt: skip
        child.send_signal(signal.SIGINT)
        time.sleep(1.0)
        still_running = child.poll() is None
        child.kill()
        child.communicate(timeout=20)
    finally:
        silent.stop()
    assert still_running
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("clearml-launcher")), "daemon", "--queue", "ignoring",
         "--create-queue"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    try:
        assert daemon.stdout is not None
        said = iter(daemon.stdout.readline, "")
        assert any("waits on ignoring" in line for line in said)  # its signal handlers are set by now
        daemon.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert daemon.poll() is None  # a daemon too: it stops on SIGTERM, not on the ignored Ctrl-C
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)


def test_a_ctrl_c_while_the_server_is_tried_again_interrupts_at_once(quickstart: Path) -> None:
    """No server listens: the login is tried again for a while. Nothing is being created yet, so a Ctrl-C
    then is `interrupted` and 130 at once (it was held as if the task were being made, then lost)."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CLEARML_API_HOST": f"http://127.0.0.1:{port}", "CLEARML_API_ACCESS_KEY": "K",
           "CLEARML_API_SECRET_KEY": "S"}  # fmt: skip
    executable = Path(sys.executable).with_name("clearml-task")
    argv = [str(executable), "--project", "demo", "--name", "interrupted", "--script", str(quickstart)]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    time.sleep(3)  # the code is captured by now; the login is being tried again
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "clearml-task: error: interrupted", stderr
    assert "being created" not in stderr
    assert time.monotonic() - sent < 5


def test_a_ctrl_c_while_the_task_is_created_finishes_it_and_shows_it(
    quickstart: Path, tmp_path: Path
) -> None:
    """The first Ctrl-C while the task is being created and enqueued waits for both and the task's id (it
    used to end the command with the task half-made, or made and not shown), then ends the command; a
    second one leaves at once (here, as the task is enqueued: it is deleted)."""
    from clearml_task.api import Client, Session
    from testing.holding_proxy import HoldingProxy
    from testing.launching import wait_for
    from testing.servers import http_config

    server = start_server(tmp_path / "srv")
    try:
        for presses, name in ((1, "held once"), (2, "held twice")):
            proxy = HoldingProxy(server.url, hold="tasks.enqueue", until="-", patience=3)
            url = proxy.start()
            env = {**os.environ, "CLEARML_API_HOST": url, "CLEARML_API_ACCESS_KEY": server.keys["access_key"],
                   "CLEARML_API_SECRET_KEY": server.keys["secret_key"]}  # fmt: skip
            child = subprocess.Popen(
                [str(Path(sys.executable).with_name("clearml-task")), "--project", "demo", "--name", name,
                 "--script", str(quickstart), "--queue", "default", "--output", "json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
            )  # fmt: skip
            try:
                wait_for(lambda p=proxy, c=child: p.holding or c.poll() is not None, timeout=60)
                for _ in range(presses):
                    child.send_signal(signal.SIGINT)
                    time.sleep(0.2)
                stdout, stderr = child.communicate(timeout=60)
            finally:
                proxy.stop()
            client = Client(Session(http_config(server, tmp_path)))
            made = [t for t in client.tasks(only_fields=["id", "name", "status"]) if t["name"] == name]
            if presses == 1:
                assert child.returncode == 130, stderr  # interrupted, once the task was made and shown
                assert "Ctrl-C: the task is being created and enqueued" in stderr
                assert stderr.endswith("clearml-task: error: interrupted\n"), stderr
                assert [(t["id"], t["status"]) for t in made] == [(json.loads(stdout)["id"], "queued")]
            else:
                assert child.returncode == 130 and stderr.endswith("clearml-task: error: interrupted\n"), (
                    stderr
                )
                assert made == []  # deleted: nothing half-made is left
    finally:
        stop_server(server)


def test_follow_streams_the_log_until_the_task_ends(quickstart: Path) -> None:
    from testing.launching import spawn

    daemon = spawn("daemon", "--queue", "default", "--polling-interval", "0.2")
    try:
        result = run("clearml-task", "--project", "demo", "--name", "followed", "--script", str(quickstart),
                     "--queue", "default", "--args", "epochs=3", "--follow")  # fmt: skip
    finally:
        daemon.terminate()
        daemon.wait(60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "epoch 3/3" in result.stdout and "completed" in result.stderr
    refused = run(
        "clearml-task", "--project", "demo", "--name", "followed", "--script", str(quickstart), "--follow"
    )
    assert_one_line_error(refused, 2, "--follow needs --queue")


def test_a_sha256_repository_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    """ClearML tasks record SHA-1 commits (a launcher refuses a 64-hex one): a SHA-256 repository is one
    line, before any git work (a file that is not UTF-8 made it a git failure naming no command)."""
    work = tmp_path / "work"
    work.mkdir()
    git(tmp_path, "init", "-q", "--object-format=sha256", "-b", "main", str(work))
    (work / "train.py").write_text("print('hi')\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial")
    (work / "data.bin").write_bytes(b"\xff\xfe not UTF-8\n")
    said = f"{work} is a SHA-256 git repository; ClearML tasks record SHA-1 commits"
    local = run("clearml-task", "--project", "sha256", "--name", "local", "--script", str(work / "train.py"))
    assert_one_line_error(local, 1, said)
    assert "--skip-repo-detection" in local.stderr
    remote = run("clearml-task", "--project", "sha256", "--name", "remote", "--repo", str(work), "--script",
                 "train.py")  # fmt: skip
    assert_one_line_error(remote, 1, said)
    assert Client().call("projects.get_all", {"name": "^sha256$"})["projects"] == []


def test_short_names_are_refused_before_anything_is_created(quickstart: Path) -> None:
    short_project = run(
        "clearml-task", "--project", "p", "--name", "long enough", "--script", str(quickstart)
    )
    assert_one_line_error(short_project, 2, "--project 'p' is too short")
    short_name = run("clearml-task", "--project", "demo", "--name", "ab", "--script", str(quickstart))
    assert_one_line_error(short_name, 2, "--name 'ab' is too short")


def test_names_over_1024_characters_are_refused_before_anything_is_created(quickstart: Path) -> None:
    """The server takes names of at most 1024 characters: a longer --project or --name is one usage line,
    before the project is made (the server's refusal of the task came after it)."""
    long_name = run(
        "clearml-task", "--project", "demo-long", "--name", "n" * 1025, "--script", str(quickstart)
    )
    assert_one_line_error(long_name, 2, "--name is 1025 characters long")
    long_project = run("clearml-task", "--project", "p" * 1025, "--name", "fine", "--script", str(quickstart))
    assert_one_line_error(long_project, 2, "--project is 1025 characters long")
    assert Client().call("projects.get_all", {"name": "^demo-long$"})["projects"] == []


def test_an_error_raised_as_a_ctrl_c_unwinds_is_still_the_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    """A Ctrl-C that lands inside a library whose clean-up then fails (libcst's position bookkeeping raises
    KeyError as the KeyboardInterrupt leaves its context manager) printed that KeyError's traceback: it is
    the Ctrl-C, one line and 130. Any other error is left as it was."""
    import contextlib

    from clearml_task import console

    @contextlib.contextmanager
    def bookkeeping() -> Any:
        try:
            yield
        finally:
            {}["the node"]  # the clean-up fails on what the interrupted step left half-done

    def interrupted() -> int:
        with bookkeeping():
            raise KeyboardInterrupt

    assert console.run("clearml-task", interrupted) == 130
    assert capsys.readouterr().err == "clearml-task: error: interrupted\n"

    def broken() -> int:
        with bookkeeping():
            return 0

    with pytest.raises(KeyError):
        console.run("clearml-task", broken)


@pytest.mark.parametrize("listing", ["tasks", "logs"])
def test_a_listing_piped_into_head_ends_quietly(listing: str, tmp_path: Path) -> None:
    """`clearml-launcher tasks | head -1` (and `logs ID | head -1`): the reader closes the pipe early; the
    command ends with 0 and says nothing (the task table's printer raised a BrokenPipeError traceback)."""
    client = Client()
    task_id = ""
    for number in range(400):
        task_id = client.create_task({"name": f"piped listing {number:03}", "type": "training"})
    client.send_log(task_id, [("info", f"line {number} " + "x" * 200) for number in range(2000)])
    argv = ["tasks"] if listing == "tasks" else ["logs", task_id]
    errors = tmp_path / "stderr.txt"
    pipeline = subprocess.run(
        ["bash", "-c", f'"$0" -m launcher {" ".join(argv)} 2>"$1" | head -1; exit "${{PIPESTATUS[0]}}"',
         sys.executable, str(errors)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert len(pipeline.stdout.splitlines()) == 1
    assert errors.read_text() == "" and pipeline.returncode == 0, (pipeline.returncode, errors.read_text())
