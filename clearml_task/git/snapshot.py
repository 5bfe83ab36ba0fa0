"""A temporary index over a repository: the work tree (or a commit) as git objects, without touching the
user's .git — new objects go to a temporary object directory, the repository's own serve as alternates."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clearml_task.errors import UserError
from clearml_task.git import repository, run
from clearml_task.git.repository import GITLINK


class NotInIndex(UserError):
    """A path the snapshot does not hold (ignored by git, left out, or not there at all)."""


class Snapshot:
    """A temporary index and object directory over a repository (its objects serve as alternates)."""

    def __init__(self, repo: Path, tmp: Path) -> None:
        self.repo, self.tmp = repo, tmp
        paths = run.git_paths(repo)
        self.user_index, self.object_format = paths.index_file, paths.object_format
        # a sparse checkout's: `git add` takes the files the user put outside its patterns too (git >= 2.34)
        self.sparse = ("--sparse",) if paths.sparse_checkout.is_file() else ()
        (tmp / "objects").mkdir()
        self.env = {
            "GIT_INDEX_FILE": str(tmp / "index"),
            "GIT_OBJECT_DIRECTORY": str(tmp / "objects"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(paths.objects),
        }
        self._listed: dict[str, tuple[str, str]] | None = None  # path -> (mode, blob), kept up to date
        self._adding: run.Pending | None = None  # `git add -A` under way (start_from_worktree)
        # files whose CRLF line endings git stores as LF (the repository's line-ending rules): not byte-exact
        self.normalized: list[str] = []
        self.worktree = False  # the index was made from the work tree (its files are the blobs' contents)

    def _listing(self) -> dict[str, tuple[str, str]]:
        """path -> (mode, blob id) of every entry in the index (one `git ls-files`, then kept up to date
        by this object's own changes)."""
        if self._listed is None:
            listed = self._git("ls-files", "-s", "-z").decode("utf-8", errors="surrogateescape").split("\0")
            self._listed = {}
            for record in listed:
                if record:
                    info, _, path = record.partition("\t")
                    mode, blob = info.split()[:2]
                    self._listed[path] = (mode, blob)
        return self._listed

    def _git(self, *args: str, input: bytes | None = None) -> bytes:
        return run.run(self.repo, *args, env=self.env, input=input)

    def _out(self, *args: str, input: bytes | None = None) -> str:
        return self._git(*args, input=input).decode(errors="surrogateescape").strip()

    def start_from_worktree(self) -> None:
        """The index := the work tree (untracked files included, ignored ones not)."""
        self.begin_from_worktree()
        self.wait()

    def begin_from_worktree(self) -> None:
        """start_from_worktree, with `git add` left running: `wait()` for it before using the index (other
        git commands on the repository may run meanwhile)."""
        if self.user_index.is_file():
            shutil.copy2(self.user_index, self.env["GIT_INDEX_FILE"])  # its stat cache spares re-hashing;
            # its mtime is kept, or git would trust the stat of a file changed in the second of its last add
        self._adding = run.start(self.repo, "add", "-A", *self.sparse, "--", ".", env=self.env)
        self._listed = None
        self.worktree = True

    def wait(self) -> None:
        """Wait for a `git add` begun by begin_from_worktree (its failure raises here)."""
        adding, self._adding = self._adding, None
        if adding is not None:
            adding.result()
            self.normalized = sorted(set(NORMALIZED.findall(adding.said)))

    def close(self) -> None:
        """Wait for anything still running in the temporary directory, without asking how it went."""
        if self._adding is not None:
            self._adding.close()

    def forget(self, paths: list[str]) -> None:
        """Take these paths out of the index (their files stay as they are on disk)."""
        if paths:
            self._listed = None
            self._git(
                "update-index",
                "--force-remove",
                "-z",
                "--stdin",
                input="".join(f"{path}\0" for path in paths).encode(errors="surrogateescape"),
            )

    def retake(self, paths: list[str]) -> None:
        """Take these paths afresh from the work tree, as `git add -A` takes a file whose index entry says
        nothing of it (the user's index, which this one copies, may mark a file assume-unchanged or
        skip-worktree, and `git add` then passes over its edits): out of the index, then added back where
        a file (or symlink) is there; a path with none is then a deletion."""
        if not paths:
            return
        self.forget(paths)
        there = [path for path in paths if _a_file(self.repo / path)]
        if there:
            # `-f`: they were tracked, so .gitignore does not apply to them
            run.run(
                self.repo, "add", "-f", *self.sparse, "--pathspec-from-file=-", "--pathspec-file-nul",
                env={**self.env, "GIT_LITERAL_PATHSPECS": "1"},
                input="".join(f"{path}\0" for path in there).encode(errors="surrogateescape"),
            )  # fmt: skip

    def start_from_commit(self, commit: str) -> None:
        self._git("read-tree", commit)
        self._listed = None
        self.worktree = False

    def entry(self, path: str) -> tuple[str, str] | None:
        """(mode, blob id) of a path in the index."""
        if self._listed is not None and path in self._listed:
            return self._listed[path]
        # literally (a glob or `:(magic)` in a name matches nothing else), and only that path (not the
        # files of a directory by that name)
        listed = self._git("ls-files", "-s", "-z", "--", f":(top,literal){path}")
        for record in listed.decode("utf-8", errors="surrogateescape").split("\0"):
            info, _, name = record.partition("\t")
            if name == path:
                mode, blob = info.split()[:2]
                return mode, blob
        return None

    def files(self) -> list[tuple[str, str]]:
        """(mode, path) of every entry in the index, submodules' included."""
        return [(mode, path) for path, (mode, _blob) in self._listing().items()]

    def read(self, path: str) -> tuple[str, bytes]:
        """(mode, content) of a path in the index (a regular file whose copy in the work tree still has the
        blob's content is read from there, without a git call)."""
        found = self.entry(path)
        if found is None:
            raise NotInIndex(f"{path} is not in the repository")
        mode, blob = found
        if self.worktree and mode in ("100644", "100755"):
            try:
                content = (self.repo / path).read_bytes()
            except OSError:
                content = None
            if content is not None and self._blob_id(content) == blob:
                return mode, content
        return mode, self._git("cat-file", "blob", blob)

    def write(self, path: str, content: bytes, mode: str = "100644") -> None:
        blob = self._store(content)
        self._git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}")
        if self._listed is not None:
            self._listed[path] = (mode, blob)

    def _blob_id(self, content: bytes) -> str | None:
        """The id git gives a blob of this content (None for an object format hashlib does not know)."""
        import hashlib

        try:
            hasher = hashlib.new(self.object_format)
        except ValueError:
            return None
        hasher.update(b"blob %d\0" % len(content))
        hasher.update(content)
        return hasher.hexdigest()

    def _store(self, content: bytes) -> str:
        """Writes a blob into the temporary object directory (as `git hash-object -w --stdin` would, a loose
        object); returns its id."""
        blob = self._blob_id(content)
        if blob is None:
            return self._out("hash-object", "-w", "--stdin", input=content)
        import zlib

        target = self.tmp / "objects" / blob[:2] / blob[2:]
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            partial = target.with_name(f".{blob[2:]}.tmp")
            partial.write_bytes(zlib.compress(b"blob %d\0" % len(content) + content))
            partial.replace(target)
        return blob

    def keep_gitlinks_of(self, commit: str) -> tuple[dict[str, str], list[str]]:
        """Submodule pointers stay as in `commit` (their own state is out of scope).
        Returns the submodules ({path: commit}) and the paths whose checkout had moved."""
        kept: dict[str, str] = {}
        moved = []
        for path, (mode, blob) in list(self._listing().items()):
            if mode != GITLINK:
                continue
            recorded = run.out(self.repo, "rev-parse", "-q", "--verify", f"{commit}:{path}", check=False)
            if recorded:
                kept[path] = recorded
            if recorded != blob:
                moved.append(path)
                if recorded:
                    self._git("update-index", "--cacheinfo", f"{GITLINK},{recorded},{path}")
                    self._listing()[path] = (GITLINK, recorded)
                else:
                    self._git("update-index", "--force-remove", "--", path)
                    del self._listing()[path]
        return kept, moved

    def tree(self) -> str:
        return self._out("write-tree")

    def tree_and_diff(self, commit: str) -> tuple[str, str]:
        """The index's tree (written) and the patch from `commit` to it (`diff`): git writes the tree while
        another git diffs the index (the same content) against the commit."""
        writing = run.start(self.repo, "write-tree", env=self.env)
        try:
            output = self._diff("--cached", "--patch-with-raw", "-z", "--no-abbrev", commit)
        except Exception:
            writing.result()  # write-tree's own failure is the one to report, as when it ran first
            raise
        tree = writing.out()
        return tree, self._patch(commit, tree, output)

    def diff(self, commit: str, tree: str) -> str:
        """The git patch from `commit` to `tree`, always UTF-8 text that `git apply` turns back into the
        exact bytes: a file whose content (before or after) or name is not UTF-8 goes as a binary patch
        (base85) under a C-quoted name, the rest as git diffs them. (One `git diff` gives the changes'
        blob ids and the patch: --patch-with-raw.)"""
        return self._patch(commit, tree, self._diff("--patch-with-raw", "-z", "--no-abbrev", commit, tree))

    def _patch(self, commit: str, tree: str, output: bytes) -> str:
        """The patch of `diff`, from the output of its `git diff --patch-with-raw -z --no-abbrev`."""
        changes, at = _raw_changes(output)
        foreign = self._not_utf8(changes)
        if not foreign:
            return output[at:].decode("utf-8")
        kept = self._diff(commit, tree, "--", ":/", *(f":(top,exclude,literal){p}" for p in foreign))
        return (kept + self._binary_diff(commit, tree, foreign)).decode("utf-8")

    def _diff(self, *args: str) -> bytes:
        return run.run(self.repo, *DIFF, *args, env=self.env)

    def _binary_diff(self, commit: str, tree: str, paths: list[str]) -> bytes:
        """The diff of `paths` with every file marked binary and names C-quoted, in a scratch repository
        whose info/attributes (which outrank every .gitattributes) says so."""
        scratch = self.tmp / "binary.git"
        if not scratch.is_dir():
            run.run(self.tmp, "init", "-q", "--bare", str(scratch))
            (scratch / "info").mkdir(exist_ok=True)
            (scratch / "info" / "attributes").write_text("* binary\n")
        env = {key: value for key, value in self.env.items() if key != "GIT_INDEX_FILE"}
        pathspecs = (f":(literal){path}" for path in paths)
        return run.run(
            scratch, "-c", "core.quotepath=true", *DIFF, commit, tree, "--", *pathspecs,
            env={**env, "GIT_DIR": str(scratch)},
        )  # fmt: skip

    def _not_utf8(self, changes: list[tuple[list[bytes], list[str]]]) -> list[str]:
        """The paths of the changes (both sides of a rename) whose name or content, before or after, is not
        UTF-8."""
        ids = list(dict.fromkeys(blob for _, blobs in changes for blob in blobs))
        contents = repository.read_blobs(self.repo, ids, env=self.env) if ids else {}
        foreign = [
            name
            for names, blobs in changes
            if not all(_is_utf8(data) for data in [*names, *(contents.get(blob, b"") for blob in blobs)])
            for name in names
        ]
        return list(dict.fromkeys(name.decode("utf-8", errors="surrogateescape") for name in foreign))


def _raw_changes(output: bytes) -> tuple[list[tuple[list[bytes], list[str]]], int]:
    """The changes `git diff --raw -z --no-abbrev` lists at the start of `output`, as (names, blob ids
    that are not submodules' or missing), and where what follows them (the patch) starts."""
    changes: list[tuple[list[bytes], list[str]]] = []
    at = 0
    while output.startswith(b":", at):
        end = output.index(b"\0", at)
        mode_a, mode_b, blob_a, blob_b, status = output[at + 1 : end].decode().split()
        names = []
        at = end + 1
        for _ in range(2 if status[0] in "RC" else 1):
            end = output.index(b"\0", at)
            names.append(output[at:end])
            at = end + 1
        sides = ((mode_a, blob_a), (mode_b, blob_b))
        changes.append((names, [blob for mode, blob in sides if mode != GITLINK and blob.strip("0")]))
    if changes and output.startswith(b"\0", at):
        at += 1  # the line between the list and the patch
    return changes, at


# How patches are made: binary files in full (base85), whole ids, renames found, nothing of the user's diff
# config (run.NEUTRAL_CONFIG and run.DIFF_OPTIONS).
DIFF = ("diff", "--binary", "--full-index", "-M", *run.DIFF_OPTIONS)
# What `git add` says of a file its line-ending rules (.gitattributes text/eol, core.autocrlf) store with LF.
NORMALIZED = re.compile(r"^warning: in the working copy of '(.+)', CRLF will be replaced by LF", re.MULTILINE)


def _a_file(path: Path) -> bool:
    """Whether `path` is there as a file or a symlink (not a directory, not missing)."""
    return path.is_symlink() or path.is_file()


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@contextmanager
def snapshot(repo: Path) -> Iterator[Snapshot]:
    with tempfile.TemporaryDirectory(prefix="clearml-task-") as tmp:
        snap = Snapshot(repo, Path(tmp))
        try:
            yield snap
        finally:
            snap.close()
