"""Args → argv: the command line a run passes to its script, built from the task's hyperparams.Args
against the parser read from the reproduced source; Hydra's `key=value` overrides and options, and the
keys the clearml SDK records for click groups and subcommands."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from clearml_task.arguments.model import (
    LIST_ACTIONS,
    READABLE,
    UNKNOWN,
    CommandLine,
    Option,
    Parser,
    options_by_dest,
    slots_of,
)
from clearml_task.arguments.tokens import Inexpressible, tokens_for, with_value
from clearml_task.arguments.values import format_value, interpret, is_default, list_items, token_text
from clearml_task.errors import UserError

# The first cut (a script whose parser cannot be read) reads only these as a switch given or not: "on"
# and "off" are passed as values (`--x on`), as they always were, since nothing says the script takes
# them as booleans. (The vocabulary's TRUE_WORDS / FALSE_WORDS include them.)
_SWITCH_ON = {"true", "yes", "1"}
_SWITCH_OFF = {"false", "no", "0"}


def command_line(args_section: Mapping[str, Mapping[str, Any]], parser: Parser) -> CommandLine:
    """The argv (after the script) for a task's hyperparams.Args, read against the script's parser: only
    what differs from the defaults, with the right option strings; Hydra overrides for a Hydra app, and
    the first cut (every entry as `--name value`) for a script whose parser cannot be read."""
    values = _args_values(args_section)
    if parser.kind == "hydra":
        return CommandLine(_hydra_tokens(values), "hydra", problems=parser.problems)
    if parser.kind not in READABLE:
        return CommandLine(_fallback_argv(args_section), parser.kind, problems=parser.problems)
    if parser.kind == "click" and parser.subcommands:
        values = _from_clearml_click_keys(args_section, values, parser)
    used: set[str] = set()
    problems = list(parser.problems)
    if parser.sdk_binds_args:  # the SDK gives these their values; passed too, they would count twice
        left = [
            d
            for d, options in options_by_dest(parser).items()
            if options[0].action in ("append", "extend", "count") and d not in parser.sdk_unbound
        ]
        values = {key: value for key, value in values.items() if key not in left}
        used.update(left)
        if left:
            problems.append(f"set by the clearml SDK (Task.init), not on the command line: {', '.join(left)}")
    out = _level_tokens(parser, values, "", used, set(options_by_dest(parser)))
    known = set(slots_of(parser))
    rest = {key: value for key, value in values.items() if key not in used and key not in known}
    if rest and not parser.complete:
        extra = _fallback_argv({k: {"name": k, "value": v} for k, v in rest.items()})
        return CommandLine(extra + out, parser.kind, problems=problems)
    return CommandLine(out, parser.kind, sorted(rest), problems)


HYDRA_FLAGS = (  # Hydra's own command line (hydra._internal.utils.get_args_parser), as Args keys
    Option("cfg", ["--cfg", "-c"], choices=["job", "hydra", "all"]),
    Option("resolve", ["--resolve"], "store_true", "bool", default=False),
    Option("package", ["--package", "-p"]),
    Option("run", ["--run", "-r"], "store_true", "bool", default=False),
    Option("multirun", ["--multirun", "-m"], "store_true", "bool", default=False),
    Option("config_path", ["--config-path", "-cp"]),
    Option("config_name", ["--config-name", "-cn"]),
    Option("config_dir", ["--config-dir", "-cd"]),
    Option("experimental_rerun", ["--experimental-rerun"]),
    Option("info", ["--info", "-i"], nargs="?"),
)
HYDRA_IGNORED = ("help", "hydra_help", "version", "shell_completion")


def _hydra_tokens(values: Mapping[str, str]) -> list[str]:
    """Hydra: `key=value` overrides. Keys that are Hydra's own options (`config_name`, `multirun`; the
    clearml SDK records them in Args) become those options; `overrides` (the SDK's record of the command
    line's overrides, a list) becomes its items."""
    flags = Parser(kind="argparse", options=list(HYDRA_FLAGS))
    out = _level_tokens(flags, values, "", set(), set())
    for key, value in values.items():
        if key == "overrides" and value.strip()[:1] in ("[", ""):
            out += [token_text(item) for item in list_items(value) if not isinstance(item, list)]
        elif key not in HYDRA_IGNORED and not any(key == option.dest for option in HYDRA_FLAGS):
            out.append(f"{key}={value}")
    return out


def _from_clearml_click_keys(
    args_section: Mapping[str, Mapping[str, Any]], values: dict[str, str], parser: Parser
) -> dict[str, str]:
    """Args of a click group as the clearml SDK records them: `command/option`, and an entry per command
    (type click.Command) that is True for the one that ran."""
    group = f"{parser.name}/"  # the group's own options: `cli/verbose`
    out = {key.removeprefix(group).replace("/", "."): value for key, value in values.items()}
    for key, param in args_section.items():
        name = str(param.get("name") or key)
        if param.get("type") == "click.Command":
            out.pop(name, None)
            if str(param.get("value")).strip().lower() == "true":
                out.setdefault(parser.subcommand_dest, name)
    return out


def _fallback_argv(args_section: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The first cut, for a script whose parser cannot be read: each Args entry becomes `--name value`;
    "true" a bare flag, "false" nothing, a Python list literal several values."""
    out: list[str] = []
    for name, param in args_section.items():
        key = str(param.get("name") or name)
        if not key or key.startswith("_"):
            continue
        option = key if key.startswith("-") else f"--{key}"
        value = "" if param.get("value") is None else str(param.get("value"))
        if value.lower() in _SWITCH_ON and (
            param.get("type") in ("bool", "boolean") or value.lower() == "true"
        ):
            out.append(option)
        elif value.lower() == "false" or (
            value.lower() in _SWITCH_OFF and param.get("type") in ("bool", "boolean")
        ):
            continue
        else:
            out += [option, *_list_literal_values(value)]
    return out


def _list_literal_values(value: str) -> list[str]:
    """A Python list literal's items as text; any other value as it is."""
    if value.startswith("[") and value.endswith("]"):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return [value]
        if isinstance(parsed, list):
            return [str(v) for v in parsed]
    return [value]


def _dest_tokens(options: Sequence[Option], text: str, key: str, script: str) -> list[str]:
    """Run time: the tokens for one Args entry; a value the script must judge itself is passed as it is."""
    first = options[0]
    if not text.strip() and first.action == "store" and first.type not in ("str", "unknown"):
        return []  # a value cleared in a UI: the default
    if first.default is not UNKNOWN and text == format_value(first.default):
        return []  # the default as recorded (`[]` of a nargs="+" option, which no value can give)
    try:
        value = interpret(first, text)
    except ValueError:
        if first.action == "store" and not first.many:
            return [text] if first.positional else with_value(first, text)
        if first.action in ("store", *LIST_ACTIONS) and first.many:
            raw = [token_text(v) for v in list_items(text)]
            if not raw and not first.positional:  # `--items` alone: the script's parser refuses it
                raise UserError(
                    f"Args {key}={text!r} cannot be passed to {script}",
                    f"{first.display} takes at least one value: give one, or its default",
                ) from None
            return raw if first.positional else [first.option_strings[0], *raw]
        raise UserError(
            f"Args {key}={text!r} cannot be passed to {script}", f"{first.display}: check the value"
        ) from None
    if is_default(first, value, text):
        return []
    try:
        return tokens_for(options, value, text)
    except Inexpressible as e:
        raise UserError(f"Args {key}={text!r} cannot be passed to {script}: {e}") from None


def _level_tokens(
    parser: Parser, values: Mapping[str, str], prefix: str, used: set[str], top: set[str]
) -> list[str]:
    """The tokens of one parser level (keys under `prefix`) and of the subcommand that runs, recursively:
    optionals first, then positionals (an optional positional before a given one gets its default), then
    the subcommand's name and tokens. The subcommand is the one named under its key, else the only one
    whose options are given. Adds the keys it uses to `used`; `top`: the main parser's dests, which a
    subcommand's option never takes by its bare dest."""
    optionals: list[str] = []
    positionals: list[tuple[list[Option], list[str]]] = []
    for dest, options in options_by_dest(parser).items():
        key = prefix + dest
        text = values.get(key)
        if text is None and prefix and dest in values and dest not in top:
            key = dest  # as the clearml SDK records a subcommand's option: by its dest alone
            text = values[dest]
        if text is not None:
            used.add(key)
        tokens = _dest_tokens(options, text, key, parser.script) if text is not None else []
        if options[0].positional:
            positionals.append((options, tokens))
        else:
            optionals += tokens
    last = max((i for i, (_, tokens) in enumerate(positionals) if tokens), default=-1)
    # an optional positional before one that is given gets its default, or the next one takes its place
    for i in range(last):
        options, tokens = positionals[i]
        default = options[0].default
        if not tokens and default is not None and default is not UNKNOWN:
            with contextlib.suppress(Inexpressible):
                value = list(default) if isinstance(default, tuple) else default
                positionals[i] = (options, tokens_for(options, value, format_value(default)))
    out = optionals + [token for _, tokens in positionals for token in tokens]
    if not parser.subcommands:
        return out
    key = prefix + parser.subcommand_dest
    named = values.get(key, "").strip()
    used.add(key)
    name = parser.aliases.get(named, named)
    if not name:
        running = [
            n
            for n, sub in parser.subcommands.items()
            if _level_tokens(sub, values, f"{prefix}{n}.", set(), top)
        ]
        name = named = running[0] if len(running) == 1 else ""
    if name in parser.subcommands:
        return [*out, named, *_level_tokens(parser.subcommands[name], values, f"{prefix}{name}.", used, top)]
    return [*out, named] if named else out


def _args_values(args_section: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Args entries as key → text; keys starting with '_' are clearml's own and never passed."""
    out: dict[str, str] = {}
    for name, param in args_section.items():
        key = str(param.get("name") or name)
        if key and not key.startswith("_"):
            value = param.get("value")
            out[key] = "" if value is None else str(value)
    return out
