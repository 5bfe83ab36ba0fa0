"""typer: `typer.run(main)`, or Typer apps with their commands, callback and added sub-apps; options and
arguments read from the parameters' annotations and `typer.Option` / `typer.Argument`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import libcst as cst

from clearml_task.arguments.model import UNKNOWN, Option, Parser, free_subcommand_key
from clearml_task.arguments.readers.source_index import MISSING, LibraryReader


class TyperReader(LibraryReader):
    """The typer apps and commands of one module."""

    def read(self) -> Parser | None:
        """The function given to `typer.run`, else the top-level Typer app (the one the module calls when
        there are several) with its commands, callback and the apps added to it."""
        apps: dict[str, dict[str, Any]] = {}
        runs: list[str] = []
        for run in self.index.calls:
            if (
                self.index.qualified(run.func) == "typer.run"
                and run.args
                and isinstance(run.args[0].value, cst.Name)
            ):
                runs.append(run.args[0].value.value)
        for statement in self.index.module.body:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if (
                        isinstance(small, cst.Assign)
                        and isinstance(small.value, cst.Call)
                        and self.index.qualified(small.value.func) == "typer.Typer"
                    ):
                        for assigned in small.targets:
                            if isinstance(assigned.target, cst.Name):
                                apps[assigned.target.value] = {
                                    "commands": [],
                                    "callback": None,
                                    "groups": [],
                                    "sub": False,
                                }
        for func in self.index.functions.values():
            for target, call in self.index.decorators(func):
                if (
                    isinstance(target, cst.Attribute)
                    and isinstance(target.value, cst.Name)
                    and target.value.value in apps
                    and target.attr.value in ("command", "callback")
                ):
                    app = apps[target.value.value]
                    if target.attr.value == "callback":
                        app["callback"] = (func, call)
                    else:
                        app["commands"].append((func, call))
        for call in self.index.calls:
            if (
                isinstance(call.func, cst.Attribute)
                and call.func.attr.value == "add_typer"
                and isinstance(call.func.value, cst.Name)
                and call.func.value.value in apps
                and call.args
                and isinstance(call.args[0].value, cst.Name)
                and call.args[0].value.value in apps
            ):
                named = self.index.keyword(call, "name")
                apps[call.func.value.value]["groups"].append(
                    (call.args[0].value.value, self.index.string(named) if named else None)
                )
                apps[call.args[0].value.value]["sub"] = True
        if runs and runs[0] in self.index.functions:
            return self.function(self.index.functions[runs[0]])
        tops = [
            name
            for name, app in apps.items()
            if not app["sub"] and (app["commands"] or app["callback"] or app["groups"])
        ]
        if not tops:
            return None
        main = self.index.called_one_of(tops)
        if main is None:
            return Parser(kind="typer", complete=False, problems=[f"several typer apps: {', '.join(tops)}"])
        return self.app(main, apps, set())

    def app(self, name: str, apps: Mapping[str, dict[str, Any]], seen: set[str]) -> Parser:
        """The parser of app `name`: a single command is the app itself; else its callback's options and a
        subcommand per command and added app."""
        app = apps[name]
        seen = seen | {name}
        if not app["callback"] and not app["groups"] and len(app["commands"]) == 1:
            return self.function(app["commands"][0][0])
        parser = self.function(app["callback"][0]) if app["callback"] else Parser(kind="typer")
        parser.subcommand_required = True
        if app["callback"]:
            invoke = self.index.keyword(app["callback"][1], "invoke_without_command")
            parser.subcommand_required = not (invoke is not None and self.index.literal(invoke) is True)
        for func, call in app["commands"]:
            named = [a.value for a in call.args if a.keyword is None][:1] if call is not None else []
            keyword = self.index.keyword(call, "name")
            named += [keyword] if keyword is not None else []
            command = (self.index.string(named[0]) if named else None) or func.name.value.lower().replace(
                "_", "-"
            )
            parser.subcommands[command] = self.function(func)
        for group, group_name in app["groups"]:
            if group in seen or not group_name:
                parser.complete = False
                parser.problems.append(f"typer app {group} is added without a name")
                continue
            parser.subcommands[group_name] = self.app(group, apps, seen)
        for sub in parser.subcommands.values():
            parser.complete = parser.complete and sub.complete
            parser.problems += sub.problems
        parser.subcommand_dest = free_subcommand_key(parser)
        return parser

    def function(self, func: cst.FunctionDef) -> Parser:
        """A command function's parser: an option or argument per parameter (typer.Context skipped)."""
        parser = Parser(kind="typer", name=func.name.value)
        for param in [*func.params.posonly_params, *func.params.params, *func.params.kwonly_params]:
            name = param.name.value
            annotation = param.annotation.annotation if param.annotation is not None else None
            info: cst.Call | None = None
            in_annotation = False
            base = annotation
            if isinstance(annotation, cst.Subscript) and (
                self.index.qualified(annotation.value) or ""
            ).endswith("Annotated"):
                elements = [e.slice.value for e in annotation.slice if isinstance(e.slice, cst.Index)]
                base = elements[0] if elements else None
                for element in elements[1:]:
                    if isinstance(element, cst.Call) and self.index.qualified(element.func) in (
                        "typer.Option",
                        "typer.Argument",
                    ):
                        info, in_annotation = element, True
            if isinstance(param.default, cst.Call) and self.index.qualified(param.default.func) in (
                "typer.Option",
                "typer.Argument",
            ):
                info, in_annotation = param.default, False
            if (
                base is not None
                and (self.index.qualified(base) or self.index.code(base)).rpartition(".")[2] == "Context"
            ):
                continue
            option = self.param(param, name, base, info, in_annotation)
            if option is None:
                parser.complete = False
            else:
                parser.options.append(option)
        return parser

    def param(
        self,
        param: cst.Param,
        name: str,
        base: cst.BaseExpression | None,
        info: cst.Call | None,
        in_annotation: bool,
    ) -> Option | None:
        """The Option of parameter `name`: `info` is its typer.Option / typer.Argument call (in an
        Annotated annotation when `in_annotation`, else its default), `base` its annotation's type. A bool
        option gets `--x/--no-x` unless its names say otherwise; a list is appended to. None (a problem
        noted) when its names are not literal."""
        decls: list[str] = []
        kw: dict[str, cst.BaseExpression] = {}
        default: Any = MISSING if param.default is None else self.default(param.default)
        if info is not None:
            positional = [a.value for a in info.args if a.keyword is None and not a.star]
            kw = {a.keyword.value: a.value for a in info.args if a.keyword is not None}
            if in_annotation:
                names = positional
            else:
                default = (
                    self.default(positional[0])
                    if positional
                    else (self.default(kw["default"]) if "default" in kw else MISSING)
                )
                names = positional[1:]
            for expr in names:
                text = self.index.string(expr)
                if text is None:
                    self.index.problems.append(
                        f"line {self.index.line(param)}: typer names that are not literal"
                    )
                    return None
                decls.append(text)
        if default is Ellipsis:
            default = MISSING
        type_, type_name, is_list, choices = self.annotation(base, default)
        help_expr = kw.get("help")
        help_text = self.index.string(help_expr) if help_expr is not None else None
        is_argument = (info is not None and self.index.qualified(info.func) == "typer.Argument") or (
            info is None and param.default is None
        )
        option = Option(dest=name, type=type_, type_name=type_name, choices=choices, help=help_text)
        option.required = default is MISSING
        option.default = None if default is MISSING else default
        if is_argument:
            option.nargs = ("+" if option.required else "*") if is_list else None
            return option
        flag = name.replace("_", "-")
        if type_ == "bool" and not is_list:
            if not decls:
                option.option_strings, option.negatives = [f"--{flag}"], [f"--no-{flag}"]
                option.action = "boolean_optional"
            else:
                primary, secondary = [], []
                for decl in decls:
                    first, sep, second = decl.partition("/")
                    primary += [first.strip()] if first.strip() else []
                    secondary += [second.strip()] if sep and second.strip() else []
                option.option_strings, option.negatives = primary or secondary, secondary
                option.action = (
                    "boolean_optional"
                    if secondary
                    else ("store_false" if option.default is True else "store_true")
                )
            if option.default is None and not option.required:
                option.default = False
            return option
        option.option_strings = decls or [f"--{flag}"]
        if "count" in kw and self.index.literal(kw["count"]) is True:
            option.action, option.type = "count", "int"
            option.default = option.default or 0
        elif is_list:
            option.action = "append"
        return option

    def annotation(
        self, expr: cst.BaseExpression | None, default: Any
    ) -> tuple[str, str, bool, list[Any] | None]:
        """(type, type name, is a list, choices) of a typer parameter's annotation."""
        if expr is None:
            for kind in (bool, int, float):
                if type(default) is kind:
                    return kind.__name__, kind.__name__, False, None
            return "str", "", False, None
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.BitOr):
            left, right = expr.left, expr.right
            return self.annotation(right if self.index.code(left) == "None" else left, default)
        if isinstance(expr, cst.Subscript):
            outer = (self.index.qualified(expr.value) or self.index.code(expr.value)).rpartition(".")[2]
            inner = [e.slice.value for e in expr.slice if isinstance(e.slice, cst.Index)]
            if outer == "Optional" and inner:
                return self.annotation(inner[0], default)
            if outer == "Union":
                rest = [e for e in inner if self.index.code(e) != "None"]
                if len(rest) == 1:
                    return self.annotation(rest[0], default)
            if outer in ("List", "list", "Sequence") and inner:
                type_, type_name, _, choices = self.annotation(inner[0], None)
                return type_, type_name, True, choices
            return "unknown", self.index.code(expr), False, None
        name = self.index.code(expr)
        if name in ("int", "float", "str", "bool"):
            return name, name, False, None
        if name in self.index.classes:
            values = self.enum_values(self.index.classes[name])
            if values:
                return "str", name, False, values
        return "unknown", name.rpartition(".")[2], False, None

    def default(self, expr: cst.BaseExpression) -> Any:
        """A literal, or a member of an Enum class of the module (typer passes its value)."""
        value = self.index.literal(expr)
        if (
            value is UNKNOWN
            and isinstance(expr, cst.Attribute)
            and isinstance(expr.value, cst.Name)
            and expr.value.value in self.index.classes
        ):
            members = self.enum_members(self.index.classes[expr.value.value]) or {}
            value = members.get(expr.attr.value, UNKNOWN)
        return value

    def enum_values(self, cls: cst.ClassDef) -> list[Any] | None:
        """The values of an Enum class of the module (typer's choices), or None."""
        members = self.enum_members(cls)
        return list(members.values()) if members else None

    def enum_members(self, cls: cst.ClassDef) -> dict[str, str] | None:
        """An Enum class's members (name → value as text), or None when it is not one or not literal."""
        if not any("Enum" in self.index.code(base.value) for base in cls.bases):
            return None
        members: dict[str, str] = {}
        for statement in cls.body.body:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if isinstance(small, cst.Assign) and isinstance(small.targets[0].target, cst.Name):
                        value = self.index.literal(small.value)
                        if value is UNKNOWN:
                            return None
                        members[small.targets[0].target.value] = str(value)
        return members or None


read = TyperReader.read_index  # the typer command the module runs (an app with its subcommands), or None
