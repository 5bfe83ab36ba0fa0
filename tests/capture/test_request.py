"""clearml-task's flags are checked when the Request is made, before any capture; what the checks read
(--args pairs, --requirements / --packages lines) travels with the request."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from clearml_task import records
from clearml_task.api import Client
from clearml_task.errors import UserError
from clearml_task.request import Request


def test_every_check_runs_before_the_repository_is_looked_at(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-checkout")  # capturing it would fail: the flag checks come first
    flags = {"project": "proj", "name": "checked", "folder": missing, "script": "train.py"}
    cases = [
        ({"task_type": "nonsense"}, "unknown --task-type 'nonsense'", 2),
        ({"args": ["epochs"]}, "--args takes key=value pairs, got 'epochs'", 2),
        ({"packages": ["pandas=>2"]}, "--packages: 'pandas=>2' is not a valid requirement", 1),
        ({"requirements": str(tmp_path / "nowhere.txt")}, "nowhere.txt does not exist", 1),
        ({"follow": True}, "--follow needs --queue", 2),
        ({"binary": "sh -c id"}, "--binary 'sh -c id' is not an interpreter a task may name", 2),
        ({"binary": "python3; touch x"}, "--binary 'python3; touch x' is not an interpreter", 2),
        ({"output_uri": "s3://AKIA:hunter2@bucket/out"}, "--output-uri 's3://bucket/out' carries", 2),
        ({"output_uri": "https://host/out?token=hunter2"}, "carries credentials", 2),
        ({"docker": "-v/:/host"}, "--docker '-v/:/host' does not start with an image reference", 2),
        ({"docker": "--privileged img"}, "--docker '--privileged img' does not start with an image", 2),
    ]
    for extra, message, code in cases:
        with pytest.raises(UserError, match=message) as caught:
            Request(**{**flags, **extra})  # type: ignore[arg-type]
        assert caught.value.exit_code == code
        assert "hunter2" not in str(caught.value)


def test_docker_is_an_image_and_the_words_after_it_are_arguments() -> None:
    # an option given as --docker was recorded as container.image, for an agent to put on the engine's
    # command line; ClearML's clearml-task reads `--docker "image args"` as the image and its arguments
    flags = {"project": "proj", "name": "docker", "script": "train.py"}
    split = Request(**flags, docker="python:3.11  --ipc=host", docker_args="-e A=1")  # type: ignore[arg-type]
    assert (split.docker, split.docker_args) == ("python:3.11", "--ipc=host -e A=1")
    plain = Request(**flags, docker="registry.example.com:5000/team/img:v1@sha256:" + "0" * 64)  # type: ignore[arg-type]
    assert plain.docker_args is None and plain.docker is not None and plain.docker.endswith("0" * 64)
    assert Request(**flags, docker="").docker == ""  # type: ignore[arg-type]


def test_the_setup_script_is_read_when_the_request_is_made(tmp_path: Path) -> None:
    # a file that is not UTF-8, and a literal script too long to be a file name, were tracebacks
    flags = {"project": "proj", "name": "setup", "script": "train.py"}
    named = tmp_path / "setup.sh"
    named.write_text("#!/bin/bash\napt-get install -y git\n")
    assert Request(**flags, docker_bash_setup_script=str(named)).docker_bash_setup_script == (  # type: ignore[arg-type]
        "apt-get install -y git"
    )
    literal = "echo " + "x" * 300
    assert Request(**flags, docker_bash_setup_script=literal).docker_bash_setup_script == literal  # type: ignore[arg-type]
    named.write_bytes(b"\xff\xfe echo\n")
    with pytest.raises(UserError, match=r"setup.sh is not UTF-8 text"):
        Request(**flags, docker_bash_setup_script=str(named))  # type: ignore[arg-type]


def test_what_the_checks_read_goes_with_the_request(tmp_path: Path) -> None:
    given = tmp_path / "reqs.txt"
    given.write_text("numpy>=1.26\n")
    request = Request(
        project="proj", name="checked", script="train.py", args=["lr=0.2", "--epochs=3"],
        requirements=str(given), packages=["six"],
    )  # fmt: skip
    assert request.overrides == {"epochs": "3", "lr": "0.2"}
    assert request.given is not None
    assert [r.line for r in request.given.requirements] == ["numpy>=1.26", "six"]
    assert request.gives_requirements
    assert Request(project="proj", name="checked", script="train.py").given is None
    unread = Request(project="proj", name="checked", script="t.py", force_no_requirements=True)
    assert unread.given is None and unread.gives_requirements  # --force-no-requirements: nothing is read
    with pytest.raises(records.FrozenInstanceError):
        request.name = "changed"  # type: ignore[misc]


def test_tags_are_kept_once_each_in_their_order_and_an_empty_one_is_no_tag() -> None:
    request = Request(project="proj", name="tagged", script="t.py", tags=["x y", "", "x", "x y", " ", "x"])
    assert request.tags == ["x y", "x"]


@pytest.mark.parametrize("flag", ["--pipeline", "--pipeline-version", "--pipeline-dont-add-run-number",
                                  "--import-offline-session"])  # fmt: skip
def test_flags_of_clearmls_clearml_task_it_lacks_are_named_as_such(flag: str) -> None:
    result = subprocess.run([sys.executable, "-c", "import sys; from clearml_task.cli import main; "
                             f"sys.exit(main(['{flag}', 'x', '--project', 'proj', '--name', 'abc']))"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"clearml-task: error: {flag} is a flag of ClearML's clearml-task that this one")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"args": ["lr=0.1", "--epochs=3", "--lr=0.2"]}, "--args gives 'lr' more than once"),
        ({"force_no_requirements": True, "packages": ["x=>"]}, "--force-no-requirements and --packages"),
        (
            {"force_no_requirements": True, "requirements": "r.txt"},
            "--force-no-requirements and --requirements",
        ),
        ({"project": "ab/sub-lvl"}, "the part 'ab' of --project 'ab/sub-lvl' is too short"),
        ({"project": "proj/sub/xy"}, "the part 'xy' of --project 'proj/sub/xy' is too short"),
        ({"project": "proj//sub"}, "the part '' of --project 'proj//sub' is too short"),
        ({"project": "ab/"}, "--project 'ab/' is too short"),
        ({"output_uri": "not a uri"}, "--output-uri 'not a uri' is neither a URI nor a local path"),
        ({"output_uri": "s3://"}, "--output-uri 's3://' is neither a URI nor a local path"),
    ],
)
def test_wrong_combinations_and_values_are_usage_errors(extra: dict[str, object], message: str) -> None:
    flags = {"project": "proj", "name": "checked", "script": "train.py"}
    with pytest.raises(UserError, match=re.escape(message)) as caught:
        Request(**{**flags, **extra})  # type: ignore[arg-type]
    assert caught.value.exit_code == 2


def test_flags_are_kept_as_they_are_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    request = Request(project="qa-proj/", name="checked", repo="../r2.git", script="t.py", output_uri="./out")
    assert request.project == "qa-proj"
    assert request.repo == str((tmp_path.parent / "r2.git").resolve())
    assert request.output_uri == (tmp_path / "out").as_uri()
    assert Request(base_task_id="abc", output_uri="../out").output_uri == (tmp_path.parent / "out").as_uri()
    for uri in ("s3://bucket/dir", "gs://b", "file:///abs/dir", "https://files.example.com/x"):
        assert Request(base_task_id="abc", output_uri=uri).output_uri == uri
    url = "https://example.com/org/repo.git"
    assert Request(project="nested/team/proj", name="checked", repo=url, script="t.py").repo == url


def test_a_clone_is_checked_too() -> None:
    with pytest.raises(UserError, match="--script cannot go with it"):
        Request(base_task_id="abc", script="train.py")
    with pytest.raises(UserError, match="unknown --task-type 'nonsense'"):
        Request(base_task_id="abc", task_type="nonsense")
    assert Request(base_task_id="abc").name is None  # no --name or --project needed


def test_status_endpoints_and_log_stamps(client: Client) -> None:
    task_id = client.create_task({"name": "statuses", "type": "training"})
    with pytest.raises(ValueError, match="no endpoint sets the status 'closed'"):
        client.set_status(task_id, "closed")
    client.set_status(task_id, "started")
    client.set_status(task_id, "completed", force=True, message="done")
    assert client.get_task(task_id)["status"] == "completed"
    assert client.send_log(task_id, [("info", "b"), ("info", "a")], stamps=[2000, 1000]) == 2
    assert [(e["msg"], e["timestamp"]) for e in client.task_log(task_id)] == [("a", 1000), ("b", 2000)]
