"""The import scanner: the imports of a Python module or a notebook's code cells, each with where it is and
whether it is optional (guarded by try/except ImportError or a Python version / platform test); imports under
`if TYPE_CHECKING:` are ignored, literal importlib.import_module / __import__ calls are read too."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Import:
    module: str  # as written, without the leading dots of a relative import
    level: int  # 0 absolute; 1 for "from .", 2 for "from ..", ...
    names: tuple[str, ...]  # what `from module import ...` imports ("*" included)
    where: str  # "train.py:3", "eda.ipynb cell 2:1"
    optional: bool  # guarded by try/except ImportError or a version / platform test
    statement: str  # "import yaml", "from .model import Net", "importlib.import_module('cv2')"


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
_ENV_TESTS = {("sys", "version_info"), ("sys", "platform"), ("os", "name"), ("platform", "system")}


class _Scanner:
    """The imports of one module, with whether each is optional; `if TYPE_CHECKING:` bodies are skipped.
    Only statements are walked; expressions only when the text mentions import_module or __import__."""

    def __init__(self, where: Callable[[int], str], dynamic: bool) -> None:
        self.where = where
        self.dynamic = dynamic
        self.found: list[Import] = []

    def add(
        self, module: str, level: int, names: tuple[str, ...], line: int, statement: str, optional: bool
    ) -> None:
        self.found.append(Import(module, level, names, self.where(line), optional, statement))

    def body(self, nodes: Sequence[ast.AST], optional: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.add(alias.name, 0, (), node.lineno, f"import {alias.name}", optional)
            elif isinstance(node, ast.ImportFrom):
                self.import_from(node, optional)
            elif isinstance(node, ast.If):
                self.if_(node, optional)
            elif isinstance(node, _TRY):
                self.try_(node, optional)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                self.with_(node, optional)
            elif isinstance(node, ast.Match):
                self.calls(node.subject, optional)
                for case in node.cases:
                    self.body(case.body, optional)
            elif isinstance(node, _BLOCKS):
                self.calls(node, optional, header=True)
                self.body(node.body, optional)
                self.body(getattr(node, "orelse", ()), optional)
            else:
                self.calls(node, optional)

    def import_from(self, node: ast.ImportFrom, optional: bool) -> None:
        names = tuple(alias.name for alias in node.names)
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        statement = f"from {'.' * node.level}{node.module or ''} import {shown}"
        self.add(node.module or "", node.level, names, node.lineno, statement, optional)

    def if_(self, node: ast.If, optional: bool) -> None:
        self.calls(node.test, optional)
        if _is_type_checking(node.test):
            self.body(node.orelse, optional)
        else:
            guarded = optional or _is_environment_test(node.test)
            self.body(node.body, guarded)
            self.body(node.orelse, guarded)

    def try_(self, node: ast.Try, optional: bool) -> None:  # ast.TryStar has the same fields
        guarded = optional or any(_catches_import_error(handler.type) for handler in node.handlers)
        self.body(node.body, guarded)
        for handler in node.handlers:
            self.body(handler.body, guarded)
        self.body(node.orelse, guarded)
        self.body(node.finalbody, optional)

    def with_(self, node: ast.With | ast.AsyncWith, optional: bool) -> None:
        suppressed = any(
            isinstance(item.context_expr, ast.Call)
            and _last_name(item.context_expr.func) == "suppress"
            and any(_catches_import_error(arg) for arg in item.context_expr.args)
            for item in node.items
        )
        for item in node.items:
            self.calls(item.context_expr, optional)
        self.body(node.body, optional or suppressed)

    def calls(self, node: ast.AST, optional: bool, *, header: bool = False) -> None:
        """Literal importlib.import_module(...) / __import__(...) calls in an expression or simple statement
        (in a block's header only: decorators, arguments, the loop's iterable or test)."""
        if not self.dynamic:
            return
        parts: list[ast.AST] = [node]
        if header:
            parts = [getattr(node, name) for name in ("decorator_list", "args", "bases", "iter", "test")
                     if getattr(node, name, None) is not None]  # fmt: skip
        for part in parts:
            for child in (
                ast.walk(part) if not isinstance(part, list) else (c for p in part for c in ast.walk(p))
            ):
                if isinstance(child, ast.Call):
                    self.dynamic_import(child, optional)

    def dynamic_import(self, node: ast.Call, optional: bool) -> None:
        name = _last_name(node.func)
        if name not in ("import_module", "__import__") or not node.args:
            return
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value:
            module = first.value
            level = len(module) - len(module.lstrip("."))
            call = "importlib.import_module" if name == "import_module" else "__import__"
            self.add(module.lstrip("."), level, (), node.lineno, f"{call}({module!r})", optional)


_BLOCKS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.AsyncFor, ast.While)
_TRY = (ast.Try, getattr(ast, "TryStar", ast.Try))


def _is_type_checking(test: ast.expr) -> bool:
    return _last_name(test) == "TYPE_CHECKING"


def _is_environment_test(test: ast.expr) -> bool:
    for node in ast.walk(test):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in _ENV_TESTS
        ):
            return True
    return False


def _catches_import_error(handler: ast.expr | None) -> bool:
    if handler is None:
        return True
    if isinstance(handler, ast.Tuple):
        return any(_catches_import_error(item) for item in handler.elts)
    return _last_name(handler) in _IMPORT_ERRORS


def _last_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def scan_python(text: str, path: str) -> list[Import]:
    """The imports of a Python module (SyntaxError propagates). Only the text up to the end of the last line
    that mentions an import is parsed when that much parses on its own (a prefix that parses holds every
    import with the blocks around it; one that does not, e.g. a try: not yet closed, means the whole text)."""
    dynamic = "import_module" in text or "__import__" in text
    scanner = _Scanner(functools.partial(_line_location, path), dynamic)
    scanner.body(_parse_imports_part(text, path).body, False)
    return scanner.found


def _parse_imports_part(text: str, path: str) -> ast.Module:
    at = text.rfind("import")  # also finds import_module and __import__
    if at < 0:
        return ast.Module(body=[], type_ignores=[])
    end = text.find("\n", at)
    start = text.rfind("\n", 0, at) + 1
    if text.count("(", start, end) > text.count(")", start, end):  # from x import (a,\n b)
        end = text.find("\n", text.find(")", end))
    if 0 <= end < len(text) - 1:
        try:
            return ast.parse(text[: end + 1], filename=path)
        except SyntaxError:
            pass
    return ast.parse(text, filename=path)


def _line_location(path: str, line: int) -> str:
    return f"{path}:{line}"


_MAGIC = re.compile(r"^(\s*)([%!?]|\w+\s*=\s*[!%])")


def _cell_location(path: str, cell: int, line: int) -> str:
    return f"{path} cell {cell}:{line}"


def scan_notebook(text: str, path: str) -> tuple[list[Import], list[str]]:
    """The imports of a notebook's code cells (IPython magics and shell lines left out); cells that do not
    parse are skipped, with a note."""
    import json

    try:
        cells = json.loads(text).get("cells") or []
    except (ValueError, AttributeError):
        return [], [f"{path} is not a notebook (not JSON with cells): its imports are not read"]
    found: list[Import] = []
    notes: list[str] = []
    code_number = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        code_number += 1
        source = cell.get("source") or ""
        lines = ("".join(source) if isinstance(source, list) else str(source)).splitlines()
        if lines and lines[0].lstrip().startswith("%%"):
            if lines[0].split()[0] not in ("%%time", "%%timeit", "%%capture", "%%prun"):
                continue
            lines = ["", *lines[1:]]
        code = "\n".join(_MAGIC.sub(r"\1pass  #", line) if _MAGIC.match(line) else line for line in lines)
        scanner = _Scanner(functools.partial(_cell_location, path, code_number), True)
        try:
            scanner.body(ast.parse(code, filename=path).body, False)
        except SyntaxError as error:
            notes.append(f"{path} cell {code_number} does not parse ({error.msg}): its imports are not read")
            continue
        found += scanner.found
    return found, notes
