"""Reading a local repository (never writing to it): HEAD, its upstream, remote branches and how far
HEAD is past them, a remote's URL, untracked files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from clearml_task.git import run, urls


def head_commit(root: Path) -> str:
    """HEAD's commit id, or "" in a repository with no commits yet."""
    return run.out(root, "rev-parse", "--verify", "-q", "HEAD", check=False)


def head_ref(root: Path) -> str:
    """The branch HEAD is on (refs/heads/...), or "" when detached."""
    return run.out(root, "symbolic-ref", "-q", "HEAD", check=False)


def upstream(root: Path, ref: str) -> tuple[str, str, str]:
    """(remote name, the remote's ref, the local remote-tracking ref) `ref` tracks; empty parts if none."""
    tracking = "%(upstream:remotename)%00%(upstream:remoteref)%00%(upstream)"
    remote, merge, tracked = run.out(root, "for-each-ref", f"--format={tracking}", ref).split("\0")
    return remote, merge, tracked


def remote_branches(root: Path) -> list[str]:
    """The remote-tracking refs (refs/remotes/<remote>/<branch>), without the remotes' HEADs."""
    refs = run.out(root, "for-each-ref", "--format=%(refname)", "refs/remotes").split()
    return [ref for ref in refs if not ref.endswith("/HEAD")]


def merge_base(root: Path, one: str, other: str) -> str:
    """The best common ancestor of two commits, or ""."""
    return run.out(root, "merge-base", one, other, check=False)


def count(root: Path, revisions: str) -> int:
    """How many commits `git rev-list <revisions>` lists."""
    return int(run.out(root, "rev-list", "--count", revisions))


def remote_url(root: Path, remote: str) -> str:
    """The remote's URL as it may be recorded: a local path made absolute, any other URL without
    credentials."""
    url = run.out(root, "remote", "get-url", remote)
    if urls.is_local_path(url):
        return str((root / url).resolve())
    return urls.public_url(url)


def untracked(root: Path) -> list[str]:
    """The untracked files that are not ignored."""
    listed = run.out(root, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
    return [path for path in listed if path]


def read_blobs(repo: Path, blobs: list[str], env: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """Blob id -> content of those `blobs` that are in `repo` (under `env`), with one `git cat-file --batch`:
    a blob that is not there ends the output early and is missing from the answer."""
    ids = "".join(f"{blob}\n" for blob in blobs).encode()
    output = run.run(repo, "cat-file", "--batch", input=ids, env=env, check=False)
    found: dict[str, bytes] = {}
    at = 0
    while (end := output.find(b"\n", at)) >= 0:
        header = output[at:end].split()
        at = end + 1
        if len(header) < 3 or header[1] == b"missing":
            continue
        size = int(header[2])
        if at + size > len(output):
            break
        found[header[0].decode()] = output[at : at + size]
        at += size + 1  # the content, then a newline
    return found
