"""argparse: parsers traced through one module by name (groups, mutually exclusive groups, parents,
subparsers, set_defaults), also through the module's own functions that are given a parser or return
one; the parser that parses the command line is the one that is neither a parent nor a subparser."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from clearml_task import records
from clearml_task.arguments.model import FLAGS, UNKNOWN, Option, Parser, free_subcommand_key
from clearml_task.arguments.readers.source_index import LibraryReader, SourceIndex, children
from clearml_task.arguments.values import typed_default

ARGPARSE_ACTIONS = (
    "store", "store_const", "store_true", "store_false", "append", "append_const", "extend", "count",
    "help", "version",
)  # fmt: skip
PARSE_METHODS = ("parse_args", "parse_known_args", "parse_intermixed_args", "parse_known_intermixed_args")
SUPPRESS = "==SUPPRESS=="


class Scope:
    """The names bound in a module, class or function body while tracing, to traced values (or None)."""

    def __init__(self, parent: Scope | None = None) -> None:
        self.parent = parent
        self.names: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None


class TracedParser:
    """An argparse.ArgumentParser being traced."""

    def __init__(self, node: cst.Call) -> None:
        self.node = node
        self.options: dict[int, Option] = {}
        self.parents: list[TracedParser] = []
        self.subs: TracedSubparsers | None = None
        self.defaults: dict[str, Any] = {}
        self.defaults_unknown = False
        self.argument_default: Any = None
        self.prefix_chars = "-"
        self.is_parent = self.is_sub = self.parsed = False


@dataclass
class TracedGroup:
    """An argument group of a traced parser; `exclusive` numbers a mutually exclusive one."""

    parser: TracedParser
    exclusive: int | None


@dataclass
class TracedSubparsers:
    """The subparsers action of a traced parser: its subcommands by name."""

    parser: TracedParser
    dest: str | None
    required: bool
    choices: dict[str, TracedParser] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


class ArgparseTracer(LibraryReader):
    """Traces argparse parsers through one module: names bound to parsers, groups and subparsers, the
    module's own functions called with them (add_common_args(parser)) or returning them (get_parser())."""

    def __init__(self, index: SourceIndex) -> None:
        super().__init__(index)
        self.module_scope = Scope()
        self.attributes: dict[str, Any] = {}  # self.parser = ... (by its dotted name)
        self.parsers: dict[int, TracedParser] = {}  # by the id of the ArgumentParser(...) call
        self.order: list[TracedParser] = []  # every parser and subparser, as they are made
        self.derived: dict[tuple[int, int], Any] = {}  # (call, receiver) → the group or subparsers it made
        self.calls: dict[tuple[Any, ...], Any] = {}  # (function, its arguments) → what it returned
        self.active: set[int] = set()  # the functions being traced (no recursion)
        self.pending: list[tuple[cst.FunctionDef, Scope]] = []  # function bodies still to walk
        self.add_argument_calls: dict[int, cst.Call] = {}  # every add_argument call seen
        self.attributed: set[int] = set()  # those traced to a parser
        self.exclusive = itertools.count(1)  # numbers the mutually exclusive groups
        self.problems: list[str] = []
        self.complete = True

    def read(self) -> Parser | None:
        """Walks the module, then the bodies of its functions, and builds the Parser of the one parser
        that is neither a parent nor a subparser (of several, the one whose parse_args is called). An
        add_argument that cannot be traced to a parser makes the result incomplete."""
        self.walk(self.index.module, self.module_scope, None)
        while self.pending:
            func, scope = self.pending.pop(0)
            self.walk(func.body, scope, None)
        if not self.parsers:
            return None
        for call_id, call in self.add_argument_calls.items():
            if call_id not in self.attributed:
                self.complete = False
                self.problems.append(
                    f"line {self.index.line(call)}: add_argument on "
                    f"{self.index.code(call.func)[: -len('.add_argument')]} that cannot be traced to a parser"
                )
        tops = [p for p in self.order if not p.is_sub and not p.is_parent]
        if len(tops) > 1:
            tops = [p for p in tops if p.parsed] or tops
        if len(tops) != 1:
            lines = ", ".join(str(self.index.line(p.node)) for p in tops) or "none"
            return Parser(
                kind="argparse",
                complete=False,
                problems=[
                    *self.problems,
                    f"cannot tell which parser parses the command line (lines {lines})",
                ],
            )
        parser = self.to_parser(tops[0], "", set())
        parser.complete = self.complete
        parser.problems = self.problems + parser.problems
        return parser

    def to_parser(self, traced: TracedParser, name: str, seen: set[int]) -> Parser:
        """The Parser of a traced parser: its parents' options and its own, with set_defaults applied."""
        seen = seen | {id(traced)}
        options = [records.replace(o) for o in self.options_of(traced, seen)]
        for option in options:
            if option.dest in traced.defaults:
                option.default = typed_default(option, traced.defaults[option.dest])
            elif traced.defaults_unknown:
                option.default = UNKNOWN
        parser = Parser(
            kind="argparse", name=name, options=[o for o in options if o.action not in ("help", "version")]
        )
        subs = traced.subs
        if subs is not None:
            for sub_name, sub in subs.choices.items():
                if id(sub) not in seen:
                    parser.subcommands[sub_name] = self.to_parser(sub, sub_name, seen)
            parser.aliases = dict(subs.aliases)
            parser.subcommand_required = subs.required
            parser.subcommand_dest = subs.dest or free_subcommand_key(parser)
        return parser

    def options_of(self, traced: TracedParser, seen: set[int]) -> list[Option]:
        """A parser's options, its parents' first."""
        out: list[Option] = []
        for parent in traced.parents:
            if id(parent) not in seen:
                out += self.options_of(parent, seen | {id(parent)})
        return out + list(traced.options.values())

    def walk(self, node: cst.CSTNode, scope: Scope, returns: list[Any] | None) -> None:
        """Traces a node: assignments bind names to what they evaluate to, calls are followed (on_call),
        a function's body is walked later with its parameters unknown, a `for` over a literal list of
        parsers walks its body once per parser; `returns` collects what a traced function returns."""
        if isinstance(node, cst.FunctionDef):
            for decorator in node.decorators:
                self.walk(decorator, scope, returns)
            inner = Scope(scope)
            for param in self._params(node):
                inner.names[param.name.value] = None
            self.pending.append((node, inner))
            return
        if isinstance(node, cst.Lambda):
            return
        if isinstance(node, cst.ClassDef):
            self.walk(node.body, Scope(scope), None)
            return
        if isinstance(node, (cst.Assign, cst.AnnAssign)):
            if node.value is None:
                return
            self.walk(node.value, scope, returns)
            value = self.evaluate(node.value, scope)
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                self.bind(target, value, scope)
            return
        if isinstance(node, cst.Return):
            if node.value is not None:
                self.walk(node.value, scope, returns)
                if returns is not None:
                    returns.append(self.evaluate(node.value, scope))
            return
        if isinstance(node, cst.For) and isinstance(node.iter, (cst.List, cst.Tuple)):
            values = [self.evaluate(e.value, scope) for e in node.iter.elements]
            if values and all(o is not None for o in values):
                for value in values:
                    self.bind(node.target, value, scope)
                    self.walk(node.body, scope, returns)
                return
        for child in children(node):
            self.walk(child, scope, returns)
        if isinstance(node, cst.Call):
            self.on_call(node, scope)

    def _params(self, func: cst.FunctionDef) -> list[cst.Param]:
        """All of a function's parameters, *args and **kwargs too."""
        params = func.params
        out = [*params.posonly_params, *params.params, *params.kwonly_params]
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                out.append(star)
        return out

    def bind(self, target: cst.CSTNode, value: Any, scope: Scope) -> None:
        """An assignment: a name or `self.x` now holds `value`; unpacked names hold nothing known."""
        if isinstance(target, cst.Name):
            scope.names[target.value] = value
        elif isinstance(target, cst.Attribute):
            self.attributes[self.index.code(target)] = value
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self.bind(element.value, None, scope)

    def evaluate(self, expr: cst.CSTNode, scope: Scope) -> Any:
        """The traced object an expression evaluates to (a parser, a group, subparsers), or None."""
        if isinstance(expr, cst.Name):
            return scope.get(expr.value)
        if isinstance(expr, cst.Attribute):
            return self.attributes.get(self.index.code(expr))
        if not isinstance(expr, cst.Call):
            return None
        func = expr.func
        if self.index.qualified(func) == "argparse.ArgumentParser":
            return self.new_parser(expr, scope)
        if isinstance(func, cst.Name) and func.value in self.index.functions:
            return self.call_function(expr, scope)
        if not isinstance(func, cst.Attribute):
            return None
        receiver = self.evaluate(func.value, scope)
        if receiver is None:
            return None
        key = (id(expr), id(receiver))
        if key in self.derived:
            return self.derived[key]
        method = func.attr.value
        result: Any = None
        if method in ("add_argument_group", "add_mutually_exclusive_group") and isinstance(
            receiver, (TracedParser, TracedGroup)
        ):
            parser = receiver if isinstance(receiver, TracedParser) else receiver.parser
            exclusive = receiver.exclusive if isinstance(receiver, TracedGroup) else None
            if method == "add_mutually_exclusive_group":
                exclusive = next(self.exclusive)
            result = TracedGroup(parser, exclusive)
        elif method == "add_subparsers" and isinstance(receiver, TracedParser):
            result = self.new_subparsers(expr, receiver)
        elif method == "add_parser" and isinstance(receiver, TracedSubparsers):
            result = self.new_subparser(expr, receiver, scope)
        if result is not None:
            self.derived[key] = result
        return result

    def on_call(self, call: cst.Call, scope: Scope) -> None:
        func = call.func
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "add_argument":
                self.add_argument_calls.setdefault(id(call), call)
                target = self.evaluate(func.value, scope)
                if isinstance(target, (TracedParser, TracedGroup)):
                    self.add_argument(call, target)
            elif method == "set_defaults":
                target = self.evaluate(func.value, scope)
                if isinstance(target, TracedParser):
                    self.set_defaults(call, target)
            elif method in PARSE_METHODS:
                target = self.evaluate(func.value, scope)
                if isinstance(target, TracedParser):
                    target.parsed = True
            else:
                self.evaluate(call, scope)
        else:
            self.evaluate(call, scope)

    def call_function(self, call: cst.Call, scope: Scope) -> Any:
        """A call to one of the module's functions, traced with what it is given; what it returns."""
        assert isinstance(call.func, cst.Name)
        func = self.index.functions[call.func.value]
        positional = [self.evaluate(a.value, scope) for a in call.args if a.keyword is None and not a.star]
        keywords = {
            a.keyword.value: self.evaluate(a.value, scope) for a in call.args if a.keyword is not None
        }
        key = (id(func), *(id(o) for o in positional), *sorted((k, id(v)) for k, v in keywords.items()))
        if key in self.calls:
            return self.calls[key]
        if id(func) in self.active or len(self.active) > 16:
            return None
        self.calls[key] = None
        self.active.add(id(func))
        inner = Scope(self.module_scope)
        params = func.params
        for i, param in enumerate([*params.posonly_params, *params.params]):
            inner.names[param.name.value] = (
                positional[i] if i < len(positional) else keywords.get(param.name.value)
            )
        for param in params.kwonly_params:
            inner.names[param.name.value] = keywords.get(param.name.value)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, cst.Param):
                inner.names[star.name.value] = None
        returns: list[Any] = []
        try:
            self.walk(func.body, inner, returns)
        finally:
            self.active.discard(id(func))
        result = next((r for r in returns if r is not None), None)
        self.calls[key] = result
        return result

    # ----- parsers
    def new_parser(self, call: cst.Call, scope: Scope) -> TracedParser:
        if id(call) in self.parsers:
            return self.parsers[id(call)]
        traced = TracedParser(call)
        self.parsers[id(call)] = traced
        self.order.append(traced)
        self.configure(traced, call, scope)
        return traced

    def configure(self, traced: TracedParser, call: cst.Call, scope: Scope) -> None:
        for arg in call.args:
            if arg.keyword is None:
                continue
            keyword = arg.keyword.value
            if keyword == "parents":
                elements = arg.value.elements if isinstance(arg.value, (cst.List, cst.Tuple)) else None
                parents = [self.evaluate(e.value, scope) for e in elements or []]
                if elements is None or not all(isinstance(p, TracedParser) for p in parents):
                    self.complete = False
                    self.problems.append(
                        f"line {self.index.line(traced.node)}: parents that are not parsers of this file"
                    )
                for parent in parents:
                    if isinstance(parent, TracedParser):
                        parent.is_parent = True
                        traced.parents.append(parent)
            elif keyword == "prefix_chars":
                traced.prefix_chars = self.index.string(arg.value) or "-"
            elif keyword == "argument_default":
                traced.argument_default = self.index.literal(arg.value)

    def new_subparsers(self, call: cst.Call, parser: TracedParser) -> TracedSubparsers:
        if parser.subs is not None:
            return parser.subs
        dest = self.index.keyword(call, "dest")
        required = self.index.keyword(call, "required")
        subs = TracedSubparsers(
            parser,
            self.index.string(dest) if dest is not None else None,
            required is not None and self.index.literal(required) is True,
        )
        parser.subs = subs
        return subs

    def new_subparser(self, call: cst.Call, subs: TracedSubparsers, scope: Scope) -> TracedParser:
        traced = TracedParser(call)
        traced.is_sub = True
        self.order.append(traced)
        self.configure(traced, call, scope)
        names = [a.value for a in call.args if a.keyword is None][:1]
        name = self.index.string(names[0]) if names else None
        if name is None:
            self.complete = False
            self.problems.append(
                f"line {self.index.line(traced.node)}: a subcommand whose name is not a literal string"
            )
            return traced
        subs.choices[name] = traced
        aliases = self.index.keyword(call, "aliases")
        for alias in self.index.literal(aliases) if aliases is not None else []:
            if isinstance(alias, str):
                subs.aliases[alias] = name
        return traced

    def set_defaults(self, call: cst.Call, parser: TracedParser) -> None:
        for arg in call.args:
            if arg.keyword is None:
                parser.defaults_unknown = True
                for option in parser.options.values():
                    option.default = UNKNOWN
                continue
            dest, value = arg.keyword.value, self.index.literal(arg.value)
            parser.defaults[dest] = value
            for option in parser.options.values():
                if option.dest == dest:
                    option.default = typed_default(option, value)

    def add_argument(self, call: cst.Call, target: TracedParser | TracedGroup) -> None:
        parser = target if isinstance(target, TracedParser) else target.parser
        self.attributed.add(id(call))
        if id(call) in parser.options:
            return
        option = self.read_argument(call, parser)
        if option is None:
            self.complete = False
            return
        option.exclusive = target.exclusive if isinstance(target, TracedGroup) else None
        parser.options[id(call)] = option

    def read_argument(self, call: cst.Call, parser: TracedParser) -> Option | None:
        """The Option an add_argument call declares, as argparse would: its dest from the option strings,
        its type, default (the parser's set_defaults and argument_default too), choices, nargs, required.
        None (a problem noted) when its names are not literal."""
        index = self.index
        names: list[str] = []
        kw: dict[str, cst.BaseExpression] = {}
        opaque = False
        for arg in call.args:
            if arg.star == "**":
                opaque = True
            elif arg.star or (arg.keyword is None and index.string(arg.value) is None):
                self.problems.append(
                    f"line {index.line(call)}: add_argument with names that are not literal strings"
                )
                return None
            elif arg.keyword is None:
                names.append(str(index.string(arg.value)))
            else:
                kw[arg.keyword.value] = arg.value
        if not names and "dest" in kw and index.string(kw["dest"]):
            names = [str(index.string(kw.pop("dest")))]  # add_argument(dest="x"): a positional
        if not names:
            self.problems.append(f"line {index.line(call)}: add_argument without names")
            return None
        prefix = parser.prefix_chars
        option = Option(dest=names[0])
        if names[0][:1] in prefix:
            option.option_strings = names
            long = [n for n in names if len(n) > 1 and n[1] in prefix]
            dest = (
                index.string(kw["dest"])
                if "dest" in kw
                else (long or names)[0].lstrip(prefix).replace("-", "_")
            )
            if not dest:
                self.problems.append(
                    f"line {index.line(call)}: add_argument with a dest that is not a literal string"
                )
                return None
            option.dest = dest
        option.action = self.action(kw.get("action"))
        if opaque and "action" not in kw:
            option.action = "custom"
            self.problems.append(
                f"line {index.line(call)}: add_argument(**...) cannot be read: "
                f"{option.display} passes as it is"
            )
        if option.action == "boolean_optional":
            option.negatives = [f"--no-{s[2:]}" for s in option.option_strings if s.startswith("--")]
        nargs = index.literal(kw["nargs"]) if "nargs" in kw else None
        if nargs is UNKNOWN or (nargs is not None and not isinstance(nargs, (int, str))):
            option.action = "custom"
        else:
            option.nargs = nargs
        if option.action in FLAGS:
            option.type = "bool"
        elif option.action == "count":
            option.type = "int"
        elif "type" in kw:
            option.type, option.type_name, option.true_token, option.false_token = self.converter(kw["type"])
        if "const" in kw:
            option.const = index.literal(kw["const"])
        elif option.action in ("store_true", "store_false"):
            option.const = option.action == "store_true"
        if "default" in kw:
            default = index.literal(kw["default"])
        elif option.dest in parser.defaults:
            default = parser.defaults[option.dest]
        elif parser.defaults_unknown or (opaque and option.action == "custom"):
            default = UNKNOWN
        elif parser.argument_default is not None:
            default = parser.argument_default
        else:
            default = {"store_true": False, "store_false": True}.get(option.action)
        option.default = typed_default(option, None if default == SUPPRESS else default)
        if "choices" in kw:
            option.choices = self.choices(kw["choices"])
        help_text = index.string(kw["help"]) if "help" in kw else None
        option.help = None if help_text == SUPPRESS else help_text
        required = index.literal(kw["required"]) if "required" in kw else False
        if option.positional:
            option.required = option.nargs not in ("?", "*", "...")
        else:
            option.required = required is True
        return option

    def action(self, expr: cst.BaseExpression | None) -> str:
        if expr is None:
            return "store"
        value = self.index.literal(expr)
        if isinstance(value, str):
            return value if value in ARGPARSE_ACTIONS else "custom"
        qualified = self.index.qualified(expr) or ""
        if qualified == "argparse.BooleanOptionalAction":
            return "boolean_optional"
        return "custom"

    def choices(self, expr: cst.BaseExpression) -> list[Any] | None:
        value = self.index.literal(expr)
        if isinstance(value, (list, tuple, set, frozenset)):
            return list(value)
        if isinstance(value, dict):
            return list(value)
        if isinstance(expr, cst.Call) and self.index.code(expr.func) == "range":
            bounds = [self.index.literal(a.value) for a in expr.args]
            if bounds and all(isinstance(b, int) for b in bounds) and len(bounds) <= 3:
                return list(range(*bounds))
        result: Any = UNKNOWN
        return result

    def converter(self, expr: cst.BaseExpression) -> tuple[str, str, str, str]:
        """(type, type name, true token, false token) of add_argument's type=."""
        code = self.index.code(expr)
        if (
            isinstance(expr, cst.Name)
            and expr.value in ("int", "float", "str")
            and expr.value not in self.index.functions
        ):
            return expr.value, expr.value, "true", "false"
        if isinstance(expr, cst.Name) and expr.value == "bool":
            return "bool", "bool", "True", ""  # bool(text): any non-empty text is True
        short = code.rpartition(".")[2]
        if short == "strtobool":
            return "bool", short, "true", "false"
        func: cst.FunctionDef | cst.Lambda | None = None
        if isinstance(expr, cst.Lambda):
            func = expr
        elif isinstance(expr, cst.Name) and expr.value in self.index.functions:
            func = self.index.functions[expr.value]
        tokens = _bool_like(self.index, func) if func is not None else None
        name = "<lambda>" if isinstance(expr, cst.Lambda) else short
        if tokens is not None:
            return "bool", name, *tokens
        return "unknown", name, "true", "false"


read = ArgparseTracer.read_index  # the argparse parser the module parses its command line with, or None


def _bool_like(index: SourceIndex, func: cst.FunctionDef | cst.Lambda) -> tuple[str, str] | None:
    """(true token, false token) when a converter clearly turns text into a bool: each of its returns is
    True/False, a comparison, `not ...`, `bool(...)` or `strtobool(...)`; None otherwise."""
    returns: list[cst.BaseExpression] = []
    tests: list[tuple[cst.BaseExpression, bool | None]] = []

    def walk(node: cst.CSTNode) -> None:
        if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)) and node is not func:
            return
        if isinstance(node, cst.Return) and node.value is not None:
            returns.append(node.value)
        if isinstance(node, cst.If):
            outcome = None
            body = node.body.body
            first = body[0] if body else None
            if isinstance(first, cst.SimpleStatementLine) and isinstance(first.body[0], cst.Return):
                value = first.body[0].value
                if isinstance(value, cst.Name) and value.value in ("True", "False"):
                    outcome = value.value == "True"
            tests.append((node.test, outcome))
        for child in children(node):
            walk(child)

    if isinstance(func, cst.Lambda):
        returns.append(func.body)
    else:
        walk(func.body)
    if not returns:
        return None

    params = func.params.params if isinstance(func, (cst.FunctionDef, cst.Lambda)) else []
    first = params[0].name.value if params else ""
    passes_bools = f"isinstance({first},bool)" in index.code(func).replace(" ", "")

    def boolean(expr: cst.BaseExpression) -> bool:
        if isinstance(expr, cst.Name):
            return expr.value in ("True", "False") or (passes_bools and expr.value == first)
        if isinstance(expr, cst.Comparison):
            return True
        if isinstance(expr, cst.UnaryOperation):
            return isinstance(expr.operator, cst.Not)
        if isinstance(expr, cst.Call):
            return index.code(expr.func).rpartition(".")[2] in ("bool", "strtobool")
        if isinstance(expr, cst.BooleanOperation):
            return boolean(expr.left) and boolean(expr.right)
        return False

    if not all(boolean(r) for r in returns):
        return None
    words: dict[bool, list[str]] = {True: [], False: []}
    for expr, outcome in [(r, True) for r in returns if isinstance(r, cst.Comparison)] + tests:
        if outcome is None or not isinstance(expr, cst.Comparison):
            continue
        for target in expr.comparisons:
            if isinstance(target.operator, (cst.In, cst.Equal)):
                value = index.literal(target.comparator)
                values = [value] if isinstance(value, str) else value
                if isinstance(values, (list, tuple, set, frozenset)):
                    words[outcome] += sorted(str(v) for v in values if isinstance(v, str))
    true = "true" if "true" in words[True] or not words[True] else words[True][0]
    false = "false" if "false" in words[False] or not words[False] else words[False][0]
    if false in words[True]:
        return None
    return true, false
