"""The git room's own rules: URLs and their credentials, and how a git failure reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearml_task import source
from clearml_task.errors import UserError
from clearml_task.git import checkout, remote, run, urls


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


def test_scrubbing_a_long_run_of_letters_takes_a_pass_not_a_pass_per_letter() -> None:
    """A text of 400,000 letters with no URL (as an error's text can be), then one with credentials: done
    within a generous bound in a process of its own (time that grew with the square of the run took
    minutes), and the credentials after the run still go."""
    import subprocess
    import sys

    code = (
        "from clearml_task.git.urls import scrub; "
        "print(scrub('x' * 400_000 + ' 1https://user:pw@h/r ' + 'y' * 40 + 'https://a:b@h/x')[-100:])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().endswith(" 1https://h/r " + "y" * 40 + "https://h/x"), done.stdout


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


def test_a_git_failure_names_the_subcommand_not_its_settings(tmp_path: Path) -> None:
    with pytest.raises(run.GitError) as e:
        run.run(tmp_path, "-c", "core.quotepath=true", "-c", "color.ui=0", "rev-parse", "--verify", "HEAD")
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


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("ftp://TOKEN@files.example.com/r.git", "ftp://files.example.com/r.git"),
        ("git+https://TOKEN@github.com/org/r.git@v1#egg=r", "git+https://github.com/org/r.git@v1#egg=r"),
        ("git+ssh://git:TOKEN@github.com/org/r.git", "git+ssh://git@github.com/org/r.git"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("https://gitlab.com/api/v4/x?private_token=TOKEN&ref=main", "https://gitlab.com/api/v4/x?ref=main"),
        ("https://h/simple?access_token=TOKEN", "https://h/simple"),
        ("https://h/f.tar.gz?token=TOKEN&key=TOKEN&password=TOKEN", "https://h/f.tar.gz"),
        ("https://user:TOKEN@[::1/r.git", "https://[::1/r.git"),
        ("git@github.com:org/r.git", "git@github.com:org/r.git"),
    ],
)
def test_every_url_form_loses_its_credentials(url: str, public: str) -> None:
    assert urls.public_url(url) == public
    assert "TOKEN" not in urls.scrub(f"pkg @ {url} ; python_version > '3'")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("--upload-pack=touch x;", "starts with '-'"),
        ("ext::sh -c touch% x", "remote helper"),
        ("fd::3", "remote helper"),
        ("ftp://host/r.git", "scheme ftp://"),
        ("ssh://-oProxyCommand=x/r.git", "host starts with '-'"),
        ("git@-oProxyCommand=x:r.git", "host starts with '-'"),
        ("https://host/r.git\n--x", "control characters"),
        ("", "empty"),
    ],
)
def test_repositories_git_must_not_be_handed(url: str, problem: str) -> None:
    assert problem in urls.repository_problem(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://h/r.git",
        "http://h/r",
        "ssh://git@h/r",
        "git://h/r",
        "file:///srv/r",
        "git@h:o/r",
        "/srv/r",
        "r",
    ],
)
def test_repositories_git_may_fetch(url: str) -> None:
    assert urls.repository_problem(url) == ""


def test_git_never_reads_a_url_as_an_option_nor_runs_a_helper(tmp_path: Path) -> None:
    """Below the launcher's own checks: '--' before every positional, and only the allowed transports."""
    canary = tmp_path / "canary"
    mirror = tmp_path / "mirror.git"
    checkout.init_mirror(mirror)
    for url in (f"--upload-pack=touch {canary};", f"ext::sh -c touch% {canary}"):
        with pytest.raises(run.GitError):
            checkout.fetch_mirror(mirror, url)
        with pytest.raises(run.GitError):
            remote.ls_remote(url, cwd=tmp_path)
    with pytest.raises(run.GitError) as e:
        remote.ls_remote(f"ext::sh -c touch% {canary}", cwd=tmp_path)
    assert e.value.reason == "transport 'ext' not allowed"
    assert not canary.exists()


@pytest.mark.parametrize("url", ["--upload-pack=touch {canary};", "ext::sh -c touch% {canary}"])
def test_clearml_task_refuses_such_a_repo_too(tmp_path: Path, url: str) -> None:
    canary = tmp_path / "canary"
    with pytest.raises(UserError, match="cannot be used"):
        source.resolve_remote(url.format(canary=canary), None, None)
    assert not canary.exists()
