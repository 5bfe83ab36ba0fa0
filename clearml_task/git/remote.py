"""Talking to a remote: its branches and tags (ls-remote), a partial bare clone that fetches trees but no
blobs, a commit fetched shallow or with its history, and blobs fetched and read in batches."""

from __future__ import annotations

from pathlib import Path

from clearml_task.git import repository, run, urls
from clearml_task.records import field, record


@record
class Listing:
    """What `git ls-remote --symref` says: branch and tag names -> commit ids, and the default branch."""

    heads: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    default: str = ""  # the branch the remote's HEAD points to, "" when it says none


def ls_remote(url: str, *patterns: str, cwd: Path | None = None) -> Listing:
    """The remote's branches, tags (a peeled tag's commit id wins over the tag object's) and default branch.
    `url` goes to git as given; run in `cwd` (default: the current directory)."""
    listing = run.out(cwd or Path.cwd(), "ls-remote", "--symref", "--", url, *patterns)
    found = Listing()
    for line in listing.splitlines():
        left, _, ref = line.partition("\t")
        if ref == "HEAD" and left.startswith("ref: refs/heads/"):
            found.default = left.removeprefix("ref: refs/heads/")
        elif ref.startswith("refs/heads/"):
            found.heads[ref.removeprefix("refs/heads/")] = left
        elif ref.startswith("refs/tags/"):
            name = ref.removeprefix("refs/tags/")
            if name.endswith("^{}"):
                found.tags[name[:-3]] = left
            else:
                found.tags.setdefault(name, left)
    return found


def partial_clone(tmp: Path, url: str) -> Path:
    """An empty bare repository in `tmp` whose origin is `url`, set up to fetch without blobs (blobs are
    fetched on demand); nothing is fetched yet."""
    bare = tmp / "repo.git"
    run.run(tmp, "init", "-q", "--bare", "--", str(bare))
    run.run(bare, "remote", "add", "--", "origin", urls.fetchable(url))
    run.run(bare, "config", "remote.origin.promisor", "true")
    run.run(bare, "config", "remote.origin.partialclonefilter", "blob:none")
    return bare


def fetch_shallow(bare: Path, target: str) -> None:
    """`target` (a ref or a commit id) with its trees only, one commit deep; failing is allowed (some
    servers refuse to fetch by id): the caller checks whether the commit arrived."""
    run.run(bare, "fetch", "-q", "--depth", "1", "--filter=blob:none", "--", "origin", target, check=False)


def fetch_history(bare: Path) -> None:
    """Every branch and tag with their history, without blobs."""
    run.run(
        bare,
        "fetch",
        "-q",
        "--filter=blob:none",
        "origin",
        "+refs/heads/*:refs/heads/*",
        "+refs/tags/*:refs/tags/*",
    )


def fetch_branch_history(bare: Path, branch: str) -> str:
    """A branch's commits (no trees, no blobs) into refs/heads/<branch>; returns its tip."""
    ref = f"refs/heads/{branch}"
    run.run(bare, "fetch", "-q", "--filter=tree:0", "origin", f"+{ref}:{ref}")
    return run.out(bare, "rev-parse", "--verify", ref)


def files_of(repo: Path, commit: str) -> dict[str, str]:
    """The regular files (executable or not) of a commit: path -> blob id."""
    tree: dict[str, str] = {}
    listing = run.run(repo, "ls-tree", "-r", "-z", commit).decode("utf-8", errors="surrogateescape")
    for entry in listing.split("\0"):
        info, _, path = entry.partition("\t")
        if info and info.split()[0] in ("100644", "100755"):
            tree[path] = info.split()[2]
    return tree


def fetch_blobs(bare: Path, blobs: list[str]) -> dict[str, bytes]:
    """Blob id -> content: the blobs fetched from the promisor remote in one request, then all read with
    lazy fetching off (a blob the fetch did not bring is missing from the answer, not one more round trip)."""
    if not blobs:
        return {}
    run.run(
        bare, "-c", "fetch.negotiationAlgorithm=noop", "fetch", "-q", "--no-tags", "--no-write-fetch-head",
        "--recurse-submodules=no", "--filter=blob:none", "--stdin", "origin",
        input="".join(f"{blob}\n" for blob in blobs).encode(),
    )  # fmt: skip
    # no lazy fetch: a blob the fetch did not bring is missing from the answer, and the caller names it
    return repository.read_blobs(bare, blobs, env={"GIT_NO_LAZY_FETCH": "1"})
