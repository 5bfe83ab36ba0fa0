"""Reading a local repository (never writing to it): HEAD, its upstream, remote branches and how far
HEAD is past them, a remote's URL, untracked files."""

from __future__ import annotations

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
