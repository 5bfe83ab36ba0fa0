"""A temporary index over a repository: the work tree (or a commit) as git objects, without touching the
user's .git — new objects go to a temporary object directory, the repository's own serve as alternates."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clearml_task.errors import UserError
from clearml_task.git import repository, run

GITLINK = "160000"  # the mode of a submodule's entry


class Snapshot:
    """A temporary index and object directory over a repository (its objects serve as alternates)."""

    def __init__(self, repo: Path, tmp: Path) -> None:
        self.repo, self.tmp = repo, tmp
        paths = run.out(
            repo, "rev-parse", "--path-format=absolute", "--git-path", "objects", "--git-path", "index"
        )
        objects, self.user_index = (Path(p) for p in paths.splitlines())
        (tmp / "objects").mkdir()
        self.env = {
            "GIT_INDEX_FILE": str(tmp / "index"),
            "GIT_OBJECT_DIRECTORY": str(tmp / "objects"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects),
        }
        self._listed: dict[str, tuple[str, str]] | None = None  # path -> (mode, blob), kept up to date

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
        if self.user_index.is_file():
            shutil.copy2(self.user_index, self.env["GIT_INDEX_FILE"])  # its stat cache spares re-hashing;
            # its mtime is kept, or git would trust the stat of a file changed in the second of its last add
        self._git("add", "-A", "--", ".")
        self._listed = None

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

    def start_from_commit(self, commit: str) -> None:
        self._git("read-tree", commit)
        self._listed = None

    def entry(self, path: str) -> tuple[str, str] | None:
        """(mode, blob id) of a path in the index."""
        if self._listed is not None and path in self._listed:
            return self._listed[path]
        line = self._out("ls-files", "-s", "--", path)
        if not line:
            return None
        mode, blob = line.split()[:2]
        return mode, blob

    def files(self) -> list[tuple[str, str]]:
        """(mode, path) of every entry in the index, submodules' included."""
        return [(mode, path) for path, (mode, _blob) in self._listing().items()]

    def read(self, path: str) -> tuple[str, bytes]:
        """(mode, content) of a path in the index."""
        found = self.entry(path)
        if found is None:
            raise UserError(f"{path} is not in the repository")
        return found[0], self._git("cat-file", "blob", found[1])

    def write(self, path: str, content: bytes, mode: str = "100644") -> None:
        blob = self._out("hash-object", "-w", "--stdin", input=content)
        self._git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}")
        if self._listed is not None:
            self._listed[path] = (mode, blob)

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

    def diff(self, commit: str, tree: str) -> str:
        """The git patch from `commit` to `tree`, always UTF-8 text that `git apply` turns back into the
        exact bytes: a file whose content (before or after) or name is not UTF-8 goes as a binary patch
        (base85) under a C-quoted name, the rest as git diffs them."""
        foreign = self._not_utf8(commit, tree)
        if not foreign:
            return self._diff(commit, tree).decode("utf-8")
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

    def _not_utf8(self, commit: str, tree: str) -> list[str]:
        """The paths of the changes from `commit` to `tree` (both sides of a rename) whose name or content,
        before or after, is not UTF-8."""
        fields = self._git("diff", "--raw", "-z", "--no-abbrev", "-M", commit, tree).split(b"\0")
        changes: list[tuple[list[bytes], list[str]]] = []  # (names, blob ids)
        at = 0
        while at < len(fields) and fields[at].startswith(b":"):
            mode_a, mode_b, blob_a, blob_b, status = fields[at][1:].decode().split()
            count = 2 if status[0] in "RC" else 1
            sides = ((mode_a, blob_a), (mode_b, blob_b))
            blobs = [blob for mode, blob in sides if mode != GITLINK and blob.strip("0")]
            changes.append((fields[at + 1 : at + 1 + count], blobs))
            at += 1 + count
        ids = list(dict.fromkeys(blob for _, blobs in changes for blob in blobs))
        contents = repository.read_blobs(self.repo, ids, env=self.env)
        foreign = [
            name
            for names, blobs in changes
            if not all(_is_utf8(data) for data in [*names, *(contents.get(blob, b"") for blob in blobs)])
            for name in names
        ]
        return list(dict.fromkeys(name.decode("utf-8", errors="surrogateescape") for name in foreign))


# How patches are made: binary files in full (base85), whole ids, renames found, no user diff tools.
DIFF = ("diff", "--binary", "--full-index", "-M", "--no-ext-diff", "--no-textconv",
        "--src-prefix=a/", "--dst-prefix=b/")  # fmt: skip


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@contextmanager
def snapshot(repo: Path) -> Iterator[Snapshot]:
    with tempfile.TemporaryDirectory(prefix="clearml-task-") as tmp:
        yield Snapshot(repo, Path(tmp))
