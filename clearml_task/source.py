"""What code runs: repository, branch, commit, and everything between that commit and the intended work
tree as one git patch — unpushed commits, staged, unstaged and untracked (not ignored) files, deletions,
renames, modes, binaries — plus the Task.init() injection. Untracked files that look like secrets (.env,
keys, tool credentials: secret_files) stay out of the patch unless asked for, and are named.

The user's repository is only read. The patch is built in a temporary index whose new objects go to a
temporary object directory (the repository's own objects serve as alternates), so not even a loose object
lands in the user's .git.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clearml_task import secret_files
from clearml_task.errors import UserError
from clearml_task.git import repository, run, urls
from clearml_task.git.snapshot import GITLINK, Snapshot, snapshot
from clearml_task.records import field, record

if TYPE_CHECKING:
    from clearml_task.requirements import Reader

DEFAULT_MAX_PATCH_BYTES = 5 * 1024 * 1024

# The hook that injects Task.init(): (path in the repository, content) -> new content or None.
Injector = Callable[[str, str], "str | None"]


@record
class PatchStats:
    files: int = 0
    insertions: int = 0
    deletions: int = 0
    untracked: int = 0
    unpushed_commits: int = 0
    size: int = 0


@record
class Source:
    repository: str  # URL without credentials, or an absolute local path
    branch: str
    commit: str
    tag: str
    working_dir: str  # relative to the repository root ("." for the root)
    entry_point: str  # relative to working_dir, or "-m module ..."
    patch: str  # a git patch that applies on `commit`; "" when there is nothing to apply
    tree: str  # git tree id of the intended work tree (commit + patch): the launcher can verify it
    entry_text: str | None = None  # the entry point's content as it will run (before injection)
    entry_file: str | None = None  # the file the entry point runs, root-relative (a --module's file too)
    stats: PatchStats = field(default_factory=PatchStats)
    warnings: list[str] = field(default_factory=list)
    secrets_left_out: list[str] = field(default_factory=list)  # untracked files kept out of the patch
    submodules: dict[str, str] = field(default_factory=dict)
    root: Path | None = None  # the local checkout, when there is one
    # the repository's files as the task sees them (commit + patch), for requirements.decide; None for a
    # standalone script, or when the capture was not asked to read them
    read: Reader | None = None
    # the local work tree as it is on disk (ignored files too), to tell an import of a file that stays behind
    left_behind: Reader | None = None


@record(frozen=True)
class EntryPoint:
    """Where the entry point is, before capture: a script path (absolute) or a module."""

    script: Path | None
    module: str | None
    cwd: str | None  # --cwd as given, relative to the repository root


# ----------------------------------------------------------------------------------- commit choice
@record(frozen=True)
class Base:
    commit: str
    branch: str
    remote: str | None  # None: no remote holds any of it; the repository is the local path
    head: str  # HEAD's commit


def choose_base(root: Path) -> Base:
    """The commit the patch applies on: the upstream's commit when the branch tracks one (unpushed commits
    then travel in the patch); else the newest commit of HEAD a remote branch contains; else HEAD."""
    refs = repository.refs(root)
    on = next((ref for ref in refs.values() if ref.head), None)  # the branch HEAD is on; None: detached
    head = on.commit if on else repository.head_commit(root)
    if not head:
        raise UserError(f"the repository {root} has no commits yet", "commit something first")

    def commit_of(ref: str) -> str:
        return refs[ref].commit if ref in refs else run.commit_of(root, ref)

    if on and on.upstream and on.remote and on.remote != "." and on.merge.startswith("refs/heads/"):
        commit = commit_of(on.upstream)
        if commit:
            return Base(commit, _recordable(on.merge.removeprefix("refs/heads/")), on.remote, head)
    remote_refs = [name for name in refs if name.startswith("refs/remotes/") and not name.endswith("/HEAD")]
    if remote_refs:
        found = _newest_pushed(root, remote_refs, commit_of)
        if found:
            commit, found_ref = found
            remote_name, _, name = found_ref.removeprefix("refs/remotes/").partition("/")
            return Base(commit, _recordable(name), remote_name, head)
    return Base(head, _recordable(on.name.removeprefix("refs/heads/")) if on else "", None, head)


def _recordable(branch: str) -> str:
    """The branch name as recorded: none for a name git itself refuses or one that reads as an option
    (`-x`), which a launcher would refuse or pass to git; the commit alone says what runs."""
    return branch if repository.recordable_ref(branch) else ""


def _newest_pushed(
    root: Path, remote_refs: list[str], commit_of: Callable[[str], str]
) -> tuple[str, str] | None:
    """The newest commit in HEAD's history that some remote branch contains, and that branch: of the
    branches that contain it, the one whose tip it is (a branch forked from main and not pushed records
    main, not another branch that grew from the same commit), else the first by name."""
    found: list[tuple[int, bool, str, str]] = []  # (depth, not the tip, ref, commit)
    for ref in remote_refs:
        base = repository.merge_base(root, "HEAD", ref)
        if base:
            found.append((-repository.count(root, base), commit_of(ref) != base, ref, base))
    if not found:
        return None
    _depth, _not_tip, ref, base = min(found)
    return base, ref


# ------------------------------------------------------------------------------------ local checkout
def locate(
    folder: Path | None, script: str | None, module: str | None, cwd: str | None
) -> tuple[Path | None, EntryPoint]:
    """The repository root (None outside any) and the entry point, from --folder / --script / --module /
    --cwd; a --script is looked for relative to the current directory, then to --folder, then (as with
    --repo) to --cwd in the repository."""
    here = Path.cwd()
    if folder is not None:
        folder = (here / folder.expanduser()).resolve()
        if not folder.is_dir():
            raise UserError(f"--folder {folder} is not a directory")
    script_path: Path | None = None
    if script:
        given = Path(script).expanduser()
        candidates = [given] if given.is_absolute() else [here / given]
        if folder is not None and not given.is_absolute():
            candidates.append(folder / given)
        top = run.toplevel(folder or here) if cwd and not given.is_absolute() else None
        if top is not None and cwd:
            candidates.append(top / cwd / given)
        # the path as given, its directories resolved but not its own name: a symlinked script runs as the
        # symlink (its __file__), as `python link.py` runs it
        script_path = next((c.parent.resolve() / c.name for c in candidates if c.is_file()), None)
        if script_path is None:
            where = " or ".join(str(c) for c in candidates)
            raise UserError(
                f"--script {script} not found (looked at {where})", "give a path to an existing file"
            )
    start = folder or (script_path.parent if script_path else here)
    root = run.toplevel(start)
    if root is not None and script_path is not None:
        if not script_path.is_relative_to(root):
            raise UserError(f"--script {script_path} is outside the repository {root}")
        target = script_path.resolve()
        if not target.is_relative_to(root):
            raise UserError(f"--script {script_path} is a symlink to {target}, outside the repository {root}")
    return root, EntryPoint(script_path, module, cwd)


def _working_dir(root: Path, entry: EntryPoint) -> str:
    if entry.cwd is None:
        return "."
    path = (root / entry.cwd).resolve()
    if not path.is_relative_to(root):
        raise UserError(
            f"--cwd {entry.cwd} is outside the repository {root}", "give it relative to the repository root"
        )
    if not path.is_dir():
        raise UserError(f"--cwd {entry.cwd} is not a directory of the repository {root}")
    return path.relative_to(root).as_posix() or "."


def _entry_point(root: Path, working_dir: str, entry: EntryPoint) -> str:
    if entry.module:
        return f"-m {entry.module}"
    assert entry.script is not None
    return _not_an_option(os.path.relpath(entry.script, root / working_dir).replace(os.sep, "/"))


def _not_an_option(path: str) -> str:
    """A relative entry point as recorded: `./-x.py` for `-x.py`, which Python (and a launcher) would
    otherwise read as an option."""
    return f"./{path}" if path.startswith("-") else path


def capture_local(
    root: Path,
    entry: EntryPoint,
    *,
    inject: Injector | None = None,
    max_patch: int = DEFAULT_MAX_PATCH_BYTES,
    include_secrets: bool = False,
    requirements: Sequence[str] = (),
) -> Source:
    """Everything needed to reproduce the local work tree at `root`, as the recorded commit plus one patch;
    untracked files that look like secrets are left out unless `include_secrets` (`requirements`: the
    requirements files given, relative to `root`, left out too when a URL in them carries credentials)."""
    with snapshot(root) as snap:
        _sha1_only(snap, str(root), "send the script alone with --skip-repo-detection")
        # `git add` of the work tree into the snapshot and the listing of untracked files run while the
        # commit is chosen (each only reads the repository); their failures are raised in the same order
        snap.begin_from_worktree()
        listing = repository.start_untracked(root)
        indexed = repository.start_index(root)
        try:
            index = repository.index_of(indexed, root)
            unmerged = index.unmerged
            if unmerged:
                more = f" and {len(unmerged) - 5} more" if len(unmerged) > 5 else ""
                shown = ", ".join(unmerged[:5]) + more
                raise UserError(
                    f"the repository {root} has unresolved merge conflicts in {shown}",
                    "resolve them (and `git add` the files), or abort the merge, before sending it",
                )
            base = choose_base(root)
            working_dir = _working_dir(root, entry)
            warnings: list[str] = []
            if base.remote is None:
                recorded = str(root)
                warnings.append(
                    f"no remote has any of this branch's commits: the task records the local path {root}, "
                    "so only agents on this machine can clone it (push the branch to share it)"
                )
            else:
                recorded = repository.remote_url(root, base.remote)
            untracked = repository.untracked_of(listing)
        finally:
            listing.close()
            indexed.close()
        script_rel = entry.script.relative_to(root).as_posix() if entry.script else None
        # the file it runs: itself, or the file a symlinked script points to (its content, its imports)
        file_rel = entry.script.resolve().relative_to(root).as_posix() if entry.script else None
        left_out = [] if include_secrets else secret_files.among(untracked, root, requirements)
        snap.wait()
        snap.retake(index.hidden)
        snap.forget(left_out)
        submodules, moved = snap.keep_gitlinks_of(base.commit)
        # the script is on disk (locate found it): one the snapshot does not hold is left out of what travels
        wanted = dict.fromkeys(path for path in (script_rel, file_rel) if path)
        missing = next((path for path in wanted if snap.entry(path) is None), None)
        if missing is not None:
            shown = script_rel if missing == script_rel else f"{script_rel} (a symlink to {file_rel})"
            if missing in left_out:
                raise UserError(
                    f"--script {shown} looks like a secret file, which stays behind",
                    "rename it, or pass --include-secrets",
                )
            raise UserError(
                f"--script {shown} is ignored by git, so it would not travel with the repository",
                "stop ignoring it (.gitignore) or commit it; or send it alone with --skip-repo-detection",
            )
        entry_text = _apply_injection(snap, file_rel, inject)
        entry_file = file_rel or _module_file(snap, entry.module, working_dir)
        entry_text = entry_text if file_rel else _text(snap, entry_file)
        source = _finish(snap, base.commit, max_patch)
        source.read, source.left_behind = _work_tree_readers(snap, root)
    # a git repository in a directory of the work tree that no .gitmodules declares is not a submodule:
    # `git add` takes it for one, but nothing of it can travel
    declared = repository.declared_submodules(root) if set(moved) - set(submodules) else set()
    warnings += [
        f"submodule {path} differs from the commit; only committed submodule pointers travel"
        if path in submodules or path in declared
        else f"{path}/ is a git repository of its own inside the checkout (not a submodule): its files do "
        "not travel; add it as a submodule, or commit its files in this repository"
        for path in moved
    ]
    if submodules:
        warnings.append("submodules are recorded at their committed commits; their own changes do not travel")
        warnings += [
            f"submodule {path} has uncommitted changes, which stay behind (commit and push them there, then "
            "commit the new submodule pointer here)"
            for path in repository.dirty_submodules(root)
        ]
    if snap.normalized:
        shown = ", ".join(snap.normalized[:5]) + (
            f" and {len(snap.normalized) - 5} more" if len(snap.normalized) > 5 else ""
        )
        warnings.append(
            f"{shown}: CRLF line endings, which the repository's line-ending rules (.gitattributes text/eol, "
            "core.autocrlf) store as LF: the task gets them with LF"
        )
    source.stats.untracked = len(untracked) - len(left_out)
    source.secrets_left_out = left_out
    source.stats.unpushed_commits = (
        0 if base.commit == base.head else repository.count(root, f"{base.commit}..HEAD")
    )
    source.repository, source.branch, source.root, source.submodules = (
        recorded,
        base.branch,
        root,
        submodules,
    )
    source.working_dir, source.entry_point = working_dir, _entry_point(root, working_dir, entry)
    source.entry_text, source.entry_file = entry_text, entry_file
    source.warnings = warnings
    return source


_SHA1_HINT = "only a SHA-1 repository, git's default, can be sent"


def _sha1_only(snap: Snapshot, shown: str, alternative: str = "") -> None:
    """A repository whose commits are not SHA-1 (40 hex digits) is refused before anything is read: ClearML
    tasks record SHA-1 commits, and a launcher or agent refuses any other."""
    if snap.object_format != "sha1":
        name = snap.object_format.upper().replace("SHA", "SHA-")
        raise UserError(
            f"{shown} is a {name} git repository; ClearML tasks record SHA-1 commits",
            _SHA1_HINT + (f"; or {alternative}" if alternative else ""),
        )


def _work_tree_readers(snap: Snapshot, root: Path) -> tuple[Reader, Reader]:
    """The work tree limited to what travels (what the snapshot holds, submodules' files included; ignored
    files do not travel), and all of it."""
    from clearml_task.requirements import directory_reader

    entries = snap.files()
    paths = frozenset(path for _, path in entries)
    submodules = [path for mode, path in entries if mode == GITLINK]
    travelling, everything = directory_reader(root, paths), directory_reader(root)

    def read(path: str) -> str | None:
        clean = posixpath.normpath(path)
        inside = any(clean == sub or clean.startswith(f"{sub}/") for sub in submodules)
        return everything(path) if inside else travelling(path)

    return read, everything


def _apply_injection(snap: Snapshot, script_rel: str | None, inject: Injector | None) -> str | None:
    """Reads the entry point from the snapshot and writes the injected version back into it."""
    if script_rel is None:
        return None
    mode, raw = snap.read(script_rel)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        if inject is not None:  # Python reads it only with a coding line, and the injection writes UTF-8
            raise UserError(
                f"cannot inject Task.init() into {script_rel}: it is not UTF-8 text",
                "save it as UTF-8, or pass --skip-task-init",
            ) from None
        return None
    if inject is not None:
        injected = inject(script_rel, text)
        if injected is not None:
            snap.write(script_rel, injected.encode("utf-8"), mode)
    return text


def _module_file(snap: Snapshot, module: str | None, working_dir: str) -> str | None:
    """The file `python -m module` runs, as the launcher finds it (launcher/execute.py `entry_file`):
    pkg/main.py for pkg.main, or pkg/main/__main__.py for a package, in the working dir, then at the root;
    None when the checkout has neither (an installed or standard-library module)."""
    name = module.split()[0] if module and module.split() else ""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        return None
    path = name.replace(".", "/")
    for base in dict.fromkeys((working_dir, ".")):
        for candidate in (f"{path}.py", f"{path}/__main__.py"):
            found = posixpath.normpath(posixpath.join(base, candidate))
            if (snap.entry(found) or ("", ""))[0] in ("100644", "100755"):
                return found
    return None


def _text(snap: Snapshot, path: str | None) -> str | None:
    """A file's text as it will run (None for no file, or one that is not UTF-8: its parser is not read)."""
    if path is None:
        return None
    try:
        return snap.read(path)[1].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _finish(snap: Snapshot, commit: str, max_patch: int) -> Source:
    tree, patch = snap.tree_and_diff(commit)  # the patch is empty when the trees are equal
    stats = patch_stats(patch)
    if stats.size > max_patch:
        raise UserError(*_too_large(patch, stats.size, max_patch))
    return Source("", "", commit, "", ".", "", patch, tree, stats=stats)


def patch_stats(patch: str) -> PatchStats:
    """Files, inserted and deleted lines of a git patch (binary files count as files only)."""
    stats = PatchStats(size=len(patch.encode("utf-8", errors="surrogateescape")))
    in_hunk = False
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            stats.files += 1
            in_hunk = False
        elif line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line.startswith("+"):
            stats.insertions += 1
        elif in_hunk and line.startswith("-"):
            stats.deletions += 1
    return stats


def _too_large(patch: str, size: int, limit: int) -> tuple[str, str]:
    sizes: list[tuple[int, str]] = []
    for section in re.split(r"(?m)^(?=diff --git )", patch):
        header = re.match(r"diff --git a/(.*?) b/", section)
        if header:
            sizes.append((len(section.encode("utf-8", errors="surrogateescape")), header[1]))
    largest = ", ".join(f"{path} ({_mb(n)})" for n, path in sorted(sizes, reverse=True)[:5])
    return (
        f"the uncommitted changes make a {_mb(size)} patch, over the {_mb(limit)} limit; largest: {largest}",
        "add big files to .gitignore, or commit and push them, or raise --max-patch-size",
    )


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 100 * 1024 else f"{size / 1024:.1f} kB"


# ------------------------------------------------------------------------------------- remote --repo
@record(frozen=True)
class RemoteRef:
    commit: str
    branch: str  # recorded only when the commit is on it: checked once fetched, unless `at_tip`
    tag: str
    at_tip: bool = True  # `commit` is the branch's tip
    given: bool = False  # the branch is --branch (the user's word): a commit not on it is an error


def resolve_remote(url: str, branch: str | None, commit: str | None) -> RemoteRef:
    """--branch / --commit / a tag, resolved against the remote (default: the remote's default branch).
    A --commit alone goes with the branch whose tip it is, else with the default branch if it is on it
    (checked by capture_remote), else with none."""
    from clearml_task.git import remote  # only --repo fetches

    problem = urls.repository_problem(url)
    if problem:
        raise UserError(f"--repo {url!r} cannot be used: {problem}", "give an https://, ssh:// or git:// URL")
    if branch and not repository.recordable_ref(branch):
        raise UserError(
            f"--branch {branch!r} is not a git branch or tag name", "see `git help check-ref-format`"
        )
    listing = remote.ls_remote(urls.fetchable(url))
    # a remote's branch or tag whose name cannot be recorded (an option, say) is never chosen
    heads = {name: tip for name, tip in listing.heads.items() if repository.recordable_ref(name)}
    tags = {name: tip for name, tip in listing.tags.items() if repository.recordable_ref(name)}
    default = listing.default
    if any(len(tip) == 64 for tip in (*listing.heads.values(), *listing.tags.values())):
        raise UserError(
            f"{urls.public_url(url)} is a SHA-256 git repository; ClearML tasks record SHA-1 commits",
            _SHA1_HINT,
        )
    if not heads and not tags:
        raise UserError(
            f"the repository {urls.public_url(url)} has no branches", "push something to it first"
        )
    if commit:
        if not re.fullmatch(r"[0-9a-fA-F]{4,40}", commit):
            raise UserError(f"--commit {commit} is not a commit id")
        commit = commit.lower()
        if branch:
            if branch not in heads:
                known = ", ".join(sorted(heads)[:20])
                raise UserError(f"no branch {branch!r} in {urls.public_url(url)}", f"branches: {known}")
            return RemoteRef(commit, branch, "", heads[branch].startswith(commit), given=True)
        tips = sorted(name for name, tip in heads.items() if tip.startswith(commit))
        if tips:
            return RemoteRef(commit, default if default in tips else tips[0], "")
        return RemoteRef(commit, default if default in heads else "", "", at_tip=False)
    if branch:
        if branch in heads:
            return RemoteRef(heads[branch], branch, "")
        if branch in tags:
            return RemoteRef(tags[branch], "", branch)
        known = ", ".join(sorted(heads)[:20])
        raise UserError(f"no branch or tag {branch!r} in {urls.public_url(url)}", f"branches: {known}")
    if not heads:
        raise UserError(f"the repository {urls.public_url(url)} has only tags", "give one with --branch TAG")
    if default not in heads:
        default = "main" if "main" in heads else sorted(heads)[0]
    return RemoteRef(heads[default], default, "")


def capture_remote(
    url: str,
    ref: RemoteRef,
    entry: EntryPoint,
    script: str | None,
    *,
    inject: Injector | None = None,
    max_patch: int = DEFAULT_MAX_PATCH_BYTES,
    files: bool = False,
) -> Source:
    """The remote at the resolved commit; only trees and the entry point's blob are fetched (shallow,
    blob filter), so the injection lands in the right place of the real file. With `files`, the files the
    requirements decision may read (by suffix) are fetched too, in one batch, and kept in memory."""
    from clearml_task.git import remote  # only --repo fetches

    with tempfile.TemporaryDirectory(prefix="clearml-task-remote-") as tmp:
        bare = remote.partial_clone(Path(tmp), url)
        commit = _fetch(bare, ref)
        branch = _branch_holding(bare, ref, commit)
        with snapshot(bare) as snap:
            snap.start_from_commit(commit)
            working_dir = posixpath.normpath(entry.cwd.strip("/")) if entry.cwd else "."
            if working_dir == ".." or working_dir.startswith("../"):
                raise UserError(
                    f"--cwd {entry.cwd} is outside the repository", "give it relative to the repository root"
                )
            if working_dir != "." and not _is_directory(bare, commit, working_dir):
                raise UserError(f"--cwd {entry.cwd} is not a directory of the repository at that commit")
            script_rel = _remote_script(snap, script, working_dir) if script else None
            entry_text = _apply_injection(snap, script_rel, inject)
            entry_file = script_rel or _module_file(snap, entry.module, working_dir)
            entry_text = entry_text if script_rel else _text(snap, entry_file)
            read = _blob_reader(bare, commit) if files else None
            source = _finish(snap, commit, max_patch)
    source.repository, source.branch, source.tag, source.read = (
        urls.public_url(url),
        branch,
        ref.tag,
        read,
    )
    source.working_dir = working_dir or "."
    if entry.module:
        source.entry_point = f"-m {entry.module}"
    elif script_rel is not None:
        source.entry_point = _not_an_option(os.path.relpath(script_rel, working_dir).replace(os.sep, "/"))
    source.entry_text, source.entry_file = entry_text, entry_file
    return source


def _is_directory(repo: Path, commit: str, path: str) -> bool:
    """Whether `path` is a directory of `commit` (read from its trees: no blob is fetched)."""
    listed = run.run(repo, "ls-tree", "-z", commit, "--", path, check=False)
    for entry in listed.decode("utf-8", errors="surrogateescape").split("\0"):
        info, _, name = entry.partition("\t")
        if name == path and info.split()[1:2] == ["tree"]:
            return True
    return False


def _fetch(bare: Path, ref: RemoteRef) -> str:
    """The resolved commit into the partial clone, as little of it as will do; returns its full id."""
    from clearml_task.git import remote  # only --repo fetches

    if ref.tag:
        target = f"refs/tags/{ref.tag}"
    elif ref.branch and len(ref.commit) < 40:  # an abbreviated --commit: fetch the branch it is on
        target = f"refs/heads/{ref.branch}"
    else:
        target = ref.commit
    remote.fetch_shallow(bare, target)
    commit = run.commit_of(bare, ref.commit)
    if commit:
        return commit
    # Fetching by id is refused by some servers, or the id was abbreviated: fetch the history (no blobs).
    remote.fetch_history(bare)
    commit = run.commit_of(bare, ref.commit)
    if not commit:
        raise UserError(
            f"commit {ref.commit} is not on the remote", "push it first, or give another --commit"
        )
    return commit


def _branch_holding(bare: Path, ref: RemoteRef, commit: str) -> str:
    """The branch to record with `commit`: ref.branch when the commit is on it (its history is fetched,
    commits only, to tell), else none; a --branch the commit is not on is an error."""
    from clearml_task.git import remote  # only --repo fetches

    if not ref.branch or ref.at_tip:
        return ref.branch
    tip = remote.fetch_branch_history(bare, ref.branch)
    if repository.merge_base(bare, commit, tip) == commit:
        return ref.branch
    if ref.given:
        raise UserError(
            f"commit {commit[:12]} is not on branch {ref.branch}", "drop --branch, or give a commit on it"
        )
    return ""


def _blob_reader(bare: Path, commit: str) -> Reader:
    """The commit's files that requirements.decide may read, fetched in batches (not one lazy fetch per blob)
    and held in memory: the Python files and notebooks, the requirements.txt / pyproject.toml / uv.lock files,
    then whatever those requirements files include. (The commit's, not the snapshot's: the injected entry
    point is a blob the remote does not have, and decide() reads the entry point's text before injection.)"""
    from clearml_task.git import remote  # only --repo fetches
    from clearml_task.requirements import included, mapping_reader, wanted

    tree = remote.files_of(bare, commit)
    contents: dict[str, bytes] = {}
    batch = [path for path in tree if wanted(path)]
    for _round in range(10):  # includes of includes, a few levels deep at most
        blobs = _fetch_blobs(bare, list(dict.fromkeys(tree[path] for path in batch)))
        contents.update((path, blobs[tree[path]]) for path in batch)
        found = (path for done in batch for path in included(done, contents[done]))
        batch = [path for path in dict.fromkeys(found) if path in tree and path not in contents]
        if not batch:
            break
    return mapping_reader(contents)


def _fetch_blobs(bare: Path, blobs: list[str]) -> dict[str, bytes]:
    """Blob id -> content, fetched in one request; a blob the remote did not send is an error."""
    from clearml_task.git import remote  # only --repo fetches

    found = remote.fetch_blobs(bare, blobs)
    missing = [blob for blob in blobs if blob not in found]
    if missing:
        raise UserError(
            f"the remote did not send {len(missing)} of the repository's files (e.g. blob {missing[0][:12]})",
            "check that the remote allows fetching single objects, or pass --requirements / --packages",
        )
    return found


def _remote_script(snap: Snapshot, script: str, working_dir: str) -> str:
    candidates = [script.lstrip("/")]
    if working_dir != ".":
        candidates.append(f"{working_dir}/{script.lstrip('/')}")
    for candidate in candidates:
        path = posixpath.normpath(candidate)
        if path != ".." and not path.startswith("../") and snap.entry(path) is not None:
            return path
    raise UserError(
        f"--script {script} is not in the repository at that commit", f"looked for {' and '.join(candidates)}"
    )


# -------------------------------------------------------------------------------- standalone script
def capture_standalone(
    script: Path, *, inject: Injector | None = None, neighbours: Sequence[Path] = ()
) -> Source:
    """A script outside any repository (or with --skip-repo-detection): its content travels as it is
    (script.diff holds it literally, which agents write out instead of applying). Its local neighbours (its
    dir, and `neighbours`: the working dir and the root) stay behind: `left_behind` reads them, so that an
    import of one of them is not taken for a package."""
    from clearml_task.requirements import directories_reader

    try:
        text = script.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"--script {script} is not a UTF-8 text file") from None
    injected = inject(script.name, text) if inject is not None else None
    content = injected if injected is not None else text
    return Source(
        repository="", branch="", commit="", tag="", working_dir=".", entry_point=_not_an_option(script.name),
        patch=content, tree="", entry_text=text,
        stats=PatchStats(files=1, insertions=content.count("\n"), size=len(content.encode())),
        left_behind=directories_reader(dict.fromkeys([script.parent, *neighbours])),
    )  # fmt: skip
