"""Reproducing a work tree: a bare mirror of a remote's branches and tags, fetched into; a work tree that
borrows the mirror's objects, checked out at a commit with its submodules; a patch applied; the tree id of
what is on disk."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from clearml_task.git import run
from clearml_task.git.remote import ls_remote

# The machine's own git config must not change the bytes a checkout writes or what counts as its tree: no
# line-ending conversion of its own (`core.autocrlf=true` made every file CRLF), symlinks and modes as
# recorded, its own ignore and attribute files unread. The repository's .gitattributes still apply, as on
# the machine that created the task; filters (LFS) too.
EXACT = tuple(
    part
    for setting in (
        "core.autocrlf=false", "core.eol=lf", "core.safecrlf=false", "core.symlinks=true",
        "core.fileMode=true", f"core.excludesFile={os.devnull}", f"core.attributesFile={os.devnull}",
    )
    for part in ("-c", setting)
)  # fmt: skip

# Branches and tags: what a task can name. (Not refs/* — on hosted forges that drags in every pull request.)
REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


def init_mirror(mirror: Path) -> None:
    """An empty bare repository at `mirror` (whatever was there goes)."""
    if mirror.exists():
        shutil.rmtree(mirror)
    run.run(mirror.parent, "init", "--bare", "--quiet", "--", str(mirror))


def configure_mirror(mirror: Path, url: str) -> None:
    """The mirror's origin (`url`, which should carry no credentials: fetches pass the real one) and what
    it fetches; gc runs inside the fetch (under the caller's lock), never detached after it."""
    settings = [
        ("remote.origin.url", url),
        *(("remote.origin.fetch", refspec) for refspec in REFSPECS),
        ("gc.autoDetach", "false"),
        ("maintenance.autoDetach", "false"),
    ]
    for key, value in settings:
        run.run(mirror, "config", "--add", "--", key, value)


def fetch_mirror(mirror: Path, url: str) -> None:
    """Every branch and tag of `url` into the mirror (pruned: what the remote dropped goes)."""
    run.run(mirror, "fetch", "--prune", "--tags", "--quiet", "--", url, *REFSPECS)


def fetch_commit(mirror: Path, url: str, commit: str) -> None:
    """A commit by id (one no branch or tag holds); many servers allow it, failing is an answer."""
    run.answer(mirror, "fetch", "--quiet", "--", url, commit)


def ref_names(repo: Path, prefix: str, limit: int) -> list[str]:
    """Up to `limit` short names of the refs under `prefix` (refs/heads, refs/tags)."""
    return run.answer(repo, "for-each-ref", "--format=%(refname:short)", f"--count={limit}", prefix).split()


def default_branch(url: str, cwd: Path) -> str:
    """The branch the remote's HEAD points to, "" when it says none."""
    return ls_remote(url, "HEAD", cwd=cwd).default


def clone_shared(mirror: Path, dest: Path) -> None:
    """A work tree at `dest` borrowing the mirror's objects (nothing copied), nothing checked out yet."""
    run.run(
        dest.parent, *EXACT, "clone", "--shared", "--no-checkout", "--quiet", "--", str(mirror), str(dest)
    )


def set_origin(dest: Path, url: str) -> None:
    run.run(dest, "remote", "set-url", "--", "origin", url)


def check_out(dest: Path, commit: str) -> None:
    """The work tree at `commit`, detached."""
    run.run(dest, *EXACT, "checkout", "--force", "--quiet", commit, "--")


def update_submodules(dest: Path) -> int:
    """The submodules checked out, recursively (file:// URLs allowed); returns how many there are."""
    run.run(
        dest,
        *EXACT,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "update",
        "--init",
        "--recursive",
        "--quiet",
    )
    return len(run.answer(dest, "submodule", "status", "--recursive").splitlines())


def apply(dest: Path, patch: str) -> None:
    """A git patch on the work tree (again with --unidiff-zero when it does not apply as it is); a failure
    raises the first attempt's GitError."""
    _apply(dest, patch, "--whitespace=nowarn")


def _apply(dest: Path, patch: str, *how: str, env: dict[str, str] | None = None) -> None:
    path = dest / ".git" / "clearml-task.patch"  # inside .git: not part of the work tree
    path.write_text(patch, encoding="utf-8", errors="surrogateescape")
    try:
        run.run(dest, *EXACT, "apply", *how, str(path), env=env)
    except run.GitError as first:
        try:
            run.run(dest, *EXACT, "apply", *how, "--unidiff-zero", str(path), env=env)
        except run.GitError:
            raise first from None
    finally:
        path.unlink(missing_ok=True)


def work_tree_id(dest: Path, patch: str = "") -> str:
    """The git tree id of the work tree as it is on disk (ignored files aside, but those the patch adds:
    a file the user added past an ignore rule, `git add -f`, counts there too). Computed in a copy of the
    checkout's index (its stat cache spares re-hashing unchanged files); the checkout's own is untouched."""
    with tempfile.TemporaryDirectory(prefix="clearml-launcher-") as tmp:
        index = Path(tmp) / "index"
        own = dest / ".git" / "index"
        if own.is_file():
            shutil.copyfile(own, index)
        env = {"GIT_INDEX_FILE": str(index)}
        if patch:  # its paths tracked in the copy, whatever the ignore rules say; their content from disk
            _apply(dest, patch, "--cached", env=env)
        run.run(dest, *EXACT, "add", "-A", "--", ".", env=env)
        return run.out(dest, "write-tree", env=env)


def has_tree(repo: Path, tree: str) -> bool:
    return bool(run.answer(repo, "rev-parse", "--verify", "-q", f"{tree}^{{tree}}"))


def changed_paths(repo: Path, old: str, new: str) -> list[str]:
    """`git diff --name-status` lines between two trees (or commits), renames as delete + add."""
    return run.answer(repo, "diff", *run.DIFF_OPTIONS, "--name-status", "--no-renames", old, new).splitlines()
