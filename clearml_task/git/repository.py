"""Reading a local repository (never writing to it): HEAD, its upstream, remote branches and how far
HEAD is past them, a remote's URL, untracked files."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from clearml_task.git import run, urls
from clearml_task.records import record

GITLINK = "160000"  # the mode of a submodule's entry

# What git check-ref-format refuses, plus a leading "-" (an option) and whitespace: a branch or tag name
# with any of these is never recorded in a task (the launcher refuses it, and another agent may pass it on).
BAD_REF = re.compile(r"^-|^/|/$|\.\.|@\{|//|\.lock$|/\.|^\.|[\x00-\x20\x7f~^:?*\[\\]")


def recordable_ref(name: str) -> bool:
    """Whether a branch or tag name may be recorded in a task (and handed to git by a launcher)."""
    return not BAD_REF.search(name)


def head_commit(root: Path) -> str:
    """HEAD's commit id, or "" in a repository with no commits yet."""
    return run.out(root, "rev-parse", "--verify", "-q", "HEAD", check=False)


@record(frozen=True)
class Ref:
    """A branch or remote-tracking ref as `git for-each-ref` lists it."""

    name: str  # refs/heads/main, refs/remotes/origin/main
    commit: str  # what it points to, peeled through tags
    remote: str  # its upstream's remote name, "" if it tracks none ("." for a local branch)
    merge: str  # the upstream's ref on that remote (refs/heads/main)
    upstream: str  # the local ref that follows the upstream (refs/remotes/origin/main)
    head: bool  # HEAD is on this branch


def refs(root: Path) -> dict[str, Ref]:
    """The local branches and remote-tracking refs, by name in name order, with one `git for-each-ref`."""
    fields = (
        "%(refname) %(objectname) %(*objectname) %(upstream:remotename) %(upstream:remoteref) %(upstream) "
        "%(HEAD)"
    )
    listed = run.out(
        root, "for-each-ref", f"--format={fields.replace(' ', '%00')}", "refs/heads", "refs/remotes"
    )
    found: dict[str, Ref] = {}
    for line in listed.splitlines():
        name, commit, peeled, remote, merge, upstream, head = line.split("\0")
        found[name] = Ref(name, peeled or commit, remote, merge, upstream, head == "*")
    return found


def merge_base(root: Path, one: str, other: str) -> str:
    """The best common ancestor of two commits, or ""."""
    return run.out(root, "merge-base", one, other, check=False)


def count(root: Path, revisions: str) -> int:
    """How many commits `git rev-list <revisions>` lists."""
    return int(run.out(root, "rev-list", "--count", revisions))


def remote_url(root: Path, remote: str) -> str:
    """The remote's URL as it may be recorded: a local path made absolute, any other URL without
    credentials."""
    url = run.out(root, "remote", "get-url", "--", remote)  # a remote may be named like an option
    if urls.is_local_path(url):
        return str((root / url).resolve())
    return urls.public_url(url)


def dirty_submodules(root: Path) -> list[str]:
    """The submodules whose own work tree has changes (tracked or untracked): what `git status` shows as
    ` m` / ` ?` on a submodule. Those changes are the submodule's, and do not travel with this repository."""
    status = ["status", "--porcelain=v2", "-z", "--ignore-submodules=none", "--untracked-files=no"]
    listing = run.out(root, *status)
    dirty = []
    for entry in listing.split("\0"):
        fields = entry.split(" ", 8)  # 1 XY sub mH mI mW hH hI path
        state = fields[2] if len(fields) == 9 and fields[0] == "1" else ""  # S<commit><tracked><untracked>
        if len(state) == 4 and state[0] == "S" and (state[2] == "M" or state[3] == "U"):
            dirty.append(fields[8])
    return dirty


def declared_submodules(root: Path) -> set[str]:
    """The paths the work tree's .gitmodules names as submodules' (none without one)."""
    if not (root / ".gitmodules").is_file():
        return set()
    listed = run.out(
        root, "config", "-f", ".gitmodules", "-z", "--get-regexp", r"^submodule\..*\.path$", check=False
    )
    return {entry.partition("\n")[2] for entry in listed.split("\0") if entry}


def start_untracked(root: Path) -> run.Pending:
    """The untracked files that are not ignored, listed in the background: `untracked_of` the result."""
    return run.start(root, "ls-files", "--others", "--exclude-standard", "-z")


def start_index(root: Path) -> run.Pending:
    """The index's entries with their tags (`git ls-files -s -v`), listed in the background: `index_of`."""
    return run.start(root, "ls-files", "--stage", "-v", "-z")


@record(frozen=True)
class Index:
    """What of the user's index the capture must know (`index_of`)."""

    unmerged: list[str]  # the paths with unresolved merge conflicts, each once, in order
    # the paths whose edits `git add` passes over in a copy of this index: marked assume-unchanged, or
    # skip-worktree with a file in the work tree (one a sparse checkout left out keeps its committed
    # content); never a submodule
    hidden: list[str]


def index_of(listing: run.Pending, root: Path) -> Index:
    """What `start_index` listed (`root`: where the work tree's files are looked for)."""
    output = listing.result()
    if output.count(b"\0") == output.count(b"\0H ") + output.startswith(b"H "):
        return Index([], [])  # every entry a plain one ("H", stage 0): the common case, told without a loop
    unmerged: dict[str, None] = {}
    hidden = []
    for entry in output.decode(errors="surrogateescape").split("\0"):
        info, _, path = entry.partition("\t")
        if not info or info[0] == "H":
            continue
        tag, mode, _blob, stage = info.split()
        if stage != "0":
            unmerged[path] = None
        elif mode == GITLINK:
            continue
        elif tag in "Ss":  # skip-worktree ("s": assume-unchanged too)
            if os.path.lexists(root / path):
                hidden.append(path)
        elif tag.islower():  # assume-unchanged
            hidden.append(path)
    return Index(list(unmerged), hidden)


def untracked_of(listing: run.Pending) -> list[str]:
    """The paths `start_untracked` listed."""
    return [path for path in listing.result().decode(errors="surrogateescape").split("\0") if path]


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
