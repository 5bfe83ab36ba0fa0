"""What the user asked for is what is recorded: clearml-task run as a subprocess on real repositories, each
flag checked against what lands in the task (or refused with one line, nothing created)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clearml_task.api import Client
from testing.commands import assert_one_line_error, run
from testing.launching import launcher, log_lines, spawn, wait_for
from testing.repos import Repo, make_repo, reproduce
from testing.servers import ROOT


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """The quickstart fixture as a real repository with a bare origin."""
    return make_repo(tmp_path / "qs", "quickstart")


def create(*flags: str, cwd: Path | None = None) -> dict:
    """Runs clearml-task with --output json and returns the task it created."""
    result = run("clearml-task", *flags, "--output", "json", **({"cwd": cwd} if cwd else {}))
    assert result.returncode == 0, result.stderr
    return Client().get_task(json.loads(result.stdout)["id"])


def test_refusals_are_one_line_and_create_nothing(repo: Repo) -> None:
    train = str(repo.work / "train.py")
    new = ["--name", "refused", "--script", train]
    cases = [
        (["--project", "ab/sub-lvl", *new], 2, "the part 'ab' of --project 'ab/sub-lvl' is too short"),
        (["--project", "demo", *new, "--force-no-requirements", "--packages", "tqdm"], 2,
         "--force-no-requirements and --packages exclude each other"),
        (["--project", "demo", *new, "--args", "epochs=1", "lr=0.1", "epochs=2"], 2,
         "--args gives 'epochs' more than once"),
        (["--project", "demo", *new, "--output-uri", "not a uri"], 2,
         "--output-uri 'not a uri' is neither a URI nor a local path"),
    ]  # fmt: skip
    for argv, code, text in cases:
        assert_one_line_error(run("clearml-task", *argv), code, text)
    assert not Client().tasks(name="refused")


def test_a_project_with_a_trailing_slash_is_the_project(repo: Repo) -> None:
    first = create("--project", "qa-proj", "--name", "first", "--script", str(repo.work / "train.py"))
    again = create("--project", "qa-proj/", "--name", "again", "--script", str(repo.work / "train.py"))
    assert again["project"] == first["project"]
    nested = create(
        "--project", "qa-proj/sub-lvl/", "--name", "nested", "--script", str(repo.work / "train.py")
    )
    assert nested["project"] == Client().project_id("qa-proj/sub-lvl", create=False)


def test_a_local_output_uri_is_recorded_as_a_file_uri(repo: Repo, tmp_path: Path) -> None:
    task = create("--project", "demo", "--name", "local out", "--script", "train.py", "--output-uri", "./out",
                  cwd=repo.work)  # fmt: skip
    assert task["output"]["destination"] == (repo.work / "out").as_uri()
    kept = create("--project", "demo", "--name", "to s3", "--script", str(repo.work / "train.py"),
                  "--output-uri", "s3://bucket/models")  # fmt: skip
    assert kept["output"]["destination"] == "s3://bucket/models"


def test_a_relative_repo_is_recorded_absolute(repo: Repo, tmp_path: Path) -> None:
    assert repo.origin is not None
    here = tmp_path / "elsewhere"
    here.mkdir()
    task = create("--project", "demo", "--name", "relative", "--repo", "../qs/origin.git", "--script",
                  "train.py", cwd=here)  # fmt: skip
    assert task["script"]["repository"] == str(repo.origin.resolve())
    assert task["script"]["version_num"] == repo.git("rev-parse", "HEAD")


def test_an_unreachable_repo_says_gits_meaningful_line(tmp_path: Path) -> None:
    flags = ["--project", "demo", "--name", "nowhere", "--script", "train.py"]
    missing = run("clearml-task", *flags, "--repo", str(tmp_path / "missing.git"))
    assert_one_line_error(missing, 1, "does not appear to be a git repository")
    # a forge answering over ssh: its own line comes first, then git's boilerplate
    forge = "sh -c 'echo ERROR: Repository not found. >&2; exit 128' --"
    refused = run("clearml-task", *flags, "--repo", "git@example.invalid:org/nope.git",
                  env={"GIT_SSH_COMMAND": forge})  # fmt: skip
    assert_one_line_error(refused, 1, "git ls-remote --symref failed: Repository not found.")
    assert not Client().tasks(name="nowhere")


def test_a_latin1_change_is_utf8_in_the_task_and_runs_byte_exact(repo: Repo, tmp_path: Path) -> None:
    repo.write("menu.txt", "café\n".encode("latin-1"))
    repo.write("show.py", "print(open('menu.txt', 'rb').read().hex())\n")
    repo.commit("latin-1 data")
    repo.git("push", "-q")
    repo.write("menu.txt", "café crème\n".encode("latin-1"))
    task = create("--project", "demo", "--name", "latin-1", "--script", str(repo.work / "show.py"))
    patch = task["script"]["diff"]
    patch.encode("utf-8")  # strict: ClearML's server stores it, ClearML's agent applies it
    assert "GIT binary patch" in patch
    checkout = reproduce(tmp_path, task["script"]["repository"], task["script"]["version_num"], patch)
    assert (checkout / "menu.txt").read_bytes() == (repo.work / "menu.txt").read_bytes()
    result = launcher("execute", "--id", task["id"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "café crème\n".encode("latin-1").hex() in log_lines(task["id"])


def test_a_script_relative_to_cwd_in_a_local_checkout(repo: Repo) -> None:
    repo.write(
        "sub/subtrain.py", "import os\nprint('in', os.path.basename(os.getcwd()), open('data.txt').read())\n"
    )
    repo.write("sub/data.txt", "sub data")
    task = create("--project", "demo", "--name", "sub train", "--folder", ".", "--cwd", "sub", "--script",
                  "subtrain.py", cwd=repo.work)  # fmt: skip
    assert (task["script"]["working_dir"], task["script"]["entry_point"]) == ("sub", "subtrain.py")
    result = launcher("execute", "--id", task["id"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in sub sub data" in log_lines(task["id"])
    missing = run("clearml-task", "--project", "demo", "--name", "sub train", "--folder", ".", "--cwd", "sub",
                  "--script", "nothing.py", cwd=repo.work)  # fmt: skip
    assert_one_line_error(missing, 1, f"--script nothing.py not found (looked at {repo.work}/nothing.py")
    assert f"{repo.work}/sub/nothing.py" in missing.stderr


def test_a_commit_only_on_a_feature_branch_records_that_branch(repo: Repo) -> None:
    assert repo.origin is not None
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("feature.txt", "feature\n")
    sha = repo.commit("feature")
    repo.git("push", "-q", "origin", "feature")
    flags = ["--project", "demo", "--repo", str(repo.origin), "--script", "train.py", "--commit", sha]
    task = create("--name", "on feature", *flags)
    assert (task["script"]["branch"], task["script"]["version_num"]) == ("feature", sha)
    refused = run("clearml-task", "--name", "not on main", *flags, "--branch", "main")
    assert_one_line_error(refused, 1, f"commit {sha[:12]} is not on branch main")


def test_a_dry_run_clone_shows_the_base_task_with_the_overrides(repo: Repo) -> None:
    import yaml

    base = create("--project", "demo", "--name", "base task", "--script", str(repo.work / "train.py"),
                  "--args", "epochs=2", "lr=0.1", "--docker", "img:1")  # fmt: skip
    before = len(Client().tasks())
    shown = run("clearml-task", "--dry-run", "--base-task-id", base["id"], "--args", "lr=0.7",
                "--output-uri", "s3://bucket/out")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    clone = yaml.safe_load(shown.stdout)
    assert (clone["project"], clone["name"], clone["status"], clone["parent"]) == (
        "demo", "base task", "created", base["id"],
    )  # fmt: skip
    assert clone["script"] == base["script"] and clone["container"] == base["container"]
    assert {k: v["value"] for k, v in clone["hyperparams"]["Args"].items()} == {"epochs": "2", "lr": "0.7"}
    assert clone["output_dest"] == "s3://bucket/out"
    assert len(Client().tasks()) == before  # nothing created


def test_follow_says_it_waits_for_a_worker_and_keeps_json_lines(repo: Repo, tmp_path: Path) -> None:
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    argv = [sys.executable, "-m", "clearml_task", "--project", "demo", "--name", "followed",
            "--script", str(repo.work / "train.py"), "--queue", "default", "--args", "epochs=3", "--follow",
            "--output", "json"]  # fmt: skip
    with out.open("w") as stdout, err.open("w") as stderr:
        following = subprocess.Popen(argv, stdout=stdout, stderr=stderr, cwd=ROOT)
    daemon = None
    try:
        waiting = "clearml-task: waiting for a worker on queue default (none listens on it now"
        wait_for(lambda: waiting in err.read_text(), timeout=60)
        daemon = spawn("daemon", "--queue", "default", "--polling-interval", "0.2")
        assert following.wait(300) == 0, out.read_text() + err.read_text()
    finally:
        following.kill()
        if daemon is not None:
            daemon.terminate()
            daemon.wait(60)
    printed = [json.loads(line) for line in out.read_text().splitlines()]  # every line is JSON
    assert printed[0]["id"] and printed[-1] == {"id": printed[0]["id"], "status": "completed"}
    assert any(line.get("log", "").startswith("epoch 3/3") for line in printed)
    assert f"task {printed[0]['id']} completed" in err.read_text()
