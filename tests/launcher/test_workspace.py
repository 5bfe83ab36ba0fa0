"""The launcher's workspace: tasks captured by clearml-task from real repositories, reproduced through the
repository cache, and each failure reported as a ReproductionError with a reason and a hint."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from clearml_task.inject import inject_task_init
from clearml_task.request import Request
from clearml_task.submit import prepare as capture_request
from launcher import workspace
from launcher.errors import ReproductionError
from testing.repos import Repo, files, git, make_repo

INJECTED = "from clearml import Task\n"


class Lines(list[str]):
    """The log: the lines `prepare` wrote."""

    def __call__(self, line: str) -> None:
        self.append(line)

    def having(self, text: str) -> list[str]:
        return [line for line in self if text in line]


def capture(folder: Path, script: str | None = "train.py", **flags: Any) -> dict[str, Any]:
    """A task document as clearml-task makes it (only the parts the launcher reads)."""
    request = Request(project="proj", name="workspace test", folder=str(folder), script=script, **flags)
    document = capture_request(request).document
    return {"script": document["script"], "runtime": document["runtime"]}


def reproduce(
    tmp: Path, task: dict[str, Any], name: str = "dest", cache: str = "cache"
) -> tuple[workspace.Workspace, Lines]:
    log = Lines()
    return workspace.prepare(task, tmp / name, tmp / cache, log), log


def failure(tmp: Path, task: dict[str, Any], name: str = "dest") -> ReproductionError:
    with pytest.raises(ReproductionError) as caught:
        reproduce(tmp, task, name)
    return caught.value


def assert_same_files(local: Path, reproduced: Path, injected_into: str | None = "train.py") -> None:
    """`reproduced` holds what `local` holds (content and executable bit), plus the injected Task.init()."""
    mine, theirs = files(local), files(reproduced)
    assert set(theirs) == set(mine)
    for path, (content, executable) in mine.items():
        got, got_exec = theirs[path]
        assert got_exec == executable, path
        if path == injected_into:
            assert INJECTED.encode() in got
            assert got.decode() == inject_task_init(content.decode(), path).text
        else:
            assert got == content, path


def dirty(repo: Repo) -> None:
    """Staged, unstaged, untracked, binary, renamed, deleted and mode-changed files at once."""
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 1.0  # staged\n")
    repo.git("add", "src/pkg/model.py")
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 2.0  # then changed again\n")
    repo.write("configs/exp/a.yaml", "lr: 0.1\n")
    repo.write("weights.bin", bytes(range(256)) * 8)
    repo.git("mv", "data/table.csv", "data/renamed.csv")
    (repo.work / "README.md").unlink()
    (repo.work / "src" / "run.py").chmod(0o755)
    repo.write("train.log", "ignored, so it does not travel\n")


# ---- reproduction --------------------------------------------------------------------------------


def test_a_dirty_repository_is_reproduced_exactly(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    dirty(repo)
    task = capture(repo.work)
    assert task["runtime"]["worktree_tree"]
    ws, log = reproduce(tmp_path, task)
    assert ws == workspace.Workspace(tmp_path / "dest", tmp_path / "dest", "train.py")
    (repo.work / "train.log").unlink()
    assert_same_files(repo.work, ws.root)
    commit = repo.git("rev-parse", "HEAD")
    assert git(ws.root, "rev-parse", "HEAD") == commit
    assert git(ws.root, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached
    assert git(ws.root, "diff", "--cached", "--name-only") == ""  # verification left the index alone
    assert log.having(f"workspace: checked out {commit[:12]}")
    assert log.having("workspace: applied the patch (7 files)")
    assert log.having("workspace: work tree verified")
    assert git(ws.root, "remote", "get-url", "origin") == str(repo.origin)


def test_working_dir_and_a_clean_tree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    task = capture(repo.work, script="src/run.py", cwd="src", skip_task_init=True)
    assert task["script"]["diff"] == ""
    ws, log = reproduce(tmp_path, task)
    assert (ws.workdir, ws.entry_point) == (ws.root / "src", "run.py")
    assert not log.having("applied the patch") and log.having("work tree verified")
    assert_same_files(repo.work, ws.root, injected_into=None)


def test_a_symlinked_entry_point_runs_as_the_symlink(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("sub/real.py", "print('real')\n")
    (repo.work / "link.py").symlink_to(Path("sub") / "real.py")
    (repo.work / "out.py").symlink_to(tmp_path / "outside.py")
    (tmp_path / "outside.py").write_text("print('outside')\n")
    repo.commit("symlinks in and out")
    repo.git("push", "-q")
    task = capture(repo.work, script="link.py")
    assert task["script"]["entry_point"] == "link.py"
    ws, _ = reproduce(tmp_path, task)
    assert (ws.workdir, ws.entry_point) == (ws.root, "link.py")
    assert (ws.root / "link.py").is_symlink() and INJECTED in (ws.root / "link.py").read_text()
    task["script"]["entry_point"] = "out.py"  # a symlink out of the checkout stays refused
    error = failure(tmp_path, task, "dest-out")
    assert "it leaves the checkout (through '..' or a symlink)" in error.reason


def test_module_entry_point(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    task = capture(repo.work, script=None, module="src.pkg.model")
    assert task["script"]["entry_point"] == "-m src.pkg.model"
    ws, _ = reproduce(tmp_path, task)
    assert ws.entry_point == "-m src.pkg.model" and ws.workdir == ws.root
    assert (ws.root / "src" / "pkg" / "model.py").is_file()


def test_standalone_script(tmp_path: Path) -> None:
    script = tmp_path / "solo" / "train.py"
    script.parent.mkdir()
    script.write_text("print('alone')\n")
    task = capture(script.parent, script=str(script), skip_repo_detection=True)
    assert task["script"]["repository"] == "" and not task["script"]["diff"].startswith("diff ")
    ws, log = reproduce(tmp_path, task)
    assert ws == workspace.Workspace(tmp_path / "dest", tmp_path / "dest", "train.py")
    written = (ws.root / "train.py").read_text()
    assert "print('alone')" in written and INJECTED in written
    assert log.having("wrote the script train.py")
    assert not (tmp_path / "cache").exists()  # no repository, no cache


def test_submodules_are_checked_out(tmp_path: Path) -> None:
    library = make_repo(tmp_path / "library", "quickstart", remote=False)
    repo = make_repo(tmp_path / "main")
    repo.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library.work), "libs/quick")
    repo.commit("add a submodule")
    repo.git("push", "-q", "origin", "main")
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 3.0\n")
    task = capture(repo.work)
    ws, log = reproduce(tmp_path, task)
    assert (ws.root / "libs" / "quick" / "train.py").read_bytes() == (library.work / "train.py").read_bytes()
    assert git(ws.root / "libs" / "quick", "rev-parse", "HEAD") == library.git("rev-parse", "HEAD")
    assert log.having("submodules checked out (1)") and log.having("work tree verified")


def test_branch_tag_and_default_branch_when_no_commit_is_recorded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = repo.git("rev-parse", "HEAD")
    repo.git("tag", "v1")
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("feature.py", "FEATURE = 1\n")
    feature = repo.commit("feature")
    repo.git("push", "-q", "--tags", "origin", "main", "feature")
    base = {"repository": str(repo.origin), "version_num": "", "entry_point": "train.py", "working_dir": "."}
    cases = {"tag": ({"tag": "v1", "branch": "feature"}, first), "branch": ({"branch": "feature"}, feature)}
    cases["default"] = ({}, first)
    for name, (fields, expected) in cases.items():
        ws, _ = reproduce(tmp_path, {"script": {**base, **fields}}, name=name)
        assert git(ws.root, "rev-parse", "HEAD") == expected, name


# ---- the cache -----------------------------------------------------------------------------------


def test_a_warm_cache_makes_no_remote_call_and_a_new_commit_is_fetched(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    assert repo.origin is not None
    first_task = capture(repo.work)
    _, log = reproduce(tmp_path, first_task, "first")
    assert log.having(f"workspace: cloned {repo.origin}")
    mirrors = [p.name for p in (tmp_path / "cache").iterdir()]
    assert len([m for m in mirrors if m.endswith("-origin.git")]) == 1

    hidden = repo.origin.with_name("away.git")
    repo.origin.rename(hidden)  # the remote is gone: only the cache can serve the commit
    _, log = reproduce(tmp_path, first_task, "second")
    assert log.having("workspace: repository cache hit")
    assert not log.having("fetched") and not log.having("cloned")

    hidden.rename(repo.origin)
    repo.write("later.py", "LATER = 1\n")
    later = repo.commit("later")
    repo.git("push", "-q", "origin", "main")
    ws, log = reproduce(tmp_path, capture(repo.work), "third")
    assert log.having(f"workspace: fetched {repo.origin}") and not log.having("cache hit")
    assert git(ws.root, "rev-parse", "HEAD") == later and (ws.root / "later.py").is_file()


def test_two_launchers_share_one_cache(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 4.0\n")
    task = capture(repo.work)
    start = threading.Barrier(2)

    def launcher(name: str) -> Lines:
        start.wait()
        return reproduce(tmp_path, task, name)[1]

    with ThreadPoolExecutor(2) as pool:
        logs = list(pool.map(launcher, ["a", "b"]))
    for name in ("a", "b"):
        assert_same_files(repo.work, tmp_path / name)
    # the lock made one of them clone and the other find the commit in the cache
    assert sorted(bool(log.having("cloned")) for log in logs) == [False, True]
    assert sorted(bool(log.having("cache hit")) for log in logs) == [False, True]


def test_mirror_names(tmp_path: Path) -> None:
    plain = workspace.mirror_path(tmp_path, "https://github.com/org/proj.git")
    with_token = workspace.mirror_path(tmp_path, "https://user:secret@github.com/org/proj.git")
    assert plain == with_token and plain.name.endswith("-proj.git") and "secret" not in str(plain)
    assert workspace.mirror_path(tmp_path, "git@github.com:org/other.git").name.endswith("-other.git")
    assert plain != workspace.mirror_path(tmp_path, "https://gitlab.com/org/proj.git")


# ---- failures ------------------------------------------------------------------------------------


def test_a_patch_that_does_not_apply(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 5.0\n")
    task = capture(repo.work)
    repo.write("src/pkg/model.py", "def fit(epochs, lr, momentum):\n    return 6.0\n")
    other = repo.commit("the same lines, changed otherwise")
    repo.git("push", "-q", "origin", "main")
    task["script"]["version_num"] = other
    error = failure(tmp_path, task)
    assert error.reason == f"the patch does not apply on {other[:12]}"
    assert "src/pkg/model.py" in error.detail
    assert "another commit" in error.hint and "re-create" in error.hint


def test_a_commit_that_is_not_on_the_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    task = capture(repo.work)
    repo.write("local.py", "UNPUSHED = 1\n")
    unpushed = repo.commit("never pushed")
    task["script"]["version_num"] = unpushed
    error = failure(tmp_path, task)
    assert error.reason == f"commit {unpushed[:12]} is not on {repo.origin}"
    assert "push it" in error.hint


def test_an_unreachable_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    task = capture(repo.work)
    task["script"]["repository"] = str(tmp_path / "nowhere.git")
    error = failure(tmp_path, task)
    assert error.reason.startswith(f"could not fetch {tmp_path / 'nowhere.git'}: ")
    assert "does not appear to be a git repository" in error.reason
    assert "GIT_TERMINAL_PROMPT=0" in error.hint and "credentials" in error.hint
    assert not any((tmp_path / "cache").glob("*.git"))  # no half-made mirror left behind


def test_credentials_never_reach_the_error_or_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    task = {"script": {"repository": "http://user:s3cret@127.0.0.1:9/repo.git", "version_num": "a" * 40,
                       "entry_point": "train.py"}}  # fmt: skip
    log = Lines()
    with pytest.raises(ReproductionError) as caught:
        workspace.prepare(task, tmp_path / "dest", tmp_path / "cache", log)
    error = caught.value
    assert "http://127.0.0.1:9/repo.git" in error.reason
    for text in (
        error.reason,
        error.detail,
        error.hint,
        *log,
        *(p.name for p in (tmp_path / "cache").iterdir()),
    ):
        assert "s3cret" not in text


def test_unknown_branch_and_tag(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    base = {"repository": str(repo.origin), "entry_point": "train.py"}
    error = failure(tmp_path, {"script": {**base, "branch": "nope"}}, "a")
    assert error.reason == f"no branch 'nope' on {repo.origin}" and "main" in error.hint
    error = failure(tmp_path, {"script": {**base, "tag": "v9"}}, "b")
    assert error.reason == f"no tag 'v9' on {repo.origin}"


def test_a_tampered_tree_is_detected(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    task = capture(repo.work)
    task["runtime"]["worktree_tree"] = repo.git("rev-parse", "HEAD^{tree}")  # the commit without the patch
    error = failure(tmp_path, task, "a")
    assert error.reason == "the reproduced work tree differs from what clearml-task captured"
    assert "M\ttrain.py" in error.detail and "runtime.worktree_tree" in error.hint

    task["runtime"]["worktree_tree"] = "1" * 40  # not in the repository at all
    error = failure(tmp_path, task, "b")
    assert "not in the repository" in error.detail and "M\ttrain.py" in error.detail


def test_a_changed_diff_is_caught_by_the_verification(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 7.0\n")
    task = capture(repo.work)
    diff = task["script"]["diff"]
    task["script"]["diff"] = diff.replace("+    return 7.0", "+    return 8.0")
    assert task["script"]["diff"] != diff
    error = failure(tmp_path, task)
    assert "M\tsrc/pkg/model.py" in error.detail


Edit = Callable[[dict[str, Any]], None]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda s: s.update(working_dir="nowhere"), "the working directory nowhere is not in the checkout"),
        (lambda s: s.update(working_dir="../.."), "the working directory ../.. is outside the checkout"),
        (lambda s: s.update(entry_point="missing.py"), "the entry point missing.py is not in the checkout"),
        (lambda s: s.update(entry_point=""), "the task has no entry point"),
        (lambda s: s.update(version_num="main"), "script.version_num 'main' is not a commit id"),
    ],
)
def test_what_the_task_names_must_exist(tmp_path: Path, edit: Edit, reason: str) -> None:
    repo = make_repo(tmp_path)
    task = capture(repo.work)
    edit(task["script"])
    error = failure(tmp_path, task)
    assert error.reason.startswith(reason) and error.hint


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ({"repository": "", "diff": ""}, "the task has no code"),
        ({"repository": "", "diff": "diff --git a/x b/x\n"}, "the task has a patch but no repository"),
        ({"repository": "", "diff": "print(1)\n", "entry_point": "-m pkg"}, "the task holds a standalone"),
    ],
)
def test_tasks_without_a_repository_need_a_script(
    tmp_path: Path, script: dict[str, str], reason: str
) -> None:
    assert failure(tmp_path, {"script": script}).reason.startswith(reason)


def test_the_destination_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "left-over").write_text("x")
    task = {"script": {"repository": "", "diff": "print(1)\n", "entry_point": "a.py"}}
    assert failure(tmp_path, task).reason == f"the workspace {tmp_path / 'dest'} is not empty"


def test_relative_destination_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    task = capture(repo.work)
    monkeypatch.chdir(tmp_path)
    ws = workspace.prepare(task, Path("runs/dest"), Path("runs/cache"), Lines())
    assert ws.root == tmp_path / "runs" / "dest"
    assert_same_files(repo.work, ws.root)


def test_the_launcher_machines_git_config_changes_no_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A launcher whose own git config converts line endings, ignores symlinks and modes, and ignores
    files by its own rules reproduces the same bytes, links and modes, and says the tree is verified (its
    `core.autocrlf=true` made every file CRLF, under a verified tree: a `set -e` line became `set -e\\r`)."""
    repo = make_repo(tmp_path)
    repo.write("go.sh", "#!/bin/bash\nset -e\necho ok\n", mode=0o755)
    repo.git("add", "go.sh")
    repo.commit("a script")
    repo.write("notes.csv", "a,b\n1,2\n")  # new: the launcher's own ignore rules must not drop it
    (repo.work / "link.py").symlink_to("train.py")
    task = capture(repo.work, skip_task_init=True)
    ignores = tmp_path / "launcher-ignores"
    ignores.write_text("*.csv\n")
    config = tmp_path / "launcher-gitconfig"
    config.write_text(
        "[core]\n\tautocrlf = true\n\teol = crlf\n\tsymlinks = false\n\tfileMode = false\n"
        f"\texcludesFile = {ignores}\n"
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    ws, log = reproduce(tmp_path, task)
    assert log.having("workspace: work tree verified")
    assert (ws.root / "go.sh").read_bytes() == b"#!/bin/bash\nset -e\necho ok\n"
    assert (ws.root / "link.py").is_symlink() and str((ws.root / "link.py").readlink()) == "train.py"
    assert_same_files(repo.work, ws.root, injected_into=None)


def test_a_file_added_past_an_ignore_rule_travels_and_verifies(tmp_path: Path) -> None:
    """`git add -f keep.log` under a committed `*.log` rule: the file travels, and the reproduced tree is
    verified (it failed as 'differs', listing no path: the launcher's `git add -A` left the file out)."""
    repo = make_repo(tmp_path)
    repo.write(".gitignore", "*.log\n")
    repo.git("add", ".gitignore")
    repo.commit("ignore logs")
    repo.write("keep.log", "kept on purpose\n")
    repo.git("add", "-f", "keep.log")
    task = capture(repo.work)
    ws, log = reproduce(tmp_path, task)
    assert log.having("workspace: work tree verified")
    assert (ws.root / "keep.log").read_text() == "kept on purpose\n"
    assert git(ws.root, "diff", "--cached", "--name-only") == ""  # the checkout's own index is untouched
