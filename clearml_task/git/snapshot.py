"""A temporary index over a repository: the work tree (or a commit) as git objects, without touching the
user's .git — new objects go to a temporary object directory, the repository's own serve as alternates."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clearml_task.errors import UserError
from clearml_task.git import run

GITLINK = "160000"  # the mode of a submodule's entry


class Snapshot:
    """A temporary index and object directory over a repository (its objects serve as alternates)."""

    def __init__(self, repo: Path, tmp: Path) -> None:
        self.repo = repo
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

    def _git(self, *args: str, input: bytes | None = None) -> bytes:
        return run.run(self.repo, *args, env=self.env, input=input)

    def _out(self, *args: str, input: bytes | None = None) -> str:
        return self._git(*args, input=input).decode(errors="surrogateescape").strip()

    def start_from_worktree(self) -> None:
        """The index := the work tree (untracked files included, ignored ones not)."""
        if self.user_index.is_file():
            shutil.copyfile(self.user_index, self.env["GIT_INDEX_FILE"])  # its stat cache spares re-hashing
        self._git("add", "-A", "--", ".")

    def forget(self, paths: list[str]) -> None:
        """Take these paths out of the index (their files stay as they are on disk)."""
        if paths:
            self._git(
                "update-index",
                "--force-remove",
                "-z",
                "--stdin",
                input="".join(f"{path}\0" for path in paths).encode(errors="surrogateescape"),
            )

    def start_from_commit(self, commit: str) -> None:
        self._git("read-tree", commit)

    def entry(self, path: str) -> tuple[str, str] | None:
        """(mode, blob id) of a path in the index."""
        line = self._out("ls-files", "-s", "--", path)
        if not line:
            return None
        mode, blob = line.split()[:2]
        return mode, blob

    def files(self) -> list[tuple[str, str]]:
        """(mode, path) of every entry in the index, submodules' included."""
        listed = self._git("ls-files", "-s", "-z").decode("utf-8", errors="surrogateescape").split("\0")
        entries = [record.partition("\t") for record in listed if record]
        return [(info.split()[0], path) for info, _, path in entries]

    def read(self, path: str) -> tuple[str, bytes]:
        """(mode, content) of a path in the index."""
        found = self.entry(path)
        if found is None:
            raise UserError(f"{path} is not in the repository")
        return found[0], self._git("cat-file", "blob", found[1])

    def write(self, path: str, content: bytes, mode: str = "100644") -> None:
        blob = self._out("hash-object", "-w", "--stdin", input=content)
        self._git("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}")

    def keep_gitlinks_of(self, commit: str) -> tuple[dict[str, str], list[str]]:
        """Submodule pointers stay as in `commit` (their own state is out of scope).
        Returns the submodules ({path: commit}) and the paths whose checkout had moved."""
        kept: dict[str, str] = {}
        moved = []
        for line in self._out("ls-files", "-s").splitlines():
            mode, blob, _stage, path = line.split(maxsplit=3)
            if mode != GITLINK:
                continue
            recorded = run.out(self.repo, "rev-parse", "-q", "--verify", f"{commit}:{path}", check=False)
            if recorded:
                kept[path] = recorded
            if recorded != blob:
                moved.append(path)
                if recorded:
                    self._git("update-index", "--cacheinfo", f"{GITLINK},{recorded},{path}")
                else:
                    self._git("update-index", "--force-remove", "--", path)
        return kept, moved

    def tree(self) -> str:
        return self._out("write-tree")

    def diff(self, commit: str, tree: str) -> str:
        return self._git(
            "diff",
            "--binary",
            "--full-index",
            "-M",
            "--no-ext-diff",
            "--no-textconv",
            "--src-prefix=a/",
            "--dst-prefix=b/",
            commit,
            tree,
        ).decode("utf-8", errors="surrogateescape")


@contextmanager
def snapshot(repo: Path) -> Iterator[Snapshot]:
    with tempfile.TemporaryDirectory(prefix="clearml-task-") as tmp:
        yield Snapshot(repo, Path(tmp))
