"""The git room's own rules: URLs and their credentials, and how a git failure reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearml_task.errors import UserError
from clearml_task.git import run, urls


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (
            "fatal: unable to access 'https://user:tok@github.com/org/r.git/': 403",
            "fatal: unable to access 'https://github.com/org/r.git/': 403",
        ),
        ("from http://tok@host/r.git and https://a:b@h/x", "from http://host/r.git and https://h/x"),
        ("fatal: git@github.com:org/r.git not found", "fatal: git@github.com:org/r.git not found"),
    ],
)
def test_credentials_are_scrubbed_from_text(text: str, scrubbed: str) -> None:
    assert urls.scrub(text) == scrubbed


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://user:secret@github.com/org/proj.git", "proj"),
        ("git@github.com:org/other.git", "other"),
        ("/srv/repos/my repo/", "my_repo"),
        ("https://host/", "host"),
        ("..", "repository"),
    ],
)
def test_repository_names(url: str, name: str) -> None:
    assert urls.repository_name(url) == name


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("/abs/path", True),
        ("relative/path", True),
        ("C:/not/scp", True),
        ("https://host/r.git", False),
        ("file:///abs/path", False),
        ("git@host:org/r.git", False),
        ("host:org/r.git", False),
    ],
)
def test_local_paths(url: str, local: bool) -> None:
    assert urls.is_local_path(url) is local


def test_a_git_failure_says_gits_reason(tmp_path: Path) -> None:
    with pytest.raises(run.GitError) as e:
        run.run(tmp_path, "rev-parse", "--verify", "HEAD")
    assert isinstance(e.value, UserError)
    assert e.value.reason.startswith("not a git repository")
    assert str(e.value) == f"git rev-parse --verify failed: {e.value.reason}"


def test_git_that_cannot_start_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(run.GitUnavailable) as e:
        run.run(tmp_path / "missing", "status")
    assert isinstance(e.value, UserError) and e.value.hint == "install git"
    assert run.answer(tmp_path / "missing", "status") == ""


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("warning: x\nerror: first\nfatal: second\n", "first"),
        ("remote: Repository not found.\nfatal: repository 'r' not found\n", "repository 'r' not found"),
        ("something odd\nlast words\n", "last words"),
        ("", ""),
        (
            "ssh: Could not resolve hostname nohost: Name or service not known\r\n"
            "fatal: Could not read from remote repository.\n\n"
            "Please make sure you have the correct access rights\nand the repository exists.\n",
            "ssh: Could not resolve hostname nohost: Name or service not known",
        ),
        (
            "ERROR: Repository not found.\nfatal: Could not read from remote repository.\n\n"
            "Please make sure you have the correct access rights\nand the repository exists.\n",
            "Repository not found.",
        ),
        (
            "fatal: Could not read from remote repository.\n\n"
            "Please make sure you have the correct access rights\nand the repository exists.\n",
            "Could not read from remote repository.",
        ),
    ],
)
def test_the_reason_is_the_first_fatal_or_error_line(stderr: str, reason: str) -> None:
    assert run.reason(stderr) == reason
