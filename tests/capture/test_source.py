"""Source capture: for each scenario the task is reproduced as an agent would (clone the recorded
repository, check out the recorded commit, `git apply` the patch, with and without --unidiff-zero) and the
result must equal the local work tree plus the injected lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clearml_task.errors import UserError
from clearml_task.git import checkout, urls
from clearml_task.inject import inject_task_init
from clearml_task.request import Request
from clearml_task.submit import Prepared, prepare
from testing.repos import FIXTURES, Repo, files, git, make_repo, reproduce, tree_of

INJECTED = "from clearml import Task\n"


def capture(repo: Repo, script: str = "train.py", **flags: object) -> Prepared:
    request = Request(project="proj", name="capture test", folder=str(repo.work), script=script, **flags)  # type: ignore[arg-type]
    return prepare(request)


def assert_reproduces(
    tmp: Path, repo: Repo, prepared: Prepared, injected_into: str | None = "train.py"
) -> None:
    """Both agents (git apply, and --unidiff-zero) end with the local tree plus the injection."""
    found = prepared.source
    assert found is not None
    local = files(repo.work)
    for zero in (False, True):
        checkout = reproduce(tmp, found.repository, found.commit, found.patch, unidiff_zero=zero)
        remote = files(checkout)
        assert set(remote) == set(local), f"unidiff_zero={zero}"
        for path, (content, executable) in local.items():
            got, got_exec = remote[path]
            assert got_exec == executable, path
            if path == injected_into:
                assert INJECTED.encode() in got
                assert got.decode() == inject_task_init(content.decode(), path).text, path
            else:
                assert got == content, path
        assert tree_of(checkout) == found.tree


# ---- scenarios -----------------------------------------------------------------------------------


def test_clean(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    prepared = capture(repo)
    found = prepared.source
    assert found is not None
    assert found.commit == repo.git("rev-parse", "HEAD")
    assert found.repository == str(repo.origin) and found.branch == "main"
    assert (found.working_dir, found.entry_point) == (".", "train.py")
    assert found.patch.count("diff --git") == 1  # only the injection
    assert_reproduces(tmp_path, repo, prepared)


def test_unpushed_commits_travel_in_the_patch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    pushed = repo.git("rev-parse", "HEAD")
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 42.0\n")
    repo.commit("unpushed one")
    repo.write("notes.txt", "second unpushed commit\n")
    repo.commit("unpushed two")
    prepared = capture(repo)
    assert prepared.source is not None
    assert prepared.source.commit == pushed
    assert prepared.source.stats.unpushed_commits == 2
    assert_reproduces(tmp_path, repo, prepared)


def test_staged_and_unstaged_changes_to_one_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 1.0  # staged\n")
    repo.git("add", "src/pkg/model.py")
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 2.0  # staged, then changed again\n")
    assert_reproduces(tmp_path, repo, capture(repo))


def test_untracked_files_and_directories_travel_ignored_ones_do_not(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("new_module.py", "VALUE = 1\n")
    repo.write("configs/exp/a.yaml", "lr: 0.1\n")
    repo.write("configs/exp/deeper/b.yaml", "lr: 0.2\n")
    repo.write("train.log", "ignored\n")
    repo.write("build/artifact.bin", b"\x00ignored")
    prepared = capture(repo)
    assert prepared.source is not None
    patch = prepared.source.patch
    assert "configs/exp/deeper/b.yaml" in patch and "new_module.py" in patch
    assert "train.log" not in patch and "build/artifact.bin" not in patch
    assert prepared.source.stats.untracked == 3
    assert_reproduces(tmp_path, repo, prepared)


def test_deletion_rename_binary_and_mode(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo.work / "README.md").unlink()
    repo.git("mv", "data/table.csv", "data/renamed.csv")
    repo.write("weights.bin", bytes(range(256)) * 8)
    (repo.work / "src" / "run.py").chmod(0o755)
    prepared = capture(repo)
    assert prepared.source is not None
    patch = prepared.source.patch
    assert "deleted file mode" in patch and "rename from data/table.csv" in patch
    assert "GIT binary patch" in patch and "new mode 100755" in patch
    assert_reproduces(tmp_path, repo, prepared)


# What a user's git config could change in what git prints (each set in ~/.gitconfig); the patch must stay
# the same, byte for byte, and the launcher's git must apply it under the same config.
USER_GIT_CONFIG = [
    ("color.ui", "always"),
    ("color.diff", "always"),
    ("diff.external", "{tmp}/external-diff"),
    ("diff.noprefix", "true"),
    ("diff.mnemonicPrefix", "true"),
    ("diff.relative", "true"),
    ("core.quotePath", "true"),
    ("diff.renames", "copies"),
    ("diff.context", "9"),
    ("diff.interHunkContext", "9"),
    ("diff.algorithm", "patience"),
    ("diff.indentHeuristic", "false"),
    ("diff.suppressBlankEmpty", "true"),
    ("diff.orderFile", "{tmp}/order"),
    ("diff.upper.textconv", "tr a-z A-Z"),  # every file has `diff=upper` (core.attributesFile)
    ("diff.dirstat", "files"),
    ("diff.colorMoved", "zebra"),
    ("color.status", "always"),
]


def _changed(tmp: Path) -> Repo:
    """A repository with changes git's diff options show differently: edits far apart and near each other,
    blank lines, a rename and a copy, a non-ASCII name, an untracked file."""
    repo = make_repo(tmp)
    lines = [f"line {n}\n" if n % 7 else "\n" for n in range(60)]
    repo.write("long.txt", "".join(lines))
    repo.write("grüße.txt", "hallo\n")
    repo.commit("more files")
    repo.git("push", "-q")
    lines[3], lines[15], lines[40] = "changed 3\n", "changed 15\n", "changed 40\n"
    repo.write("long.txt", "".join(lines))
    repo.write("grüße.txt", "hallo welt\n")
    repo.write("copy.txt", "".join(lines[:50]) + "more\n")
    repo.git("mv", "data/table.csv", "data/moved.csv")
    repo.write("src/run.py", (repo.work / "src" / "run.py").read_text() + "print('more')\n")
    repo.write("new.txt", "untracked\n")
    return repo


@pytest.mark.parametrize(("key", "value"), USER_GIT_CONFIG, ids=[key for key, _ in USER_GIT_CONFIG])
def test_the_users_git_config_changes_nothing_captured(tmp_path: Path, key: str, value: str) -> None:
    repo = _changed(tmp_path)
    plain = capture(repo).source
    assert plain is not None and plain.stats.files == 7
    (tmp_path / "external-diff").write_text("#!/bin/sh\necho EXTERNAL\n")
    (tmp_path / "external-diff").chmod(0o755)
    (tmp_path / "order").write_text("train.py\n*\n")
    (tmp_path / "attributes").write_text("* diff=upper\n")
    user_config = Path.home() / ".gitconfig"
    git(tmp_path, "config", "--file", str(user_config), "core.attributesFile", str(tmp_path / "attributes"))
    git(tmp_path, "config", "--file", str(user_config), key, value.format(tmp=tmp_path))
    prepared = capture(repo)
    assert prepared.source is not None
    assert prepared.source.patch == plain.patch
    assert prepared.source.stats == plain.stats
    assert_reproduces(tmp_path, repo, prepared)
    launched = tmp_path / "launched"  # the launcher's own steps, under the same user config
    assert repo.origin is not None
    checkout.clone_shared(repo.origin, launched)
    checkout.check_out(launched, prepared.source.commit)
    checkout.apply(launched, prepared.source.patch)
    tree = checkout.work_tree_id(launched)
    assert tree == prepared.source.tree
    changed = git(launched, "-c", "core.quotePath=false", "diff", "--name-status", "--no-renames",
                  prepared.source.commit, tree)  # fmt: skip
    assert checkout.changed_paths(launched, prepared.source.commit, tree) == changed.splitlines()


@pytest.mark.parametrize("where", ["repository", "core.hooksPath"])
def test_no_hook_of_the_users_runs_during_a_capture(tmp_path: Path, where: str) -> None:
    """The capture builds its patch in an index of its own: a hook (post-index-change, reference-transaction,
    post-checkout) of the repository's or of a core.hooksPath never runs, and the patch is the same."""
    repo = _changed(tmp_path)
    plain = capture(repo).source
    assert plain is not None
    ran = tmp_path / "hooks-ran"
    hooks = repo.work / ".git" / "hooks" if where == "repository" else tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    for name in ("post-index-change", "reference-transaction", "post-checkout", "pre-auto-gc"):
        (hooks / name).write_text(f"#!/bin/sh\necho {name} >> {ran}\n")
        (hooks / name).chmod(0o755)
    if where == "core.hooksPath":
        repo.git("config", "core.hooksPath", str(hooks))
    repo.git("add", "new.txt")  # the hooks run when git itself writes the index ...
    repo.git("reset", "-q", "new.txt")  # ... and the index is as before
    assert ran.exists()
    ran.unlink()
    prepared = capture(repo)
    assert prepared.source is not None and prepared.source.patch == plain.patch
    assert not ran.exists(), ran.read_text()


def test_no_upstream_uses_the_newest_pushed_commit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    pushed = repo.git("rev-parse", "HEAD")
    repo.git("checkout", "-q", "-b", "feature")  # no upstream
    repo.write("feature.py", "FEATURE = True\n")
    repo.commit("feature work")
    prepared = capture(repo)
    assert prepared.source is not None
    assert prepared.source.commit == pushed and prepared.source.branch == "main"
    assert_reproduces(tmp_path, repo, prepared)


def test_no_remote_records_the_local_path_and_warns(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, remote=False)
    repo.write("src/pkg/model.py", "def fit(e, l):\n    return 0.5\n")
    prepared = capture(repo)
    assert prepared.source is not None
    assert prepared.source.repository == str(repo.work)
    assert any("only agents on this machine" in note for note in prepared.notes)
    assert_reproduces(tmp_path, repo, prepared)


def test_detached_head(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = repo.git("rev-parse", "HEAD")
    repo.write("later.txt", "later\n")
    repo.commit("later")
    repo.git("push", "-q", "origin", "main")
    repo.git("checkout", "-q", "--detach", first)
    repo.write("dirty.txt", "on a detached head\n")
    prepared = capture(repo)
    assert prepared.source is not None
    assert prepared.source.commit == first
    assert_reproduces(tmp_path, repo, prepared)


def test_script_in_a_subdirectory_with_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    monkeypatch.chdir(repo.work)
    prepared = prepare(Request(project="proj", name="cwd test", script="src/run.py", cwd="src"))
    assert prepared.source is not None
    assert (prepared.source.working_dir, prepared.source.entry_point) == (
        "src",
        "run.py",
    )  # not src/src/run.py
    assert_reproduces(tmp_path, repo, prepared, injected_into="src/run.py")
    monkeypatch.chdir(repo.work / "src")  # a script relative to the current directory
    again = prepare(Request(project="proj", name="cwd test", script="run.py"))
    assert again.source is not None
    assert (again.source.working_dir, again.source.entry_point) == (".", "src/run.py")


def test_relative_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    prepared = prepare(Request(project="proj", name="rel folder", folder="work", script="train.py"))
    assert prepared.source is not None
    assert prepared.source.repository == str(repo.origin)  # a repository, not a standalone script
    assert prepared.source.entry_point == "train.py"


def test_paths_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("data dir/file with spaces.txt", "spaces\n")
    repo.write("données/ünïcødé ✓.txt", "non-ascii\n")
    repo.write("src/pkg/émoji 🙂.py", "X = 1\n")
    repo.commit("names")
    repo.write("données/ünïcødé ✓.txt", "changed\n")
    repo.write("new dir ä/ß.txt", "untracked\n")
    assert_reproduces(tmp_path, repo, capture(repo))


def test_files_that_are_not_utf8_travel_as_binary_patches(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("latin.txt", "café\nline 2\n".encode("latin-1"))
    repo.write("moved.txt", "déjà vu\n".encode("latin-1") * 20)
    repo.write("was_utf8.txt", "naïve\n")
    os.makedirs(repo.work / "names")
    (repo.work / "names" / os.fsdecode(b"n\xe4me.txt")).write_bytes(b"x\n")
    repo.commit("latin-1")
    repo.write("latin.txt", "café crème\nline 2\n".encode("latin-1"))
    repo.git("mv", "moved.txt", "renamed.txt")
    repo.write("was_utf8.txt", "naïve\n".encode("latin-1"))
    repo.write("new.txt", "garçon\n".encode("cp1252"))
    (repo.work / "names" / os.fsdecode(b"n\xe4me.txt")).write_bytes(b"y\n")
    repo.write("plain.txt", "ünïcødé stays text\n")
    prepared = capture(repo)
    patch = prepared.document["script"]["diff"]
    patch.encode("utf-8")  # strict: no lone surrogates
    assert patch.count("GIT binary patch") == 5 and '"a/names/n\\344me.txt"' in patch
    assert "+ünïcødé stays text" in patch  # UTF-8 files stay readable text hunks
    assert_reproduces(tmp_path, repo, prepared)


def test_script_with_spaces_in_its_name(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("my scripts/trâin me.py", "print('hi')\n")
    prepared = capture(repo, script="my scripts/trâin me.py")
    assert prepared.source is not None
    assert prepared.source.entry_point == "my scripts/trâin me.py"
    assert_reproduces(tmp_path, repo, prepared, injected_into="my scripts/trâin me.py")


def test_a_script_named_like_an_option_is_recorded_as_a_path(tmp_path: Path) -> None:
    # `--help.py` was recorded as it is: `python --help.py` to an agent, refused by the launcher
    repo = make_repo(tmp_path)
    repo.write("--help.py", "print('hi')\n")
    prepared = capture(repo, script="--help.py")
    assert prepared.source is not None and prepared.source.entry_point == "./--help.py"
    assert_reproduces(tmp_path, repo, prepared, injected_into="--help.py")
    alone = tmp_path / "alone" / "-x.py"
    alone.parent.mkdir()
    alone.write_text("print('hi')\n")
    standalone = prepare(Request(project="proj", name="alone", script=str(alone)))
    assert standalone.source is not None and standalone.source.entry_point == "./-x.py"


def test_header_lines_stay_first(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "header")
    prepared = capture(repo)
    assert_reproduces(tmp_path, repo, prepared)
    checkout = tmp_path / "agent"
    text = (checkout / "train.py").read_text()
    assert text.startswith('#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n"""Module docstring')
    assert text.index("from __future__ import division") < text.index("from clearml import Task")
    compile(text, "train.py", "exec")


def test_script_that_already_calls_task_init_is_left_alone(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "has_init")
    prepared = capture(repo)
    assert prepared.source is not None and prepared.source.patch == ""
    assert any("Task.init" in note for note in prepared.notes)
    assert_reproduces(tmp_path, repo, prepared, injected_into=None)


def test_syntax_error_is_a_clear_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "broken")
    with pytest.raises(UserError) as e:
        capture(repo)
    assert "line 3" in str(e.value) and "--skip-task-init" in str(e.value)
    prepared = capture(repo, skip_task_init=True)
    assert prepared.source is not None and prepared.source.patch == ""


def test_an_entry_point_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    # Task.init() was silently not injected (and clearml not required): the task ran untracked
    repo = make_repo(tmp_path)
    repo.write("latin.py", "# -*- coding: latin-1 -*-\nprint('café')\n".encode("latin-1"))
    with pytest.raises(UserError) as e:
        capture(repo, script="latin.py")
    assert e.value.message == "cannot inject Task.init() into latin.py: it is not UTF-8 text"
    assert "--skip-task-init" in e.value.hint
    prepared = capture(repo, script="latin.py", skip_task_init=True)
    assert_reproduces(tmp_path, repo, prepared, injected_into=None)


def test_an_entry_point_that_would_not_travel_says_why(tmp_path: Path) -> None:
    # a git-ignored script, or one named like a secret, was "train.py is not in the repository" (it is)
    repo = make_repo(tmp_path)
    repo.write(".gitignore", "scratch/\n")
    repo.commit("ignore scratch")
    repo.write("scratch/try.py", "print(1)\n")
    with pytest.raises(UserError) as ignored:
        capture(repo, script="scratch/try.py")
    assert ignored.value.message.startswith("--script scratch/try.py is ignored by git")
    assert "--skip-repo-detection" in ignored.value.hint
    repo.write(".env_setup.py", "print(1)\n")
    with pytest.raises(UserError) as secret:
        capture(repo, script=".env_setup.py")
    assert secret.value.message == "--script .env_setup.py looks like a secret file, which stays behind"
    assert capture(repo, script=".env_setup.py", include_secrets=True).source is not None


def test_shell_and_module_entry_points_are_not_injected(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    shell = capture(repo, script="run.sh")
    assert shell.source is not None and shell.source.patch == ""
    assert shell.document["script"]["binary"] == "/bin/bash"
    module = prepare(Request(project="proj", name="module", folder=str(repo.work), module="src.pkg.model"))
    assert module.source is not None
    assert module.source.entry_point == "-m src.pkg.model" and module.source.patch == ""


def test_a_module_entry_point_must_be_importable_where_the_task_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)

    def module(name: str, *packages: str) -> None:
        prepare(Request(project="proj", name="module", folder=str(repo.work), module=name,
                        packages=list(packages)))  # fmt: skip

    module("src.pkg.model")  # in the checkout
    module("http.server")  # the standard library
    module("pytest")  # installed here
    module("torch.distributed.run", "torch")  # named in the task's requirements
    with pytest.raises(UserError) as caught:
        module("src.pkg.nosuch")
    assert (
        caught.value.message
        == "--module src.pkg.nosuch: the checkout's package src (src/) has no module src.pkg.nosuch"
    )
    with pytest.raises(UserError) as caught:
        module("nosuchpackage.main")
    assert caught.value.message.startswith(
        "--module nosuchpackage.main: no module nosuchpackage.main in the checkout"
    )
    assert "--packages" in caught.value.hint


def test_edits_to_files_marked_assume_unchanged_or_skip_worktree_travel(tmp_path: Path) -> None:
    # the snapshot's index copies the user's, marks included: `git add -A` passed over these edits, and the
    # task ran the committed files; the marks are cleared in the copy only
    repo = make_repo(tmp_path)
    repo.git("update-index", "--assume-unchanged", "README.md", "run.sh")
    repo.git("update-index", "--skip-worktree", "src/pkg/model.py")
    repo.write("README.md", "edited, marked assume-unchanged\n")
    repo.write("src/pkg/model.py", "def fit(epochs, lr):\n    return 7.0  # skip-worktree\n")
    (repo.work / "run.sh").unlink()  # a deletion travels too
    before = _state(repo), repo.git("ls-files", "-v")
    prepared = capture(repo)
    assert prepared.source is not None
    assert {"README.md", "src/pkg/model.py", "run.sh"} <= _patched(prepared.source.patch)
    assert_reproduces(tmp_path, repo, prepared)
    assert (_state(repo), repo.git("ls-files", "-v")) == before  # the user's marks stay


def test_files_a_sparse_checkout_leaves_out_keep_travelling_as_committed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.git("sparse-checkout", "set", "--no-cone", "/*", "!/data/", "!/src/pkg/")
    assert not (repo.work / "data").exists() and not (repo.work / "src" / "pkg").exists()
    repo.write("data/table.csv", "edited,outside the patterns\n")  # put there by the user
    prepared = capture(repo)
    assert prepared.source is not None
    assert _patched(prepared.source.patch) == {"train.py", "data/table.csv"}  # no deletion
    checkout = reproduce(tmp_path, prepared.source.repository, prepared.source.commit, prepared.source.patch)
    assert (checkout / "data" / "table.csv").read_text() == "edited,outside the patterns\n"
    committed = (FIXTURES / "basic" / "src" / "pkg" / "model.py").read_bytes()
    assert (checkout / "src" / "pkg" / "model.py").read_bytes() == committed


def _patched(patch: str) -> set[str]:
    return {line.split(" b/", 1)[1] for line in patch.splitlines() if line.startswith("diff --git ")}


def test_a_symlinked_script_runs_as_the_symlink(tmp_path: Path) -> None:
    # `python link.py` runs the symlink (its __file__ is link.py); the task ran sub/real.py, its target
    repo = make_repo(tmp_path)
    repo.write("sub/real.py", "from pathlib import Path\nprint(Path(__file__))\n")
    (repo.work / "link.py").symlink_to(Path("sub") / "real.py")
    repo.commit("a symlinked script")
    repo.git("push", "-q")
    prepared = capture(repo, script="link.py")
    found = prepared.source
    assert found is not None
    assert (found.entry_point, found.entry_file) == ("link.py", "sub/real.py")
    assert found.entry_text == (repo.work / "sub" / "real.py").read_text()
    checkout = reproduce(tmp_path, found.repository, found.commit, found.patch)
    assert os.readlink(checkout / "link.py") == os.path.join("sub", "real.py")  # still the symlink
    assert INJECTED in (checkout / "sub" / "real.py").read_text()  # Task.init() in the file it runs
    assert tree_of(checkout) == found.tree
    (repo.work / "sub" / "link.py").symlink_to(Path("..") / "train.py")  # through a symlinked dir too
    (repo.work / "linked").symlink_to("sub")
    inner = capture(repo, script="linked/link.py").source
    assert inner is not None and (inner.entry_point, inner.entry_file) == ("sub/link.py", "train.py")


def test_a_script_symlinked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    outside = tmp_path / "outside.py"
    outside.write_text("print('not in the repository')\n")
    (repo.work / "out.py").symlink_to(outside)
    with pytest.raises(UserError) as caught:
        capture(repo, script="out.py")
    assert caught.value.message == (
        f"--script {repo.work / 'out.py'} is a symlink to {outside}, outside the repository {repo.work}"
    )


def test_submodule_commits_are_recorded(tmp_path: Path) -> None:
    inner = make_repo(tmp_path / "inner", remote=False)
    inner.write("helper.py", "import attr\n")
    inner.commit("a helper")
    repo = make_repo(tmp_path / "outer")
    git(
        repo.work,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        str(inner.work),
        "vendor/inner",
    )
    repo.commit("add submodule")
    repo.git("push", "-q")
    prepared = capture(repo)
    assert prepared.source is not None
    assert prepared.source.submodules == {"vendor/inner": inner.git("rev-parse", "HEAD")}
    assert any("submodules" in note for note in prepared.notes)
    assert not any("uncommitted changes" in note for note in prepared.notes)
    (repo.work / "vendor" / "inner" / "helper.py").write_text("import attr  # edited\n")
    edited = capture(repo)  # the edit is the submodule's: it stays behind, and the note names it
    assert any(note.startswith("submodule vendor/inner has uncommitted changes") for note in edited.notes)
    (repo.work / "vendor" / "inner" / "helper.py").write_text("import attr\n")
    # a submodule's files travel (at the recorded commit), so its imports count for the requirements
    repo.write("uses_sub.py", "from vendor.inner import helper\n")
    uses = capture(repo, script="uses_sub.py")
    assert uses.requirements is not None and uses.requirements.source == "detected"
    assert any(line.startswith("attrs") for line in uses.requirements.lines)
    assert not any("git ignores" in note for note in uses.notes)


def test_a_git_repository_inside_the_checkout_is_named_as_such(tmp_path: Path) -> None:
    # not a submodule (no .gitmodules names it): `git add` takes it for one, so it was called "submodule
    # vendor differs from the commit", and nothing said its files stay behind
    repo = make_repo(tmp_path / "outer")
    (repo.work / "vendor").mkdir()
    git(repo.work / "vendor", "init", "-q")
    repo.write("vendor/lib.py", "VALUE = 1\n")
    git(repo.work / "vendor", "add", "-A")
    git(repo.work / "vendor", "commit", "-q", "-m", "its own")
    prepared = capture(repo)
    assert prepared.source is not None and "vendor" not in prepared.source.patch
    assert (
        "vendor/ is a git repository of its own inside the checkout (not a submodule): its files do not "
        "travel; add it as a submodule, or commit its files in this repository"
    ) in prepared.notes
    assert not any(note.startswith("submodule vendor") for note in prepared.notes)
    # a submodule added and not committed yet keeps its note
    inner = make_repo(tmp_path / "inner", remote=False)
    git(repo.work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(inner.work), "sub")
    added = capture(repo)
    assert "submodule sub differs from the commit; only committed submodule pointers travel" in added.notes
    assert not any(note.startswith("sub/ is a git repository") for note in added.notes)


# ---- the user's repository is only read -----------------------------------------------------------


def _state(repo: Repo) -> tuple[str, bytes, int, str]:
    index = (repo.work / ".git" / "index").read_bytes()
    objects = sum(1 for _ in (repo.work / ".git" / "objects").rglob("*") if _.is_file())
    return repo.git("status", "--porcelain=v1", "-uall"), index, objects, repo.git("stash", "list")


def test_the_work_tree_index_and_objects_are_untouched(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("src/pkg/model.py", "def fit(e, l):\n    return 3.0\n")
    repo.git("add", "src/pkg/model.py")
    repo.write("README.md", "unstaged\n")
    repo.write("untracked.txt", "new\n")
    before = _state(repo)
    mtimes = {p: p.stat().st_mtime_ns for p in repo.work.rglob("*") if ".git" not in p.parts}
    capture(repo)
    assert _state(repo) == before
    assert {p: p.stat().st_mtime_ns for p in repo.work.rglob("*") if ".git" not in p.parts} == mtimes


def test_a_submodules_index_is_untouched(tmp_path: Path) -> None:
    # `git add` asks each submodule whether it is dirty (a `git status` in it), which rewrites the
    # submodule's index when a file's stat changed; the capture must leave it as it was
    inner = make_repo(tmp_path / "inner", remote=False)
    repo = make_repo(tmp_path / "outer")
    git(repo.work, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(inner.work), "sub")
    repo.commit("add submodule")
    touched = repo.work / "sub" / "train.py"
    touched.write_bytes(touched.read_bytes())  # same content, a new stat: stale in the submodule's index
    os.utime(touched, ns=(1_000_000_000, 1_000_000_000))
    index = Path(git(repo.work / "sub", "rev-parse", "--path-format=absolute", "--git-path", "index"))
    before = (index.read_bytes(), index.stat().st_mtime_ns)
    capture(repo)
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before


# ---- guards and URLs -------------------------------------------------------------------------------


def test_patch_size_guard_names_the_largest_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.write("big/blob.bin", os.urandom(300_000))
    repo.write("small.txt", "x\n")
    with pytest.raises(UserError) as e:
        capture(repo, max_patch_size=200_000)
    assert "big/blob.bin" in str(e.value) and "--max-patch-size" in str(e.value)
    assert capture(repo).source is not None  # the default limit (5 MB) lets it through


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://user:s3cr3t@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://ghp_token123@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("http://u:p@host:8080/r.git", "http://host:8080/r.git"),
        ("ssh://git:pw@host/r.git", "ssh://git@host/r.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
    ],
)
def test_credentials_never_leave(url: str, public: str) -> None:
    assert urls.public_url(url) == public


def test_credentials_in_the_remote_are_not_recorded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.git("remote", "set-url", "origin", "https://someone:hunter2@example.com/org/repo.git")
    prepared = capture(repo)
    assert prepared.source is not None
    assert prepared.source.repository == "https://example.com/org/repo.git"
    assert "hunter2" not in repr(prepared.document)


def test_remote_and_branch_names_that_read_as_options_go_nowhere(tmp_path: Path) -> None:
    # a remote named like an option reached `git remote get-url` as one (and failed the capture); a
    # branch named so was recorded, for a launcher to refuse or another agent to hand to git
    repo = make_repo(tmp_path)
    name = "--upload-pack=touch"
    repo.git("push", "-q", "origin", "HEAD:refs/heads/-oEvil")
    repo.git("config", f"remote.{name}.url", str(repo.origin))
    repo.git("config", f"remote.{name}.fetch", f"+refs/heads/*:refs/remotes/{name}/*")
    repo.git("fetch", "-q", "--", name)
    repo.git("config", "branch.main.remote", name)
    repo.git("config", "branch.main.merge", "refs/heads/-oEvil")
    prepared = capture(repo)
    found = prepared.source
    assert found is not None
    assert (found.repository, found.branch) == (str(repo.origin), "")
    assert found.commit == repo.git("rev-parse", "HEAD")
    assert_reproduces(tmp_path, repo, prepared)


def test_unresolved_merge_conflicts_are_a_clear_error(tmp_path: Path) -> None:
    # the conflicted files, markers and all, travelled in the patch without a word
    repo = make_repo(tmp_path)
    repo.git("checkout", "-q", "-b", "other")
    repo.write("README.md", "theirs\n")
    repo.commit("theirs")
    repo.git("checkout", "-q", "main")
    repo.write("README.md", "ours\n")
    repo.commit("ours")
    with pytest.raises(AssertionError):
        repo.git("merge", "-q", "other")
    before = _state(repo)
    with pytest.raises(UserError) as e:
        capture(repo)
    assert e.value.message == f"the repository {repo.work} has unresolved merge conflicts in README.md"
    assert _state(repo) == before
    repo.git("add", "README.md")  # resolved (as it stands): it travels
    assert capture(repo).source is not None


def test_empty_repository_is_a_clear_error(tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    git(work, "init", "-q")
    (work / "train.py").write_text("print(1)\n")
    with pytest.raises(UserError, match="no commits yet"):
        prepare(Request(project="proj", name="empty", folder=str(work), script="train.py"))


# ---- remote --repo --------------------------------------------------------------------------------


@pytest.fixture
def remote(tmp_path: Path) -> Repo:
    repo = make_repo(tmp_path, "header")
    repo.git("tag", "v1.0")
    repo.write("train.py", repo.work.joinpath("train.py").read_text() + "# after the tag\n")
    repo.commit("after tag")
    repo.git("push", "-q", "origin", "main", "--tags")
    repo.git("checkout", "-q", "-b", "other")
    repo.write("other.txt", "other branch\n")
    repo.commit("other branch")
    repo.git("push", "-q", "origin", "other")
    return repo


def _remote(remote: Repo, **flags: object) -> Prepared:
    return prepare(
        Request(project="proj", name="remote", repo=str(remote.origin), script="train.py", **flags)
    )  # type: ignore[arg-type]


def test_repo_defaults_to_the_remotes_default_branch(remote: Repo, tmp_path: Path) -> None:
    prepared = _remote(remote)
    found = prepared.source
    assert found is not None
    assert found.branch == "main" and found.commit == remote.git("rev-parse", "main")
    checkout = reproduce(tmp_path, found.repository, found.commit, found.patch, unidiff_zero=True)
    text = (checkout / "train.py").read_text()
    assert text.startswith("#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n")
    assert text.index("from __future__ import division") < text.index("from clearml import Task")
    assert tree_of(checkout) == found.tree


def test_repo_with_branch_tag_and_commit(remote: Repo) -> None:
    other = _remote(remote, branch="other").source
    assert other is not None and (other.branch, other.commit) == ("other", remote.git("rev-parse", "other"))
    tagged = _remote(remote, branch="v1.0").source
    assert tagged is not None and (tagged.tag, tagged.commit) == (
        "v1.0",
        remote.git("rev-parse", "v1.0^{commit}"),
    )
    first = remote.git("rev-parse", "main~1")
    pinned = _remote(remote, commit=first[:10]).source
    assert pinned is not None and pinned.commit == first


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"branch": "nope"}, "no branch or tag 'nope'"),
        ({"branch": "-oEvil"}, "--branch '-oEvil' is not a git branch or tag name"),
        ({"commit": "0123456789abcdef0123456789abcdef01234567"}, "is not on the remote"),
        ({"commit": "not-a-sha"}, "is not a commit id"),
        ({"script": "missing.py"}, "not in the repository"),
        # a path is a path: no glob, no pathspec magic, nothing above the root (each once recorded as given)
        ({"script": "tr*.py"}, "--script tr\\*.py is not in the repository"),
        ({"script": ":(glob)**/train.py"}, "is not in the repository"),
        ({"script": ":!nothing"}, "is not in the repository"),
        ({"script": "../../etc/passwd"}, "is not in the repository"),
        ({"cwd": "../.."}, "--cwd ../.. is outside the repository"),
        ({"cwd": "nowhere"}, "--cwd nowhere is not a directory of the repository at that commit"),
        ({"cwd": "train.py"}, "--cwd train.py is not a directory"),
    ],
)
def test_repo_errors(remote: Repo, flags: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        fields = {
            "project": "proj",
            "name": "remote",
            "repo": str(remote.origin),
            "script": "train.py",
            **flags,
        }
        prepare(Request(**fields))


def test_unreachable_repo_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="git ls-remote"):
        prepare(
            Request(project="proj", name="nowhere", repo=str(tmp_path / "missing.git"), script="train.py")
        )


def test_a_commit_records_the_branch_it_is_on_or_none(remote: Repo) -> None:
    other_tip = remote.git("rev-parse", "other")
    on_other = _remote(remote, commit=other_tip).source
    assert on_other is not None and (on_other.branch, on_other.commit) == ("other", other_tip)
    below_main = _remote(remote, commit=remote.git("rev-parse", "main~1")).source
    assert below_main is not None and below_main.branch == "main"  # on main, not its tip
    remote.write("other2.txt", "more\n")
    remote.commit("grows other")
    remote.git("push", "-q", "origin", "other")
    inside_other = _remote(remote, commit=other_tip).source  # no longer a tip, and not on main
    assert inside_other is not None and (inside_other.branch, inside_other.commit) == ("", other_tip)
    with pytest.raises(UserError, match=f"commit {other_tip[:12]} is not on branch main"):
        _remote(remote, branch="main", commit=other_tip)


def test_an_unpushed_branch_records_the_branch_it_forked_from(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    forked_from = repo.git("rev-parse", "main")
    repo.git("checkout", "-q", "-b", "aaa-grown")  # a pushed branch that grew from the same commit
    repo.write("grown.txt", "grown\n")
    repo.commit("grown")
    repo.git("push", "-q", "origin", "aaa-grown")
    repo.git("checkout", "-q", "-b", "exp", "main")  # forked from main, never pushed
    repo.write("exp.txt", "local work\n")
    repo.commit("local work")
    prepared = capture(repo)
    assert prepared.source is not None
    assert (prepared.source.branch, prepared.source.commit) == ("main", forked_from)
    assert_reproduces(tmp_path, repo, prepared)


def test_repo_with_a_cwd(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for cwd in ("src", "./src/", "/src"):
        request = Request(project="proj", name="cwd", repo=str(repo.origin), script="run.py", cwd=cwd)
        found = prepare(request).source
        assert found is not None and (found.working_dir, found.entry_point) == ("src", "run.py"), cwd


def test_a_remote_with_only_tags_is_a_clear_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, push=False)
    assert repo.origin is not None
    repo.git("push", "-q", "origin", "HEAD:refs/tags/v1", "HEAD:refs/heads/-oEvil")
    with pytest.raises(UserError, match="has only tags"):
        prepare(Request(project="proj", name="tags only", repo=str(repo.origin), script="train.py"))
    tagged = prepare(
        Request(project="proj", name="tag", repo=str(repo.origin), script="train.py", branch="v1")
    )
    assert tagged.source is not None and (tagged.source.branch, tagged.source.tag) == ("", "v1")


def test_files_git_stores_with_other_line_endings_are_named(tmp_path: Path) -> None:
    """`* text=auto` and a file written with CRLF: git stores it with LF, so the task gets LF, not the
    user's bytes. Said in a note naming the file (it was silent); a file with LF is not named."""
    repo = make_repo(tmp_path)
    repo.write(".gitattributes", "* text=auto\n")
    repo.git("add", ".gitattributes")
    repo.commit("line endings")
    repo.write("data.csv", b"x,y\r\n1,2\r\n")
    repo.write("plain.csv", b"x,y\n1,2\n")
    prepared = capture(repo)
    [note] = [note for note in prepared.notes if "CRLF" in note]
    assert note.startswith("data.csv: CRLF line endings") and "plain.csv" not in note
