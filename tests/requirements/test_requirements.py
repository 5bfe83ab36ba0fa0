"""What the task needs installed: precedence, the import closure, mapping and pinning, and the checks.

The fixture trees under fixtures/repos/reqs_* are read as they are (a local checkout's work tree) and, where
it matters, through a real git repository and the agent's reproduction of it. Which third-party packages are
installed is read from this interpreter's environment, so the expectations hold whatever is installed."""

from __future__ import annotations

import json
import os
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from clearml_task import requirements
from clearml_task.errors import UserError
from clearml_task.requirements import Decision, decide, directory_reader, mapping_reader, read_given
from clearml_task.requirements.files import check_line, name_of
from clearml_task.requirements.imports import scan_python
from clearml_task.requirements.installed import Installed, guess, pipreqs_names
from clearml_task.source import EntryPoint, capture_local, capture_standalone
from testing.pins import expected
from testing.repos import FIXTURES, files, make_repo, reproduce


def detect(fixture: str, entry: str = "train.py", **kwargs: Any) -> Decision:
    return decide(read=directory_reader(FIXTURES / fixture), entry_point=entry, **kwargs)


def names(decision: Decision) -> set[str]:
    return {name_of(line) for line in decision.lines}


def origin(decision: Decision, line: str) -> str:
    return next(r.origin for r in decision.requirements if r.line == line)


# ------------------------------------------------------------------------------------------ detection
def test_the_import_closure_maps_aliased_imports_to_their_distributions() -> None:
    decision = detect("reqs_detect")
    assert decision.source == "detected"
    wanted = [
        expected("beautifulsoup4"),  # bs4
        "msgpack" if expected("msgpack") == "msgpack" else expected("msgpack"),  # importlib.import_module
        expected("numpy"),
        expected("opencv-python"),  # cv2
        expected("Pillow"),  # PIL
        expected("PyYAML"),  # yaml
        expected("requests"),
        expected("rich"),  # optional, installed
        expected("scikit-image"),  # skimage
        expected("scikit-learn"),  # sklearn
        expected("scipy"),  # mylib/nn/layers.py, reached through relative imports
        expected("torch"),  # mylib/models.py
        expected("tqdm"),  # mylib/helpers.py
    ]
    assert decision.lines == sorted(wanted, key=str.lower)
    assert decision.pip == decision.lines


def test_installed_distributions_are_pinned_to_the_installed_version() -> None:
    decision = detect("reqs_detect")
    assert f"PyYAML=={metadata.version('PyYAML')}" in decision.lines
    assert f"requests=={metadata.version('requests')}" in decision.lines
    assert origin(decision, f"PyYAML=={metadata.version('PyYAML')}").startswith("import yaml (train.py:14)")


def test_modules_not_installed_are_named_by_the_tables_and_left_unpinned() -> None:
    decision = detect("reqs_detect")
    for module, distribution in [("cv2", "opencv-python"), ("skimage", "scikit-image"), ("PIL", "Pillow"),
                                 ("sklearn", "scikit-learn")]:  # fmt: skip
        line = expected(distribution)
        assert line in decision.lines
        if line == distribution:  # not installed here
            assert "unpinned" in origin(decision, line)
            assert f" {module}" in origin(decision, line)


def test_origins_name_the_import_and_where_it_is() -> None:
    decision = detect("reqs_detect")
    assert origin(decision, expected("opencv-python")).startswith("import cv2 (train.py:9)")
    assert origin(decision, expected("torch")).startswith("import torch (mylib/models.py:1)")
    assert origin(decision, expected("scikit-learn")).startswith("import sklearn.svm (train.py:12)")


def test_the_repositorys_own_modules_are_not_requirements() -> None:
    decision = detect("reqs_detect")
    # mylib is the repository's; tokenizers is a local package shadowing the PyPI distribution of that name
    assert not names(decision) & {"mylib", "tokenizers", "helpers", "models", "layers", "nn"}


def test_a_local_module_shadows_an_installed_distribution(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "reqs_detect")
    repo.write("yaml/__init__.py", "def safe_load(text):\n    return text\n")
    decision = decide(read=directory_reader(repo.work), entry_point="train.py")
    assert "pyyaml" not in names(decision)
    assert expected("requests") in decision.lines


def test_a_directory_without_modules_hides_no_package(tmp_path: Path) -> None:
    (tmp_path / "wandb" / "run-1").mkdir(parents=True)  # what wandb leaves in the working dir
    (tmp_path / "wandb" / "run-1" / "config.yaml").write_text("lr: 0.1\n")
    (tmp_path / "train.py").write_text("import wandb\nfrom wandb import init\n")
    assert decide(read=directory_reader(tmp_path), entry_point="train.py").lines == [expected("wandb")]


def test_relative_imports_are_followed() -> None:
    decision = detect("reqs_detect", "-m mylib.models")
    # mylib/models.py -> from .nn.layers import dense -> scipy; from .. import helpers -> tqdm
    assert decision.lines == sorted([expected("scipy"), expected("torch"), expected("tqdm")], key=str.lower)
    assert origin(decision, expected("scipy")).startswith("import scipy.sparse (mylib/nn/layers.py:1)")


def test_optional_imports_are_kept_only_when_installed() -> None:
    decision = detect("reqs_detect")
    assert expected("rich") in decision.lines  # try: from rich.console import Console / except ImportError
    assert "ujson-fixture-never-installed" not in names(decision)
    left_out = "optional import ujson_fixture_never_installed (train.py:24) is not installed here: left out"
    assert left_out in decision.notes


def test_type_checking_imports_are_ignored() -> None:
    assert "pandas" not in names(detect("reqs_detect"))
    found = scan_python(
        textwrap.dedent(
            """\
            import typing
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                import pandas
            if typing.TYPE_CHECKING:
                import polars
            else:
                import numpy
            """
        ),
        "x.py",
    )
    assert [i.module for i in found] == ["typing", "typing", "numpy"]


def test_guards_make_imports_optional() -> None:
    found = scan_python(
        textwrap.dedent(
            """\
            import contextlib, sys
            try:
                import ujson as json
            except (ValueError, ImportError):
                import simplejson as json
            try:
                import toml
            except KeyError:
                pass
            if sys.version_info < (3, 11):
                import tomli
            with contextlib.suppress(ImportError):
                import orjson
            def later():
                import torch
            """
        ),
        "x.py",
    )
    assert {i.module: i.optional for i in found} == {
        "contextlib": False, "sys": False, "ujson": True, "simplejson": True, "toml": False, "tomli": True,
        "orjson": True, "torch": False,
    }  # fmt: skip


def test_a_script_the_entry_point_never_imports_is_not_read() -> None:
    decision = detect("reqs_detect")
    assert not names(decision) & {"tensorflow", "pandas", "matplotlib"}  # tools/unrelated.py


def test_a_notebook_entry_point_is_read() -> None:
    decision = detect("reqs_detect", "notebooks/eda.ipynb")
    # seaborn and yaml from the cells; scipy, torch and tqdm through `from mylib import helpers`
    wanted = [expected(d) for d in ("PyYAML", "scipy", "seaborn", "torch", "tqdm")]
    assert decision.lines == sorted(wanted, key=str.lower)
    assert origin(decision, expected("seaborn")).startswith("import seaborn (notebooks/eda.ipynb cell 1:3)")
    assert any("cell 4 does not parse" in note for note in decision.notes)


def test_a_literal_import_module_call_is_followed() -> None:
    decision = detect("reqs_detect")
    line = expected("msgpack")
    assert origin(decision, line).startswith("importlib.import_module('msgpack') (train.py:36)")


def test_a_file_that_does_not_parse_is_noted_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("import helper\nimport requests\n")
    (tmp_path / "helper.py").write_text("def broken(:\n    pass\nimport yaml\n")
    decision = decide(read=directory_reader(tmp_path), entry_point="train.py")
    assert decision.lines == [expected("requests")]
    assert any(note.startswith("helper.py does not parse") for note in decision.notes)


def test_a_standalone_script_is_read_from_its_text(tmp_path: Path) -> None:
    decision = decide(entry_point="job.py", entry_text="import yaml\nimport requests\n", declared=False)
    assert decision.lines == [expected("PyYAML"), expected("requests")]


def test_a_shell_entry_point_has_nothing_to_detect() -> None:
    decision = decide(read=directory_reader(FIXTURES / "basic"), entry_point="run.sh")
    note = "run.sh is not a Python file or notebook: no imports to detect"
    assert decision == Decision("detected", notes=(note,))


def test_local_version_labels_vcs_installs_and_namespaces(tmp_path: Path) -> None:
    site = tmp_path / "site"

    def dist(name: str, version: str, files: list[str], **extra: str) -> None:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"  # as installers name it
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text("".join(f"{path},,\n" for path in files))
        for file_name, text in extra.items():
            (info / file_name.replace("_json", ".json")).write_text(text)

    dist("fakegpu", "2.1.0+cu121", ["fakegpu/__init__.py"])
    vcs = {"url": "https://example.com/org/fromgit.git", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}
    dist("fromgit", "0.1.dev3", ["fromgit.py"], direct_url_json=json.dumps(vcs))
    dist("ns-alpha", "1.0", ["nsfake/alpha/__init__.py"])
    dist("ns-beta", "2.0", ["nsfake/beta/__init__.py"])
    (tmp_path / "train.py").write_text("import fakegpu\nimport fromgit\nfrom nsfake.beta import thing\n")
    decision = decide(read=directory_reader(tmp_path), entry_point="train.py", site=[str(site)])
    assert decision.lines == ["fakegpu==2.1.0", "fromgit @ git+https://example.com/org/fromgit.git@abc123",
                              "ns-beta==2.0"]  # fmt: skip
    assert "installed 2.1.0+cu121, local label dropped" in origin(decision, "fakegpu==2.1.0")


# ------------------------------------------------------------------------------ what the repository declares
def test_requirements_txt_from_the_root_down_to_the_working_dir_wins_over_pyproject() -> None:
    decision = detect("reqs_declared", "train.py", working_dir="app")
    assert decision.source == "requirements.txt"
    assert decision.files == ("requirements.txt", "app/requirements.txt")
    assert decision.lines == [
        "numpy<2,>=1.24",
        "PyYAML",
        "requests>=2.20",
        "--extra-index-url https://download.pytorch.org/whl/cpu",
        "torch >=2.1",
        'scikit-learn==1.5.0 ; python_version >= "3.9"',
    ]
    assert origin(decision, "numpy<2,>=1.24") == (
        "requirements/base.txt:1, constrained by requirements/constraints.txt:1"
    )
    assert decision.pip is None  # the launcher installs the repository's files itself
    assert any("constraint on pandas" in note for note in decision.notes)


def test_pyproject_in_the_working_dir_before_the_root() -> None:
    decision = detect("reqs_pyproject", "train.py", working_dir="app")
    assert (decision.source, decision.lock) == ("pyproject.toml", None)
    assert decision.files == ("app/pyproject.toml",)
    torch = "torch==2.3.1 ; sys_platform == 'linux'"
    assert decision.lines == ["numpy>=1.26", torch, "transformers[torch]>=4.40"]
    assert origin(decision, "numpy>=1.26") == "app/pyproject.toml [project] dependencies #1"
    assert detect("reqs_pyproject").lines == ["flask>=3"]


def test_a_uv_lock_means_uv_sync_locked() -> None:
    decision = detect("reqs_uvlock")
    assert (decision.source, decision.lock) == ("uv.lock", "uv.lock")
    assert decision.files == ("pyproject.toml", "uv.lock")
    assert decision.lines == ["six==1.16.0"]
    assert "uv sync --locked" in decision.title


def test_a_pyproject_without_a_project_table_declares_nothing() -> None:
    assert detect("reqs_detect").source == "detected"  # its pyproject.toml only configures a tool


def test_a_bad_line_in_the_repositorys_requirements_names_the_line() -> None:
    with pytest.raises(UserError, match=r"requirements.txt:2: 'scikit-learn=>1.4' is not a valid"):
        detect("reqs_bad")


# ----------------------------------------------------------------------------------------------- given
def test_requirements_file_includes_and_constraints_are_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "reqs_given")
    decision = decide(given=read_given("reqs.txt", ["scikit-learn", "numpy<2,>=1.26"]))
    assert decision.source == "given"
    hashed = "requests>=2 --hash=sha256:" + "0" * 64
    assert decision.lines == [
        "numpy<2,>=1.26", hashed, "torch<2.4,>=2.0", "--index-url https://pypi.org/simple", "scikit-learn",
    ]  # fmt: skip
    assert origin(decision, "torch<2.4,>=2.0") == "reqs.txt:3, constrained by constraints.txt:2"
    assert origin(decision, hashed) == "base.txt:2"
    assert origin(decision, "scikit-learn") == "--packages"
    assert any("constraint on lightgbm (constraints.txt:3)" in note for note in decision.notes)


@pytest.mark.parametrize(
    ("file", "packages", "message"),
    [
        ("bad.txt", None, r"bad.txt:4: 'torch==2.1 ==2.2' is not a valid requirement"),
        ("missing.txt", None, r"missing.txt:1: '-r not-there.txt' includes not-there.txt, which does not"),
        ("nowhere.txt", None, r"--requirements nowhere.txt does not exist"),
        (".", None, r"--requirements \. is a directory"),
        (None, ["numpy", "pandas=>2"], r"--packages: 'pandas=>2' is not a valid requirement"),
        (None, ["--upgrade numpy"], r"--packages: '--upgrade numpy' is not a requirement or an option"),
        (None, ["-r reqs.txt"], r"--packages '-r reqs.txt': files cannot be included here"),
    ],
)
def test_bad_given_lines_are_errors_naming_the_line(
    monkeypatch: pytest.MonkeyPatch, file: str | None, packages: list[str] | None, message: str
) -> None:
    monkeypatch.chdir(FIXTURES / "reqs_given")
    with pytest.raises(UserError, match=message):
        decide(given=read_given(file, packages))


def test_direct_references_and_options_pass_the_check() -> None:
    for line in ["-e .", "./libs/pkg", "git+https://github.com/org/repo@v1#egg=repo", "pkg @ https://x/p.whl",
                 "https://x/pkg-1.0-py3-none-any.whl", "--find-links=./wheels", "--pre", "--no-index",
                 "torch>=2 ; sys_platform == 'linux'", "uvicorn[standard]==0.30"]:  # fmt: skip
        check_line(line, "--packages")


# ---------------------------------------------------------------------------------------------- precedence
def test_precedence() -> None:
    def run(**given: Any) -> Decision:
        read = directory_reader(FIXTURES / "reqs_declared")
        return decide(read=read, working_dir="app", entry_point="train.py", **given)

    given_file = str(FIXTURES / "reqs_given" / "base.txt")
    assert run(force_none=True, given=read_given(given_file, ["x"])) == Decision("none")
    assert run(given=read_given(given_file, ["x"])).lines[-1] == "x"
    assert run(given=read_given(None, ["x"])).lines == ["x"]
    assert run().source == "requirements.txt"
    detected = run(declared=False)
    assert detected.source == "detected"
    assert names(detected) == {"numpy", "scikit-learn", "xgboost"}


def test_clearml_is_added_when_task_init_is_injected() -> None:
    assert decide(given=read_given(None, ["numpy"]), add_clearml=True).lines == ["numpy", "clearml"]
    assert decide(given=read_given(None, ["numpy"]), add_clearml=False).lines == ["numpy"]
    assert decide(given=read_given(None, ["ClearML>=1.16"]), add_clearml=True).lines == ["ClearML>=1.16"]
    assert decide(force_none=True, add_clearml=True).lines == []
    declared = detect("reqs_uvlock", add_clearml=True)
    assert declared.lines[-1] == "clearml" and declared.extra == ["clearml"]
    assert declared.pip == declared.lines  # what ClearML's agent installs: the declared lines and the SDK
    assert detect("reqs_uvlock", add_clearml=False).pip is None
    assert detect("reqs_detect", add_clearml=True).pip[-1] == "clearml"  # type: ignore[index]


def test_a_poetry_lock_is_what_a_poetry_project_declares() -> None:
    poetry = detect("reqs_poetry", add_clearml=True)
    assert (poetry.source, poetry.files, poetry.lock) == ("poetry.lock", ("pyproject.toml", "poetry.lock"),
                                                          "poetry.lock")  # fmt: skip
    assert poetry.lines == ["six==1.17.0", "clearml"] and poetry.extra == ["clearml"]
    assert poetry.pip == ["six==1.17.0", "clearml"]  # for ClearML's agent
    assert "poetry install" in poetry.title


def test_what_the_document_records() -> None:
    assert decide(force_none=True).script_requirements() == {"source": "none"}
    assert decide(given=read_given(None, ["numpy"]), add_clearml=True).script_requirements() == {
        "source": "given", "pip": "numpy\nclearml\n",
    }  # fmt: skip
    assert detect("reqs_uvlock", add_clearml=True).script_requirements() == {
        "source": "uv.lock", "files": ["pyproject.toml", "uv.lock"], "lock": "uv.lock", "extra": "clearml\n",
        "pip": "\n".join(detect("reqs_uvlock").lines) + "\nclearml\n",
    }  # fmt: skip
    assert detect("reqs_declared", working_dir="app").script_requirements() == {
        "source": "requirements.txt", "files": ["requirements.txt", "app/requirements.txt"],
    }  # fmt: skip


def test_given_lines_with_clearml_added(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FIXTURES / "reqs_given")
    assert decide(given=read_given("base.txt", ["six"]), add_clearml=True).lines == [
        "numpy", "requests>=2 --hash=sha256:" + "0" * 64, "six", "clearml",
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------ readers
def test_the_remote_reader_sees_what_the_agent_checks_out(tmp_path: Path) -> None:
    """The commit plus the patch, read from memory (as for --repo), decides as the local work tree does."""
    repo = make_repo(tmp_path, "reqs_detect")
    repo.write("mylib/helpers.py", "import tqdm\nimport jinja2\n")  # uncommitted: travels in the patch
    source = capture_local(repo.work, EntryPoint(repo.work / "train.py", None, None))
    assert repo.origin is not None
    checkout = reproduce(tmp_path, str(repo.origin), source.commit, source.patch)
    tree = {path: content for path, (content, _) in files(checkout).items() if requirements.wanted(path)}
    remote = decide(read=mapping_reader(tree), entry_point="train.py")
    local = decide(read=directory_reader(repo.work), entry_point="train.py")
    assert remote == local
    assert expected("Jinja2") in remote.lines


def test_readers_answer_directories_and_stay_inside(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    for read in (directory_reader(tmp_path), mapping_reader({"pkg/a.py": b"x = 1\n"})):
        assert read("pkg/a.py") == "x = 1\n"
        assert read("pkg/") == "" and read(".") is None and read("./") == ""
        assert read("nope/") is None and read("pkg/b.py") is None
        assert read("../" + tmp_path.name + "/pkg/a.py") is None


def test_the_name_table_comes_from_pipreqs_without_running_it() -> None:
    table = pipreqs_names()
    assert table["sklearn"] == "scikit_learn" and table["yaml"] == "PyYAML"
    assert guess(["sklearn.svm"]) == ("scikit-learn", "named by pipreqs' table")
    assert guess(["google.protobuf.message"]) == (
        "protobuf", "google.protobuf is provided by protobuf"
    )  # fmt: skip
    assert guess(["einops"]) == ("einops", "named as imported")


def test_the_installed_index_maps_as_packages_distributions() -> None:
    ours = {top: {dist.name for dist in dists} for top, dists in Installed().tops.items()}
    assert ours == {top: set(names) for top, names in metadata.packages_distributions().items()}


def test_sys_path_of_another_interpreter() -> None:
    import sys

    found = requirements.sys_path_of(sys.executable)
    assert any(os.path.basename(path) == "site-packages" for path in found)
    assert requirements.sys_path_of("/nonexistent/python") == []


def test_own_modules_are_found_beside_the_script_in_the_working_dir_and_at_the_root(tmp_path: Path) -> None:
    """sys.path at run time: the script's dir, then the working dir and the root (launcher's PYTHONPATH)."""
    for path, text in {
        "jobs/nightly/run.py": "import beside\nimport shared\nimport common\n",
        "jobs/nightly/beside.py": "import yaml\n",
        "jobs/shared.py": "import requests\n",
        "common/__init__.py": "import rich\n",
        "src/unused.py": "import torch\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    decision = decide(read=directory_reader(tmp_path), working_dir="jobs", entry_point="nightly/run.py")
    assert decision.lines == [expected("PyYAML"), expected("requests"), expected("rich")]


def write_tree(root: Path, tree: dict[str, str]) -> None:
    for path, text in tree.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def test_a_sibling_imported_by_name_is_the_projects_not_a_package(tmp_path: Path) -> None:
    """sub/job.py imports sub/utils.py by name (found through the sys.path entry it adds): utils is followed,
    never taken for PyPI's `utils`."""
    write_tree(tmp_path, {
        "main.py": "from sub import job\n",
        "sub/__init__.py": "",
        "sub/job.py": "import os, sys\nsys.path.insert(0, os.path.dirname(__file__))\n"
                      "import utils\nimport localcfg\nfrom helper import X\n",
        "sub/utils.py": "import yaml\n",
        "sub/localcfg.py": "",
        "sub/helper/__init__.py": "X = 1\n",
    })  # fmt: skip
    decision = decide(read=directory_reader(tmp_path), entry_point="main.py")
    assert decision.lines == [expected("PyYAML")]
    assert not decision.notes


def test_a_module_importing_its_own_name_imports_the_package(tmp_path: Path) -> None:
    """wrappers/requests.py importing requests means the package, not itself (nor a file left behind)."""
    write_tree(tmp_path, {"main.py": "from wrappers import requests\n", "wrappers/__init__.py": "",
                          "wrappers/requests.py": "import requests\n"})  # fmt: skip
    read = directory_reader(tmp_path)
    decision = decide(read=read, entry_point="main.py", left_behind=read)
    assert decision.lines == [expected("requests")]
    assert not decision.notes


def test_a_standalone_scripts_local_neighbours_are_not_packages(tmp_path: Path) -> None:
    """A script sent alone: a module beside it, in the working dir or at the root stays behind; it is named
    in a note, never recorded as a package of the same name."""
    write_tree(tmp_path, {
        "jobs/nightly/s.py": "import helper\nimport pkg\nimport shared\nimport common\nimport yaml\n",
        "jobs/nightly/helper.py": "X = 1\n",
        "jobs/nightly/pkg/__init__.py": "import requests\n",
        "jobs/shared.py": "",
        "common.py": "",
    })  # fmt: skip
    script = tmp_path / "jobs" / "nightly" / "s.py"
    source = capture_standalone(script, neighbours=[tmp_path / "jobs", tmp_path])
    decision = decide(entry_point="s.py", entry_text=source.entry_text, declared=False,
                      left_behind=source.left_behind)  # fmt: skip
    assert decision.lines == [expected("PyYAML")]
    stays = "is a local file, not a package: it stays behind, as the script travels alone"
    for statement, line in [
        ("import helper", 1),
        ("import pkg", 2),
        ("import shared", 3),
        ("import common", 4),
    ]:
        assert f"{statement} (s.py:{line}) {stays}" in " ".join(decision.notes)
