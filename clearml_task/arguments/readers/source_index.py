"""The source index the readers share: a module parsed with libcst and indexed once (imports, qualified
names, module-level functions, classes and constants, every call), and how literal expressions read."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import libcst as cst

from clearml_task.arguments.model import UNKNOWN, Parser

_ARGPARSE_CONSTANTS = {
    "argparse.SUPPRESS": "==SUPPRESS==", "argparse.OPTIONAL": "?", "argparse.ZERO_OR_MORE": "*",
    "argparse.ONE_OR_MORE": "+", "argparse.REMAINDER": "...", "argparse.PARSER": "A...",
}  # fmt: skip


class SourceIndex:
    """One module, indexed for the readers: its imports (for qualified names), module-level functions,
    classes and constants, every call in it, and the problems the readers note on the way."""

    def __init__(self, module: cst.Module, filename: str) -> None:
        self.module = module
        self.filename = filename
        self.positions: Mapping[cst.CSTNode, Any] | None = None  # computed when a problem names a line
        self.calls: list[cst.Call] = []  # every call, in source order
        self.modules: dict[str, str] = {}  # local name → module
        self.names: dict[str, str] = {}  # local name → qualified name (from-imports)
        self.functions: dict[str, cst.FunctionDef] = {}
        self.classes: dict[str, cst.ClassDef] = {}
        self.constants: dict[str, Any] = {}
        self.problems: list[str] = []
        self._index()

    def _index(self) -> None:
        """One walk over the module: the names its imports bind (import x as y, from x import y), its
        top-level functions and classes, every call, and the top-level names assigned once to a literal
        (the constants `literal` reads through)."""
        assigned: dict[str, list[cst.BaseExpression | None]] = {}

        def walk(node: cst.CSTNode, top: bool) -> None:
            """Records what `node` imports, defines, assigns or calls; `top`: at module level."""
            if isinstance(node, cst.Import):
                for alias in node.names:
                    dotted = self.code(alias.name)
                    if alias.asname is not None:
                        self.modules[self.code(alias.asname.name)] = dotted
                    else:
                        self.modules[dotted.partition(".")[0]] = dotted.partition(".")[0]
            elif isinstance(node, cst.ImportFrom) and node.module is not None and not node.relative:
                base = self.code(node.module)
                if not isinstance(node.names, cst.ImportStar):
                    for alias in node.names:
                        name = self.code(alias.name)
                        local = self.code(alias.asname.name) if alias.asname is not None else name
                        self.names[local] = f"{base}.{name}"
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                if top:
                    target = self.functions if isinstance(node, cst.FunctionDef) else self.classes
                    target[node.name.value] = node  # type: ignore[assignment]
                    assigned.setdefault(node.name.value, []).append(None)
                top = False
            elif top and isinstance(node, cst.Assign):
                for t in node.targets:
                    if isinstance(t.target, cst.Name):
                        assigned.setdefault(t.target.value, []).append(node.value)
                    else:
                        for name in self._target_names(t.target):
                            assigned.setdefault(name, []).append(None)
            elif top and isinstance(node, (cst.AugAssign, cst.AnnAssign)):
                for name in self._target_names(node.target):
                    value = node.value if isinstance(node, cst.AnnAssign) else None
                    assigned.setdefault(name, []).append(value)
            elif top and isinstance(node, cst.For):
                for name in self._target_names(node.target):
                    assigned.setdefault(name, []).append(None)
            elif isinstance(node, cst.Call):
                self.calls.append(node)
            for child in children(node):
                walk(child, top)

        walk(self.module, True)
        for name, values in assigned.items():
            if len(values) == 1 and values[0] is not None:
                value = self.literal(values[0])
                if value is not UNKNOWN:
                    self.constants[name] = value

    def _target_names(self, target: cst.CSTNode) -> list[str]:
        if isinstance(target, cst.Name):
            return [target.value]
        if isinstance(target, (cst.Tuple, cst.List)):
            return [n for element in target.elements for n in self._target_names(element.value)]
        return []

    def code(self, node: cst.CSTNode) -> str:
        """A node's source text."""
        return self.module.code_for_node(node).strip()

    def line(self, node: cst.CSTNode) -> int:
        """A node's line number, for problems (0 when it is not in the module)."""
        if self.positions is None:
            from libcst.metadata import MetadataWrapper, PositionProvider

            self.positions = MetadataWrapper(self.module, unsafe_skip_copy=True).resolve(PositionProvider)
        try:
            return int(self.positions[node].start.line)
        except KeyError:
            return 0

    def qualified(self, expr: cst.CSTNode) -> str | None:
        """`argparse.ArgumentParser` for `ap.ArgumentParser` (import argparse as ap) or `ArgumentParser`."""
        if isinstance(expr, cst.Name):
            return self.names.get(expr.value) or self.modules.get(expr.value)
        if isinstance(expr, cst.Attribute):
            base = self.qualified(expr.value)
            return f"{base}.{expr.attr.value}" if base else None
        return None

    def literal(self, expr: cst.CSTNode) -> Any:
        """The value of a literal expression (or of a module-level constant); UNKNOWN otherwise."""
        if isinstance(expr, cst.Name):
            fixed = {"True": True, "False": False, "None": None}
            if expr.value in fixed:
                return fixed[expr.value]
            return self.constants.get(expr.value, UNKNOWN)
        if isinstance(expr, cst.Attribute):
            return _ARGPARSE_CONSTANTS.get(self.qualified(expr) or "", UNKNOWN)
        try:
            return ast.literal_eval(self.code(expr))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
        if isinstance(expr, (cst.List, cst.Tuple, cst.Set)):
            items = []
            for element in expr.elements:
                value = UNKNOWN if isinstance(element, cst.StarredElement) else self.literal(element.value)
                if value is UNKNOWN:
                    return UNKNOWN
                items.append(value)
            return tuple(items) if isinstance(expr, cst.Tuple) else items
        return UNKNOWN

    def string(self, expr: cst.CSTNode) -> str | None:
        """The value of a literal string expression, else None."""
        value = self.literal(expr)
        return value if isinstance(value, str) else None

    def decorators(self, func: cst.FunctionDef) -> Iterator[tuple[cst.BaseExpression, cst.Call | None]]:
        """(what is called or applied, the call when there is one) for each decorator, top to bottom."""
        for decorator in func.decorators:
            expr = decorator.decorator
            if isinstance(expr, cst.Call):
                yield expr.func, expr
            else:
                yield expr, None

    def imports(self, library: str) -> bool:
        """The module imports `library` or something from it."""
        return any(
            name.partition(".")[0] == library for name in [*self.modules.values(), *self.names.values()]
        )

    def called_one_of(self, names: Sequence[str]) -> str | None:
        """Of several top-level commands, the one the module calls."""
        if len(names) == 1:
            return names[0]
        called = {
            call.func.value if isinstance(call.func, cst.Name) else ""
            for call in self.calls
            if isinstance(call.func, cst.Name)
        }
        matching = [name for name in names if name in called]
        return matching[0] if len(matching) == 1 else None

    def keyword(self, call: cst.Call | None, name: str) -> cst.BaseExpression | None:
        """The expression a call gives for keyword `name`, or None."""
        if call is None:
            return None
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == name:
                return arg.value
        return None


MISSING: Any = object()  # what a script does not give (a default, a keyword), as the readers note it


_FIELDS: dict[type, tuple[str, ...]] = {}
_LAYOUT = (
    "lpar",
    "rpar",
    "leading_lines",
    "header",
    "footer",
    "lines_after_decorators",
    "trailing_whitespace",
)


def children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """A node's children without the whitespace and comments (faster than libcst's `children`)."""
    names = _FIELDS.get(type(node))
    if names is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(node)
            if f.name not in _LAYOUT and not f.name.startswith("whitespace")
        )
        _FIELDS[type(node)] = names
    for name in names:
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (item for item in value if isinstance(item, cst.CSTNode))


class LibraryReader:
    """A library's reader of one module: `read()` is the parser the module builds with it, or None.
    `read_index` is the module-level `read(index)` each reader module offers."""

    def __init__(self, index: SourceIndex) -> None:
        self.index = index

    @classmethod
    def read_index(cls, index: SourceIndex) -> Parser | None:
        return cls(index).read()

    def read(self) -> Parser | None:
        raise NotImplementedError
