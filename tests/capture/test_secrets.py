"""Secrets stay on the laptop: untracked files that look like secrets stay out of the patch (unless
--include-secrets) and the summary names each; credentials never reach a recorded or printed URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clearml_task import secret_files, summary
from clearml_task.request import Request
from clearml_task.submit import Prepared, prepare
from testing.repos import Repo, make_repo, reproduce, tree_of
from testing.servers import ROOT

SECRETS = [
    ".env", ".env.local", ".envrc", "server.pem", "conf/tls.key", "id_rsa", "id_rsa.pub", "keys/id_ed25519",
    ".netrc", ".pypirc", "credentials.json", ".aws/credentials", "cert.p12", "kubeconfig", "prod.kubeconfig",
    ".kube/config", ".npmrc", ".pgpass", ".htpasswd", "client_secret_123.apps.json", "service-account.json",
    "secrets.yaml", "prod.tfvars", "release.keystore", "deploy_key", "deploy_key.pub", "putty.ppk",
]  # fmt: skip
ORDINARY = ["environment.py", "keys.py", "credentials.py", "notes/pem.md", "config", "aws/config.json"]


def capture(repo: Repo, **flags: object) -> Prepared:
    request = Request(project="proj", name="secrets", folder=str(repo.work), script="train.py", **flags)  # type: ignore[arg-type]
    return prepare(request)


@pytest.mark.parametrize("path", SECRETS)
def test_each_secret_pattern(path: str) -> None:
    assert secret_files.looks_secret(path)


@pytest.mark.parametrize("path", ORDINARY)
def test_ordinary_files_are_not_secrets(path: str) -> None:
    assert not secret_files.looks_secret(path)


def test_untracked_secrets_stay_out_and_are_named(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for path in SECRETS:
        repo.write(path, f"SECRET-{path}\n")
    repo.write("notes.txt", "travels\n")
    prepared = capture(repo)
    source = prepared.source
    assert source is not None
    assert "SECRET-" not in source.patch and "travels" in source.patch
    assert sorted(source.secrets_left_out) == sorted(SECRETS)
    assert source.stats.untracked == 1
    # the reproduced tree is what was captured: the launcher's verification holds without the secrets
    checkout = reproduce(tmp_path, source.repository, source.commit, source.patch)
    assert tree_of(checkout) == source.tree
    assert not any((checkout / path).exists() for path in SECRETS)


def test_an_untracked_private_key_stays_out_whatever_its_name(tmp_path: Path) -> None:
    """A key is a key by its first line: `-----BEGIN OPENSSH PRIVATE KEY-----` in a file named `deploy`,
    `server` or `ci/signing.txt` stays behind, named; a file that only mentions keys travels."""
    repo = make_repo(tmp_path)
    keys = ["deploy", "server", "ci/signing.txt"]
    headers = ["OPENSSH PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]
    for path, header in zip(keys, headers, strict=True):
        repo.write(path, f"-----BEGIN {header}-----\nSECRET-{path}\n-----END {header}-----\n")
    repo.write("notes.md", "rotate the private key every month\n")
    source = capture(repo).source
    assert source is not None
    assert "SECRET-" not in source.patch and "rotate the private key" in source.patch
    assert sorted(source.secrets_left_out) == sorted(keys)


def test_include_secrets_sends_them(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write(".env", "TOKEN=abc\n")
    source = capture(repo, include_secrets=True).source
    assert source is not None and "TOKEN=abc" in source.patch and source.secrets_left_out == []


def test_a_tracked_secret_is_the_users_choice(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write(".env", "A=1\n")
    repo.commit("track .env")
    repo.git("push", "-q", "origin", "main")
    repo.write(".env", "A=2\n")
    source = capture(repo).source
    assert source is not None and "+A=2" in source.patch and source.secrets_left_out == []


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clearml_task", *argv], capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ), timeout=120,
    )  # fmt: skip


def test_the_summary_names_every_file_left_out_and_help_names_the_flag(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "quickstart")
    for path in (".env", "id_rsa", ".aws/credentials"):
        repo.write(path, "SECRET\n")
    repo.write("extra.py", "X = 1\n")
    created = run_cli(
        "--project", "demo", "--name", "secrets", "--folder", str(repo.work), "--script", "train.py"
    )
    assert created.returncode == 0, created.stderr
    out = created.stdout
    assert (
        "1 untracked" in out
        and "3 untracked files that look like secrets" in out
        and "--include-secrets" in out
    )
    for path in (".env", "id_rsa", ".aws/credentials"):
        assert path in out
    assert "--include-secrets" in run_cli("--help").stdout


@pytest.mark.parametrize(
    "line",
    [
        "pkg @ git+https://ghp_TOKEN@github.com/org/pkg.git@v1",
        "git+https://user:TOKEN@gitlab.com/org/pkg.git#egg=pkg",
        "pkg @ https://gitlab.com/api/v4/projects/1/packages/pypi/files/x/pkg-1.0.tar.gz?private_token=TOKEN",
        "--extra-index-url https://__token__:TOKEN@pypi.example.com/simple",
        "--index-url https://pypi.example.com/simple?access_token=TOKEN",
        "pkg @ ftp://TOKEN@files.example.com/pkg-1.0.tar.gz",
    ],
)
def test_requirement_lines_are_recorded_and_printed_without_credentials(tmp_path: Path, line: str) -> None:
    repo = make_repo(tmp_path)
    given = tmp_path / "requirements.txt"
    given.write_text(f"{line}\n")
    prepared = capture(repo, requirements=str(given))
    recorded = prepared.document["script"]["requirements"]["pip"]
    assert "TOKEN" not in recorded and ("pkg" in recorded or "example.com" in recorded)
    assert prepared.requirements is not None
    assert not any("TOKEN" in value for _, value in summary.requirement_rows(prepared.requirements))


def test_a_given_requirements_file_with_credentials_stays_behind(tmp_path: Path) -> None:
    """--requirements names an untracked file of the checkout whose URLs carry a token: its lines are
    recorded without it, and the file itself no longer travels in the patch with the token (named among
    the files left out); one without credentials travels as before."""
    repo = make_repo(tmp_path)
    secret = "git+https://bob:PYPI_TOKEN_SECRET@gitlab.example.com/org/pkg.git#egg=pkg\n"
    repo.write("private-requirements.txt", secret)
    repo.write("plain-requirements.txt", "six==1.16.0\n")
    with_token = capture(repo, requirements=str(repo.work / "private-requirements.txt"))
    assert with_token.source is not None
    assert "PYPI_TOKEN_SECRET" not in with_token.source.patch
    assert "PYPI_TOKEN_SECRET" not in json.dumps(with_token.document)
    assert with_token.source.secrets_left_out == ["private-requirements.txt"]
    plain = capture(repo, requirements=str(repo.work / "plain-requirements.txt"))
    assert plain.source is not None and "six==1.16.0" in plain.source.patch


def test_json_output_names_the_files_left_out(tmp_path: Path) -> None:
    """`--output json` said nothing of the secrets it left behind: the answer lists them (`left_out`, with
    the notes) and stderr names each, as the text summary does."""
    repo = make_repo(tmp_path, "quickstart")
    repo.write(".env", "SECRET\n")
    created = run_cli("--project", "demo", "--name", "secrets json", "--folder", str(repo.work), "--script",
                      "train.py", "--output", "json")  # fmt: skip
    assert created.returncode == 0, created.stderr
    answer = json.loads(created.stdout)
    assert answer["left_out"] == [".env"] and isinstance(answer["notes"], list)
    assert "left out (looks like a secret): .env" in created.stderr


def test_special_files_are_never_read_for_keys(tmp_path: Path) -> None:
    """An untracked FIFO, or a link to one (or to /dev/stdin), is never opened: the capture does not wait
    on it (it hung there)."""
    repo = make_repo(tmp_path, "quickstart")
    os.mkfifo(repo.work / "pipe")
    (repo.work / "to-pipe").symlink_to(repo.work / "pipe")
    (repo.work / "to-stdin").symlink_to("/dev/stdin")
    created = run_cli("--project", "demo", "--name", "special files", "--folder", str(repo.work), "--script",
                      "train.py", "--dry-run")  # fmt: skip
    assert created.returncode == 0, created.stderr


def test_ordinary_files_that_mention_keys_travel(tmp_path: Path) -> None:
    """`deploy_keys.py` is a module, and a test that quotes a PEM key below its first line is code: both
    travel; only a file that begins with a private key stays behind."""
    repo = make_repo(tmp_path)
    repo.write("deploy_keys.py", "KEYS = []\n")
    key = "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----"
    quoted = f'"""A parser test."""\nPEM = """{key}"""\n'
    repo.write("test_pem.py", quoted)
    source = capture(repo).source
    assert source is not None and source.secrets_left_out == []
    assert "deploy_keys.py" in source.patch and "test_pem.py" in source.patch
