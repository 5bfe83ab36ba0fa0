"""click: commands and groups read from their decorators (`@click.command`, `@group.command`,
`@click.option`, `@click.argument`) and `add_command` calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import libcst as cst

from clearml_task.arguments.model import UNKNOWN, Option, Parser, free_subcommand_key
from clearml_task.arguments.readers.source_index import MISSING, LibraryReader


class ClickReader(LibraryReader):
    """The click commands of one module: what each decorator declares, and how groups nest."""

    def read(self) -> Parser | None:
        """The decorated commands and groups (`@click.command`, `@cli.command`), nested by their decorators
        and `add_command` calls; of several top-level ones, the one the module calls. Something other than
        click's own decorators may add options: the parser is then incomplete."""
        found: dict[str, dict[str, Any]] = {}
        for name, func in self.index.functions.items():
            info: dict[str, Any] = {
                "func": func,
                "kind": None,
                "parent": None,
                "name": None,
                "params": [],
                "other": [],
            }
            for target, call in self.index.decorators(func):
                qualified = self.index.qualified(target)
                if qualified in ("click.command", "click.group"):
                    info["kind"] = qualified.rpartition(".")[2]
                    info["call"] = call
                elif (
                    isinstance(target, cst.Attribute)
                    and target.attr.value in ("command", "group")
                    and isinstance(target.value, cst.Name)
                    and qualified is None
                ):
                    info["kind"], info["parent"], info["call"] = target.attr.value, target.value.value, call
                elif qualified in ("click.option", "click.argument") and call is not None:
                    info["params"].append((qualified.rpartition(".")[2], call))
                elif qualified not in (
                    "click.pass_context",
                    "click.pass_obj",
                    "click.version_option",
                    "click.help_option",
                ):
                    info["other"].append(self.index.code(target))
            if info["kind"]:
                found[name] = info
        for name in list(found):
            parent = found[name]["parent"]
            if parent is not None and (parent not in found or found[parent]["kind"] != "group"):
                del found[name]  # `app.command()` of something that is not a click group (typer, ...)
        if not found:
            return None
        for call in self.index.calls:
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "add_command":
                group = call.func.value
                args = [a for a in call.args if a.keyword is None]
                if isinstance(group, cst.Name) and args and isinstance(args[0].value, cst.Name):
                    child = args[0].value.value
                    if group.value in found and child in found:
                        found[child]["parent"] = group.value
                        named = [
                            a.value for a in call.args if a.keyword is not None and a.keyword.value == "name"
                        ]
                        named += [a.value for a in args[1:2]]
                        if named:
                            found[child]["name"] = self.index.string(named[0])
        tops = [name for name, info in found.items() if info["parent"] is None]
        main = self.index.called_one_of(tops)
        if main is None:
            return Parser(
                kind="click", complete=False, problems=[f"several click commands: {', '.join(tops)}"]
            )
        return self.command(main, found)

    def command(self, name: str, found: Mapping[str, dict[str, Any]]) -> Parser:
        """The parser of command `name`; a group's subcommands under it."""
        info = found[name]
        parser = Parser(kind="click", name=info["name"] or self.command_name(info))
        call: cst.Call | None = info.get("call")
        for kind, param_call in info["params"]:
            option = self.param(kind, param_call)
            if option is None:
                parser.complete = False
            else:
                parser.options.append(option)
        if info["other"]:
            parser.complete = False
            parser.problems.append(f"{name}: decorators that may add options: {', '.join(info['other'])}")
        if info["kind"] == "group":
            invoke = self.index.keyword(call, "invoke_without_command")
            parser.subcommand_required = not (invoke is not None and self.index.literal(invoke) is True)
            for child, child_info in found.items():
                if child_info["parent"] == name:
                    sub = self.command(child, found)
                    command = child_info["name"] or self.command_name(child_info)
                    parser.subcommands[command] = sub
                    parser.complete = parser.complete and sub.complete
                    parser.problems += sub.problems
            parser.subcommand_dest = free_subcommand_key(parser)
        return parser

    def command_name(self, info: Mapping[str, Any]) -> str:
        """A command's name: given in its decorator, else click's from the function's."""
        call = info.get("call")
        if call is not None:
            named = [a.value for a in call.args if a.keyword is None][:1]
            named += [a.value for a in call.args if a.keyword is not None and a.keyword.value == "name"]
            if named and self.index.string(named[0]):
                return str(self.index.string(named[0]))
        command = str(info["func"].name.value).lower().replace("_", "-")
        left, sep, suffix = command.rpartition("-")
        return left if sep and suffix in ("command", "cmd", "group", "grp") else command

    def param(self, kind: str, call: cst.Call) -> Option | None:
        """The Option a `click.option(...)` or `click.argument(...)` declares (kind "option" or
        "argument"): its names as click derives them, and its action from is_flag, flag_value, count,
        multiple and the `--x/--no-x` form. None (a problem noted) when its names are not literal."""
        decls: list[str] = []
        kw: dict[str, cst.BaseExpression] = {}
        for arg in call.args:
            text = self.index.string(arg.value) if arg.keyword is None and not arg.star else None
            if arg.star or (arg.keyword is None and text is None):
                self.index.problems.append(
                    f"line {self.index.line(call)}: click.{kind}(...) with names that are not literal"
                )
                return None
            if arg.keyword is None and text is not None:
                decls.append(text)
            elif arg.keyword is not None:
                kw[arg.keyword.value] = arg.value

        def given(key: str, fallback: Any = None) -> Any:
            return self.index.literal(kw[key]) if key in kw else fallback

        default = given("default", MISSING)
        type_, type_name, choices = self.param_type(kw.get("type"), default)
        help_text = given("help")
        option = Option(
            dest="", type=type_, type_name=type_name, choices=choices,
            help=help_text if isinstance(help_text, str) else None,
        )  # fmt: skip
        nargs = given("nargs", 1)
        if kind == "argument":
            if not decls:
                return None
            option.dest = decls[0].replace("-", "_").lower()
            required = given("required", default is MISSING and nargs != -1)
            option.required = required is True
            if nargs == -1:
                option.nargs = "+" if required is True else "*"
                option.default = [] if default is MISSING else default
            else:
                option.nargs = nargs if isinstance(nargs, int) and nargs > 1 else None
                option.default = None if default is MISSING else default
            return option
        name, opts, secondary = _option_names(decls)
        if not name or not (opts or secondary):
            self.index.problems.append(
                f"line {self.index.line(call)}: click.option{tuple(decls)} cannot be read"
            )
            return None
        option.dest, option.option_strings = name, opts or secondary
        option.required = given("required") is True
        is_flag = given("is_flag", None)
        if "flag_value" in kw and not isinstance(given("flag_value"), bool):
            option.action, option.const = "store_const", given("flag_value")
            option.default = None if default is MISSING else default
        elif given("count") is True:
            option.action, option.type = "count", "int"
            option.default = 0 if default is MISSING else default
        elif secondary and is_flag is not False:
            option.action, option.negatives, option.type = "boolean_optional", secondary, "bool"
            option.default = False if default is MISSING else default
        elif is_flag is True:
            flag_default = False if default is MISSING else default
            option.action = "store_false" if flag_default is True else "store_true"
            option.type, option.default = "bool", flag_default
        elif given("multiple") is True:
            option.action = "append"
            option.default = [] if default is MISSING or default is None else default
        else:
            option.nargs = nargs if isinstance(nargs, int) and nargs > 1 else None
            option.default = None if default is MISSING else default
        return option

    def param_type(self, expr: cst.BaseExpression | None, default: Any) -> tuple[str, str, list[Any] | None]:
        """(type, type name, choices) of a parameter's type=, or of its default when there is none."""
        if expr is None:
            sample = default[0] if isinstance(default, (list, tuple)) and default else default
            for kind in (bool, int, float):
                if type(sample) is kind:
                    return kind.__name__, "", None
            return "str", "", None
        call = expr if isinstance(expr, cst.Call) else None
        qualified = self.index.qualified(call.func if call else expr) or self.index.code(
            call.func if call else expr
        )
        short = qualified.rpartition(".")[2]
        simple = {
            "int": "int", "float": "float", "str": "str", "bool": "bool", "INT": "int", "FLOAT": "float",
            "STRING": "str", "BOOL": "bool", "IntRange": "int", "FloatRange": "float",
        }  # fmt: skip
        if short == "Choice" and call is not None and call.args:
            choices = self.index.literal(call.args[0].value)
            if isinstance(choices, (list, tuple)):
                return "str", "Choice", [str(c) for c in choices]
            return "str", "Choice", UNKNOWN
        if short in simple and (
            qualified.startswith("click.") or qualified in ("int", "float", "str", "bool")
        ):
            return simple[short], short if short in ("int", "float", "str", "bool") else simple[short], None
        return "unknown", short, None


read = ClickReader.read_index  # the click command the module runs (a group with its subcommands), or None


def _option_names(decls: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """click's naming: an identifier among the declarations, else the first of the longest-prefixed."""
    name = ""
    opts: list[str] = []
    secondary: list[str] = []
    possible: list[tuple[str, str]] = []
    for decl in decls:
        if decl.isidentifier():
            name = decl
            continue
        split = ";" if decl[:1] == "/" else "/"
        first, sep, second = decl.partition(split) if split in decl else (decl, "", "")
        if first.strip():
            opts.append(first.strip())
            possible.append(_split_opt(first.strip()))
        if sep and second.strip():
            secondary.append(second.strip())
    if not name and possible:
        possible.sort(key=lambda pair: -len(pair[0]))
        name = possible[0][1].replace("-", "_").lower()
        if not name.isidentifier():
            name = ""
    return name, opts, secondary


def _split_opt(opt: str) -> tuple[str, str]:
    """An option string's prefix and name (`--lr` → `--`, `lr`), as click splits it."""
    first = opt[:1]
    if first.isalnum():
        return "", opt
    if opt[1:2] == first:
        return opt[:2], opt[2:]
    return first, opt[1:]
