"""Task.init() into the entry point, with libcst so the rest of the file stays byte for byte.

The injected block is ``from clearml import Task`` plus ``Task.init()`` under ``if __name__ == "__main__":``,
placed after the leading comments that must stay first (shebang, encoding line), the module docstring and
every ``from __future__`` import, and before any other code. A script that already calls ``Task.init`` is
left alone. libcst is imported inside the functions: this module is on the CLI's path.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from clearml_task.errors import UserError

if TYPE_CHECKING:
    import libcst as cst
    from libcst.metadata import QualifiedName

    _Statement = TypeVar("_Statement", bound=cst.CSTNode)

_BOM = "\ufeff"
# ClearML's Task.init() when the file runs as a script; without ClearML installed it runs as it is.
_TASK_INIT_SNIPPET = (
    'if __name__ == "__main__":\n'
    "    try:\n"
    "        from clearml import Task\n"
    "    except ImportError:\n"
    "        pass\n"
    "    else:\n"
    "        Task.init()\n"
)
_TASK_INIT_NAMES = frozenset({"clearml.Task.init", "clearml.task.Task.init"})
_CODING_LINE = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")  # PEP 263
_NEWLINE = re.compile(r"\r\n|\r|\n")
_LIBCST_PREFIX = re.compile(r"^(?:parser|tokenizer) error: (?:error at \d+:\d+: )?")
_REASON_LENGTH = 80
_SYNTAX_HINT = "fix the syntax, or pass --skip-task-init"


@dataclass(frozen=True)
class Injection:
    """The entry point with Task.init() added (``text``), or ``None`` with the reason in ``note``."""

    text: str | None
    note: str


def inject_task_init(source: str, filename: str, unbound: Sequence[str] = ()) -> Injection:
    """Add a script-only ``Task.init()`` to ``source`` unless it already calls Task.init. ``unbound``: the
    argparse dests the SDK must leave to the command line (``auto_connect_arg_parser={dest: False}``)."""
    bom = _BOM if source.startswith(_BOM) else ""
    code = source[len(bom) :]
    module = _parse(code, filename)
    existing = _task_init_call_line(module, code)
    if existing is not None:
        return Injection(None, f"{filename} already calls Task.init() at line {existing}; nothing injected")
    injected, line = _with_task_init(module, unbound)
    return Injection(
        bom + injected.code, f"added Task.init() to {filename} at line {line} (runs only as a script)"
    )


# -- parsing -------------------------------------------------------------------------------------------------


def _parse(code: str, filename: str) -> cst.Module:
    """The libcst tree of ``code``; a UserError when it cannot be parsed or would not round-trip."""
    import libcst as cst

    try:
        module = cst.parse_module(code)
    except cst.ParserSyntaxError as error:
        raise _syntax_error(filename, code, error) from error
    except Exception as error:  # libcst's own failures on code it should accept (e.g. a TypeError)
        message = f"cannot parse {filename}: libcst failed ({type(error).__name__}: {error})"
        raise UserError(message, "pass --skip-task-init") from error
    if module.code != code:
        message = f"cannot rewrite {filename}: libcst does not reproduce it exactly (unusual line endings?)"
        raise UserError(message, "pass --skip-task-init")
    return module


def _syntax_error(filename: str, code: str, error: cst.ParserSyntaxError) -> UserError:
    """One line naming where the file is broken: CPython's location when it agrees, libcst's otherwise."""
    line, column, reason = _cpython_location(code) or _libcst_location(error)
    return UserError(f"cannot parse {filename} at line {line}, column {column}: {reason}", _SYNTAX_HINT)


def _cpython_location(code: str) -> tuple[int, int, str] | None:
    """Where CPython's own parser stops (it pinpoints errors better than libcst's), or None if it parses."""
    import ast

    try:
        compile(code, "<entry point>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as error:
        if error.lineno is None:
            return None
        return error.lineno, error.offset or 1, error.msg
    except ValueError:  # null bytes, before Python 3.12
        return None
    return None


def _libcst_location(error: cst.ParserSyntaxError) -> tuple[int, int, str]:
    """libcst's location (raw_column is 0-based, reported 1-based) and the first line of its reason."""
    lines = error.message.splitlines()
    reason = _LIBCST_PREFIX.sub("", lines[0]) if lines else ""
    if len(reason) > _REASON_LENGTH:
        reason = reason[: _REASON_LENGTH - 3] + "..."
    return error.raw_line, error.raw_column + 1, reason or "invalid syntax"


# -- detection -----------------------------------------------------------------------------------------------


def _task_init_call_line(module: cst.Module, code: str) -> int | None:
    """The line of the first call to clearml's Task.init, in any spelling, or None."""
    if "init" not in code:
        return None
    lines = _task_init_calls(module)
    return min(lines) if lines else None


def _task_init_calls(module: cst.Module) -> list[int]:
    """Lines of the calls whose callee resolves to clearml's ``Task.init`` (scopes and aliases followed)."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider, QualifiedNameProvider

    class Finder(cst.CSTVisitor):
        METADATA_DEPENDENCIES = (QualifiedNameProvider, PositionProvider)

        def __init__(self) -> None:
            super().__init__()
            self.lines: list[int] = []

        def visit_Call(self, node: cst.Call) -> None:
            if _calls_task_init(node, self.get_metadata(QualifiedNameProvider, node.func, set())):
                self.lines.append(self.get_metadata(PositionProvider, node).start.line)

    finder = Finder()
    MetadataWrapper(module, unsafe_skip_copy=True).visit(finder)
    return finder.lines


def _calls_task_init(call: cst.Call, qualified_names: Collection[QualifiedName]) -> bool:
    """``<clearml's Task>.init(...)``, or ``Task.init(...)`` with ``Task`` bound nowhere in the file (so
    it comes from a star import such as ``from clearml import *``; a second Task.init must not be added)."""
    import libcst as cst

    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value != "init":
        return False
    if not qualified_names:
        return isinstance(func.value, cst.Name) and func.value.value == "Task"
    return any(name.name in _TASK_INIT_NAMES for name in qualified_names)


def _dotted_name(node: cst.BaseExpression | None) -> str:
    """``a.b.c`` for a Name/Attribute chain, "" for anything else."""
    import libcst as cst

    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        prefix = _dotted_name(node.value)
        return f"{prefix}.{node.attr.value}" if prefix else ""
    return ""


# -- insertion -----------------------------------------------------------------------------------------------


def _with_task_init(module: cst.Module, unbound: Sequence[str]) -> tuple[cst.Module, int]:
    """The module with the Task.init() block inserted, and the line it starts on."""
    index = _insertion_index(module)
    header = list(module.header)
    body = list(module.body)
    if index == 0 and body:
        # Comments right above the first statement describe it: they move down with it.
        kept = _kept_header_length(header)
        body[0] = _with_leading_lines(body[0], [*header[kept:], *body[0].leading_lines])
        header = header[:kept]
    blank_before = index > 0 or bool(header and header[-1].comment is not None)
    nothing_after = index == len(body) and not module.footer
    following = body[index].leading_lines if index < len(body) else module.footer
    wanted = 0 if nothing_after else 2 if index < len(body) and _is_definition(body[index]) else 1
    blank_after = max(0, wanted - _leading_blank_count(following))
    injected = module.with_changes(
        header=header,
        body=[*body[:index], *_task_init_block(blank_before, blank_after, unbound), *body[index:]],
        has_trailing_newline=module.has_trailing_newline or nothing_after,
    )
    return injected, _first_line_of_statement(injected, index)


def _insertion_index(module: cst.Module) -> int:
    """Index of the first statement that is neither the module docstring nor a ``from __future__`` import."""
    index = 1 if module.get_docstring(clean=False) is not None else 0
    while index < len(module.body) and _is_future_import(module.body[index]):
        index += 1
    return index


def _is_future_import(statement: cst.BaseStatement) -> bool:
    import libcst as cst

    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    return any(
        isinstance(small, cst.ImportFrom)
        and not small.relative
        and _dotted_name(small.module) == "__future__"
        for small in statement.body
    )


def _is_definition(statement: cst.BaseStatement) -> bool:
    """A def or class, which PEP 8 sets two blank lines apart from the code around it."""
    import libcst as cst

    return isinstance(statement, (cst.FunctionDef, cst.ClassDef))


def _leading_blank_count(lines: Sequence[cst.EmptyLine]) -> int:
    count = 0
    while count < len(lines) and lines[count].comment is None:
        count += 1
    return count


def _kept_header_length(header: Sequence[cst.EmptyLine]) -> int:
    """How many leading lines stay above the block: the magic lines, and all up to the last blank line."""
    blank_ends = [position + 1 for position, line in enumerate(header) if line.comment is None]
    return max([_magic_line_count(header), *blank_ends])


def _magic_line_count(header: Sequence[cst.EmptyLine]) -> int:
    """1 or 2 when the file opens with a shebang and/or an encoding line (PEP 263: lines 1-2), else 0."""
    count = 0
    for position, line in enumerate(header[:2]):
        comment = line.comment.value if line.comment is not None else ""
        if (position == 0 and comment.startswith("#!")) or _CODING_LINE.match(comment):
            count = position + 1
    return count


def _with_leading_lines(statement: _Statement, lines: Sequence[cst.EmptyLine]) -> _Statement:
    return statement.with_changes(leading_lines=lines) if lines else statement


def _task_init_block(
    blank_before: bool, blank_lines_after: int, unbound: Sequence[str] = ()
) -> list[cst.SimpleStatementLine | cst.BaseCompoundStatement]:
    """The ``__main__`` guard with the Task.init() call, in the module's own newline and indent."""
    import libcst as cst

    snippet = _TASK_INIT_SNIPPET
    if unbound:
        excluded = ", ".join(f"{dest!r}: False" for dest in unbound)
        snippet = snippet.replace("Task.init()", f"Task.init(auto_connect_arg_parser={{{excluded}}})")
    (guard,) = cst.parse_module(snippet).body
    if not isinstance(guard, cst.If) or not isinstance(guard.body, cst.IndentedBlock):
        raise AssertionError("the Task.init() snippet must be one indented if block")
    if blank_before:
        guard = _with_leading_lines(guard, [cst.EmptyLine()])
    if blank_lines_after:
        footer = [cst.EmptyLine(indent=False)] * blank_lines_after
        guard = guard.with_changes(body=guard.body.with_changes(footer=footer))
    return [guard]


def _first_line_of_statement(module: cst.Module, index: int) -> int:
    """1-based line on which ``module.body[index]`` starts (after its leading blank lines)."""
    prefix = module.with_changes(body=module.body[:index], footer=(), has_trailing_newline=True)
    before = len(_NEWLINE.findall(prefix.code)) if index else len(module.header)
    return before + len(module.body[index].leading_lines) + 1
