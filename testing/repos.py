"""Fixture trees (fixtures/repos/) made into real git repositories with a bare "origin", and the agent's
side of reproduction: clone the recorded repository, check out the recorded commit, apply the patch."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "repos"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Fixture", "GIT_AUTHOR_EMAIL": "fixture@example.com",
    "GIT_COMMITTER_NAME": "Fixture", "GIT_COMMITTER_EMAIL": "fixture@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}  # fmt: skip


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, check=False,
        encoding="utf-8", errors="surrogateescape",  # file names that are not UTF-8 come back as they are
    )  # fmt: skip
    if result.returncode:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}: {result.stderr}")
    return result.stdout.strip()


@dataclass
class Repo:
    work: Path
    origin: Path | None

    def git(self, *args: str) -> str:
        return git(self.work, *args)

    def write(self, path: str, content: str | bytes, mode: int | None = None) -> Path:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        if mode is not None:
            target.chmod(mode)
        return target

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


def make_repo(tmp: Path, fixture: str = "basic", *, remote: bool = True, push: bool = True) -> Repo:
    """`fixture` committed on main in tmp/work; with `remote`, a bare tmp/origin.git holds it (pushed,
    tracked as upstream)."""
    work = tmp / "work"
    shutil.copytree(FIXTURES / fixture, work)
    git(work, "init", "-q", "-b", "main")
    for path in work.rglob("*.sh"):
        path.chmod(0o755)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial")
    origin = None
    if remote:
        origin = tmp / "origin.git"
        git(tmp, "init", "-q", "--bare", "-b", "main", str(origin))
        git(work, "remote", "add", "origin", str(origin))
        if push:
            git(work, "push", "-q", "-u", "origin", "main")
    return Repo(work, origin)


def reproduce(tmp: Path, repository: str, commit: str, patch: str, *, unidiff_zero: bool = False) -> Path:
    """What an agent does: clone, check out the commit, apply the patch."""
    checkout = tmp / ("agent-zero" if unidiff_zero else "agent")
    git(tmp, "clone", "-q", "--no-checkout", repository, str(checkout))
    git(checkout, "checkout", "-q", "--force", commit)
    if patch:
        patch_file = tmp / "task.patch"
        patch_file.write_text(patch, encoding="utf-8", errors="surrogateescape")
        git(checkout, "apply", *(["--unidiff-zero"] if unidiff_zero else []), str(patch_file))
    return checkout


def tree_of(checkout: Path) -> str:
    """The git tree id of a work tree (ignored files left out), without touching the checkout's index."""
    index = checkout.parent / f"{checkout.name}.index"
    env = {**os.environ, **GIT_ENV, "GIT_INDEX_FILE": str(index)}
    subprocess.run(["git", "add", "-A"], cwd=checkout, env=env, check=True, capture_output=True)
    return subprocess.run(["git", "write-tree"], cwd=checkout, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


def files(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file git would see (not ignored) -> (content, executable)."""
    listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    out = {}
    for rel in listed:
        path = root / rel
        if rel and path.is_file():
            out[rel] = (path.read_bytes(), os.access(path, os.X_OK))
    return out
