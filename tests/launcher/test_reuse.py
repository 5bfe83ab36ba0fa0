"""A clean work tree kept for the next task of the same code: real checkouts through the repository cache,
and every way a task could have changed its tree (or its .git) keeping it from the next task."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clearml_task.request import Request
from clearml_task.submit import prepare as capture_request
from launcher import registry, reuse, workspace
from testing.repos import Repo, make_repo


class Lines(list[str]):
    def __call__(self, line: str) -> None:
        self.append(line)


def capture(folder: Path, **flags: Any) -> dict[str, Any]:
    """A task document as clearml-task makes it (only the parts the launcher reads)."""
    request = Request(project="proj", name="reuse test", folder=str(folder), script="train.py", **flags)
    document = capture_request(request).document
    return {"script": document["script"], "runtime": document["runtime"]}


class Daemon:
    """What the daemon does around each run: prepare with its spares, run, then keep or remove the tree."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.spares, self.count = tmp, reuse.Spares(), 0

    def prepare(self, task: dict[str, Any]) -> tuple[Path, Lines]:
        self.count += 1
        dest, log = self.tmp / "runs" / f"run{self.count}", Lines()
        workspace.prepare(task, dest, self.tmp / "cache", log, self.spares)
        return dest, log

    def end(self, dest: Path, *, cleanly: bool = True) -> bool:
        return self.spares.keep(dest, registry.run_lock(dest), cleanly)

    def run(self, task: dict[str, Any], change: Callable[[Path], None] | None = None) -> tuple[Path, bool]:
        dest, _ = self.prepare(task)
        if change is not None:
            change(dest)
        return dest, self.end(dest)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


def test_the_next_task_of_the_same_commit_takes_the_unchanged_tree(tmp_path: Path, repo: Repo) -> None:
    task = capture(repo.work, skip_task_init=True)
    assert task["script"]["diff"] == "" and task["runtime"]["worktree_tree"]
    daemon = Daemon(tmp_path)
    _, kept = daemon.run(task)
    assert not kept  # the first of its code is not recorded
    second, kept = daemon.run(task)
    assert kept and second.is_dir() and registry.run_lock(second).exists()
    inode = (second / "train.py").stat().st_ino
    third, log = daemon.prepare(task)
    commit = repo.git("rev-parse", "HEAD")
    assert log == [
        f"workspace: the previous task's work tree of {commit[:12]}, verified then, unchanged since (0.00s)"
    ]
    assert not second.exists() and not registry.run_lock(second).exists()
    assert (third / "train.py").stat().st_ino == inode
    assert daemon.end(third)
    daemon.spares.close()
    assert not third.exists() and not registry.run_lock(third).exists()


def _rewrite_in_place(dest: Path) -> None:
    """Same size, mtime put back: only the content tells."""
    path = dest / "train.py"
    before = path.stat()
    content = path.read_bytes()
    path.write_bytes(content[:-1] + (b"#" if content[-1:] != b"#" else b"!"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _hook(dest: Path) -> None:
    hook = dest / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\necho hi\n")
    hook.chmod(0o755)


def _config(dest: Path) -> None:
    with (dest / ".git" / "config").open("a") as handle:
        handle.write("[core]\n\tfsmonitor = /bin/true\n")


def _temporary_file(dest: Path) -> None:
    (dest / "scratch.txt").write_text("x")
    (dest / "scratch.txt").unlink()


def _link_outside(dest: Path) -> None:
    os.link(dest / "train.py", dest.parent / "elsewhere")


def _symlink(dest: Path) -> None:
    (dest / "train.py").unlink()
    (dest / "train.py").symlink_to("/etc/hostname")


def _xattr(dest: Path) -> None:
    try:
        os.setxattr(dest / "train.py", "user.note", b"x")
    except OSError:
        pytest.skip("this file system has no user extended attributes")


CHANGES: dict[str, Callable[[Path], None]] = {
    "content rewritten in place": _rewrite_in_place,
    "a hook": _hook,
    "the checkout's config": _config,
    "the index": lambda dest: (dest / ".git" / "index").write_bytes(b""),
    "HEAD": lambda dest: (dest / ".git" / "HEAD").write_text("ref: refs/heads/main\n"),
    "an untracked file": lambda dest: (dest / "out.txt").write_text("x"),
    "an ignored file": lambda dest: (dest / "train.log").write_text("x"),
    "an empty directory": lambda dest: (dest / "empty").mkdir(),
    "a file made and removed": _temporary_file,
    "a file removed": lambda dest: (dest / "train.py").unlink(),
    "the executable bit": lambda dest: (dest / "train.py").chmod(0o755),
    "a directory's mode": lambda dest: (dest / ".git" / "hooks").chmod(0o700),
    "touched": lambda dest: os.utime(dest / "train.py", ns=(0, 0)),
    "a hard link from outside": _link_outside,
    "a symlink for a file": _symlink,
    "an extended attribute": _xattr,
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_a_tree_the_task_changed_is_not_kept(
    tmp_path: Path, repo: Repo, change: Callable[[Path], None]
) -> None:
    task = capture(repo.work, skip_task_init=True)
    daemon = Daemon(tmp_path)
    daemon.run(task)
    dest, kept = daemon.run(task, change)
    assert not kept
    fresh, log = daemon.prepare(task)
    assert dest.exists()  # left to the caller, which removes it
    first = tmp_path / "runs" / "run1"
    assert len(log) == 3 and not (fresh / "train.log").exists()
    assert (fresh / ".git" / "config").read_bytes() == (first / ".git" / "config").read_bytes()


def test_a_run_that_left_processes_or_never_ran_is_not_kept(tmp_path: Path, repo: Repo) -> None:
    task = capture(repo.work, skip_task_init=True)
    daemon = Daemon(tmp_path)
    daemon.run(task)
    dest, _ = daemon.prepare(task)
    assert not daemon.end(dest, cleanly=False)
    dest, _ = daemon.prepare(task)
    assert daemon.end(dest)


def test_only_the_same_code_takes_it(tmp_path: Path, repo: Repo) -> None:
    task = capture(repo.work, skip_task_init=True)
    daemon = Daemon(tmp_path)
    daemon.run(task)
    kept, _ = daemon.run(task)
    repo.write("train.py", "print('another commit')\n")
    repo.commit()
    repo.git("push", "-q")
    other = capture(repo.work, skip_task_init=True)
    dest, log = daemon.prepare(other)
    assert kept.exists() and "fetched" in log[0]  # a checkout of its own; the kept tree waits
    assert daemon.end(dest) is False  # the first of its code
    dest, log = daemon.prepare(task)
    assert not kept.exists() and (dest / "train.py").read_text() != "print('another commit')\n"


def test_a_task_with_the_same_patch_takes_it_another_patch_does_not(tmp_path: Path, repo: Repo) -> None:
    task = capture(repo.work)  # Task.init() injected: a patch
    assert task["script"]["diff"].startswith("diff ")
    daemon = Daemon(tmp_path)
    daemon.run(task)
    kept, _ = daemon.run(task)
    dest, log = daemon.prepare(task)
    assert not kept.exists() and "from clearml import Task" in (dest / "train.py").read_text()
    commit = task["script"]["version_num"][:12]
    assert [line.split(" (")[0] for line in log] == [
        f"workspace: the previous task's work tree of {commit} with the same patch, verified then, "
        "unchanged since"
    ]
    assert daemon.end(dest)
    repo.write("train.py", "print('uncommitted')\n")
    other = capture(repo.work, skip_task_init=True)
    fresh, _ = daemon.prepare(other)
    assert dest.exists()  # not taken: another patch
    assert (fresh / "train.py").read_text() == "print('uncommitted')\n"


def test_a_short_commit_is_never_kept(tmp_path: Path, repo: Repo) -> None:
    short = capture(repo.work, skip_task_init=True)
    short["script"]["version_num"] = short["script"]["version_num"][:12]
    daemon = Daemon(tmp_path)
    daemon.run(short)
    assert daemon.run(short)[1] is False
