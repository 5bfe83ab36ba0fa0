"""inject.py: Task.init() goes where Python allows it, the rest of the file stays byte for byte, and every
injected file is proven to run: compiled, then executed as a script and imported as a module against a fake
clearml package whose Task.init prints a marker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import libcst
import pytest

from clearml_task.errors import UserError
from clearml_task.inject import Injection, _libcst_location, inject_task_init

BLOCK = (
    'if __name__ == "__main__":\n    try:\n        from clearml import Task\n    except ImportError:\n'
    "        pass\n    else:\n        Task.init()\n"
)
MARKER = "TASK_INIT_CALLED"
HINT = "fix the syntax, or pass --skip-task-init"

FAKE_PACKAGES = {
    "clearml/__init__.py": (
        "class Task:\n"
        "    @classmethod\n"
        "    def init(cls, *args, **kwargs):\n"
        f"        print({MARKER!r})\n"
        "        return cls()\n"
    ),
    "wandb/__init__.py": "def init():\n    print('WANDB_INIT')\n",
    "celery/__init__.py": "class Task:\n    @classmethod\n    def init(cls):\n        print('CELERY_INIT')\n",
}

Check = Callable[[str], str]


@pytest.fixture
def check_runs(tmp_path: Path) -> Check:
    """Proves an injected file is valid Python that calls Task.init once as a script and never on import.

    Returns the script's stdout, so tests can also check what ran before what.
    """
    fake = tmp_path / "fake-packages"
    for relative, text in FAKE_PACKAGES.items():
        (fake / relative).parent.mkdir(parents=True, exist_ok=True)
        (fake / relative).write_text(text)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    env = {**os.environ, "PYTHONPATH": str(fake)}

    def check(text: str) -> str:
        data = text.encode("utf-8")  # bytes, so the BOM and the line endings reach Python as on disk
        compile(data, "train.py", "exec", dont_inherit=True)  # fails if `from __future__` is not first
        (scripts / "train.py").write_bytes(data)
        as_script = subprocess.run(
            [sys.executable, str(scripts / "train.py")], capture_output=True, text=True, env=env, timeout=60
        )
        assert as_script.returncode == 0, as_script.stderr
        assert as_script.stdout.count(MARKER) == 1, as_script.stdout
        as_module = subprocess.run(
            [sys.executable, "-c", "import train"],
            capture_output=True,
            text=True,
            env=env,
            cwd=scripts,
            timeout=60,
        )
        assert as_module.returncode == 0, as_module.stderr
        assert MARKER not in as_module.stdout
        return as_script.stdout

    return check


def injected(source: str, filename: str = "train.py") -> str:
    result = inject_task_init(source, filename)
    assert result.text is not None, result.note
    assert result.note.startswith(f"added Task.init() to {filename} at line ")
    return result.text


# -- placement -----------------------------------------------------------------------------------------------


def test_plain_script_gets_the_block_first(check_runs: Check) -> None:
    source = "import os\n\nprint('BODY', os.sep)\n"
    result = inject_task_init(source, "train.py")
    assert result == Injection(
        BLOCK + "\n" + source, "added Task.init() to train.py at line 1 (runs only as a script)"
    )
    assert check_runs(BLOCK + "\n" + source).splitlines() == [MARKER, f"BODY {os.sep}"]


@pytest.mark.parametrize(
    "futures",
    [
        "from __future__ import annotations\n",
        "from __future__ import annotations\nfrom __future__ import division\n",
    ],
    ids=["one-future-import", "two-future-imports"],
)
def test_after_shebang_encoding_docstring_and_future_imports(futures: str, check_runs: Check) -> None:
    head = (
        '#!/usr/bin/env python\n# -*- coding: utf-8 -*-\n"""Train a model.\n\nLong description.\n"""\n'
        + futures
    )
    rest = "\nimport sys\n\n\ndef main() -> None:\n    print('BODY', len(sys.argv))\n\n\nmain()\n"
    text = injected(head + rest)
    assert text == head + "\n" + BLOCK + rest
    assert check_runs(text).splitlines() == [MARKER, "BODY 1"]
    line = head.count("\n") + 2
    assert inject_task_init(head + rest, "train.py").note == (
        f"added Task.init() to train.py at line {line} (runs only as a script)"
    )
    assert text.splitlines()[line - 1] == 'if __name__ == "__main__":'


def test_docstring_only(check_runs: Check) -> None:
    text = injected('"""Nothing but a docstring."""\n')
    assert text == '"""Nothing but a docstring."""\n\n' + BLOCK
    check_runs(text)


def test_docstring_without_final_newline_gets_one(check_runs: Check) -> None:
    text = injected('"""Doc."""')
    assert text == '"""Doc."""\n\n' + BLOCK
    check_runs(text)


def test_empty_file(check_runs: Check) -> None:
    assert inject_task_init("", "train.py") == Injection(
        BLOCK, "added Task.init() to train.py at line 1 (runs only as a script)"
    )
    check_runs(BLOCK)


@pytest.mark.parametrize(
    "source",
    ["# just notes\n# nothing else\n", "# no final newline", "#!/usr/bin/env python\n", "\n\n"],
    ids=["comments", "no-final-newline", "shebang-only", "blank-lines"],
)
def test_comments_only_file(source: str, check_runs: Check) -> None:
    text = injected(source)
    separator = "" if source.endswith("\n\n") else "\n" if source.endswith("\n") else "\n\n"
    assert text == source + separator + BLOCK
    check_runs(text)


def test_comments_right_above_the_first_statement_stay_with_it(check_runs: Check) -> None:
    source = "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\n# Copyright notice\n\n# why os\nimport os\n"
    text = injected(source)
    assert text == (
        "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\n# Copyright notice\n\n"
        + BLOCK
        + "\n# why os\nimport os\n"
    )
    check_runs(text)


def test_shebang_and_encoding_stay_first_even_when_attached_to_code(check_runs: Check) -> None:
    source = "#!/usr/bin/env python\n# vim: set fileencoding=utf-8 :\n# why os\nimport os\n"
    text = injected(source)
    assert (
        text
        == "#!/usr/bin/env python\n# vim: set fileencoding=utf-8 :\n\n" + BLOCK + "\n# why os\nimport os\n"
    )
    check_runs(text)


def test_definition_after_the_block_is_two_blank_lines_away(check_runs: Check) -> None:
    source = '"""Doc."""\n\n# helper\n@staticmethod\ndef helper():\n    pass\n'
    text = injected(source)
    assert text == '"""Doc."""\n\n' + BLOCK + "\n\n# helper\n@staticmethod\ndef helper():\n    pass\n"
    check_runs(text)


def test_future_import_check_is_real() -> None:
    """compile() in check_runs is what proves `from __future__` stayed first: it rejects the wrong order."""
    with pytest.raises(SyntaxError, match="__future__"):
        compile(BLOCK + "from __future__ import annotations\n", "train.py", "exec", dont_inherit=True)


# -- already instrumented ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("from clearml import Task\n\ntask = Task.init(project_name='p', task_name='t')\n", 3),
        ("import clearml\n\nclearml.Task.init()\n", 3),
        ("from clearml import Task as T\nT.init()\n", 2),
        ("import clearml as cm\n\n\ndef main():\n    cm.Task.init()\n", 5),
        ("def main():\n    from clearml.task import Task\n\n    return Task.init()\n", 4),
        ("from clearml import *\n\nTask.init()\n", 3),
    ],
    ids=[
        "Task.init",
        "clearml.Task.init",
        "alias",
        "module-alias-in-function",
        "clearml.task",
        "star-import",
    ],
)
def test_already_calls_task_init(source: str, line: int) -> None:
    assert inject_task_init(source, "train.py") == Injection(
        None, f"train.py already calls Task.init() at line {line}; nothing injected"
    )


@pytest.mark.parametrize(
    ("source", "output"),
    [
        ("import wandb\n\nwandb.init()\n", "WANDB_INIT"),
        ("from celery import Task\n\nTask.init()\n", "CELERY_INIT"),
        (
            "class Model:\n    def init(self):\n        print('MODEL_INIT')\n\n\nModel().init()\n",
            "MODEL_INIT",
        ),
    ],
    ids=["wandb.init", "another-Task", "own-class"],
)
def test_other_init_calls_still_get_injected(source: str, output: str, check_runs: Check) -> None:
    text = injected(source)
    blank = "\n\n" if source.startswith("class") else "\n"
    assert text == BLOCK + blank + source
    assert check_runs(text).splitlines() == [MARKER, output]


# -- errors --------------------------------------------------------------------------------------------------


def test_syntax_error_names_line_and_column() -> None:
    with pytest.raises(UserError) as raised:
        inject_task_init("import os\n\ndef f(:\n    pass\n", "train.py")
    assert raised.value.message.startswith("cannot parse train.py at line 3, column 7: ")
    assert raised.value.hint == HINT


def test_python2_print_statement_is_a_syntax_error() -> None:
    with pytest.raises(UserError) as raised:
        inject_task_init("import os\nprint 'hello'\n", "old.py")
    assert raised.value.message.startswith("cannot parse old.py at line 2, column 1: ")
    assert "print" in raised.value.message
    assert raised.value.hint == HINT


def test_libcst_location_is_used_and_made_one_based() -> None:
    """What the message falls back to when CPython's parser accepts what libcst rejects."""
    with pytest.raises(libcst.ParserSyntaxError) as raised:
        libcst.parse_module("x = 1\ny = '''\n")
    line, column, reason = _libcst_location(raised.value)
    assert (line, column) == (raised.value.raw_line, raised.value.raw_column + 1)
    assert reason == "unterminated triple-quoted string literal"


def test_libcst_failures_become_user_errors() -> None:
    """libcst 1.9 raises a TypeError on this valid line (Instagram/LibCST#1061); no traceback may leak."""
    source = "() if 0 else(lambda:())\n"
    try:
        result = inject_task_init(source, "train.py")
    except UserError as error:
        assert error.message.startswith("cannot parse train.py: libcst failed (")
        assert error.hint == "pass --skip-task-init"
    else:  # a libcst that parses it must inject normally
        assert result.text == BLOCK + "\n" + source


def test_what_libcst_cannot_reproduce_is_refused() -> None:
    """Old Mac line endings: libcst 1.9 drops the final \\r, so the file is refused rather than altered."""
    source = "import os\rx = 1\r"
    try:
        result = inject_task_init(source, "train.py")
    except UserError as error:
        assert error.message == (
            "cannot rewrite train.py: libcst does not reproduce it exactly (unusual line endings?)"
        )
    else:
        assert result.text is not None and result.text.endswith("\rimport os\rx = 1\r")


# -- byte for byte -------------------------------------------------------------------------------------------


def test_crlf_file_keeps_crlf(check_runs: Check) -> None:
    source = '"""Doc."""\r\nimport os  # why\r\n\r\nprint("BODY")\r\n'
    text = injected(source)
    assert (
        text == '"""Doc."""\r\n\r\n' + BLOCK.replace("\n", "\r\n") + "\r\n" + source[len('"""Doc."""\r\n') :]
    )
    assert "\n" not in text.replace("\r\n", "")
    assert check_runs(text).splitlines() == [MARKER, "BODY"]


def test_formatting_and_comments_are_untouched(check_runs: Check) -> None:
    head = "#!/usr/bin/env python3\n#   odd   spacing kept\n'''Single-quoted docstring'''  # trailing\n"
    rest = (
        "\n"
        "import os ,sys # spaces before comma, kept\n"
        "x = ( 1 +\n"
        "      2 )   \n"
        "y = [\n"
        "    1,  # one\n"
        "    2,\n"
        "]  ;  z = 3\n"
        "s = 'tab\\there'  \\\n"
        '    + "mixed quotes"\n'
        "\x0c\n"
        "if x:\n"
        "  print( 'BODY' , x , y , z , s )   # two-space indent\n"
        "# trailing comment without final newline"
    )
    text = injected(head + rest)
    assert text == head + "\n" + BLOCK.replace("    ", "  ") + rest  # the file's own indent
    assert check_runs(text).splitlines() == [MARKER, "BODY 3 [1, 2] 3 tab\theremixed quotes"]


def test_tab_indented_file_gets_a_tab_indented_block(check_runs: Check) -> None:
    source = "def main():\n\tif True:\n\t\tprint('BODY')\n\n\nmain()\n"
    text = injected(source)
    assert text == BLOCK.replace("    ", "\t") + "\n\n" + source
    assert check_runs(text).splitlines() == [MARKER, "BODY"]


def test_bom_is_kept_in_front(check_runs: Check) -> None:
    source = "\ufeff# -*- coding: utf-8 -*-\nprint('BODY')\n"
    text = injected(source)
    assert text == "\ufeff# -*- coding: utf-8 -*-\n\n" + BLOCK + "\nprint('BODY')\n"
    assert check_runs(text).splitlines() == [MARKER, "BODY"]


def test_python_312_syntax_round_trips(check_runs: Check) -> None:
    source = (
        "type Vector = list[float]\n"
        "\n\n"
        "def first[T](items: list[T]) -> T:\n"
        "    return items[0]\n"
        "\n\n"
        'print(f"{"BODY"} {first([f"{\'nested\'}"])}")\n'  # PEP 701: same quotes nested
    )
    text = injected(source)
    assert text == BLOCK + "\n" + source
    if sys.version_info >= (3, 12):
        assert check_runs(text).splitlines() == [MARKER, "BODY nested"]


def test_the_script_still_runs_where_clearml_is_not_installed(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(injected("print('BODY')\n"))
    # -S: no site-packages, so no clearml whatever this interpreter has installed
    result = subprocess.run([sys.executable, "-S", str(script)], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "BODY\n", "")
