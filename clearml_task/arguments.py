"""Arguments: `--args k=v` into hyperparams.Args at creation, and back into a command line at run time.

The entry point's parser is read statically with libcst, never by running the script (`read_parser`):
argparse (groups, mutually exclusive groups, parents, subparsers), click, typer and Hydra. At creation
`parse_overrides` reads the pairs and `check_and_record` checks them against the parser and records every
option in hyperparams.Args, so a clone can be edited in any ClearML UI. At run time the launcher reads the
parser again from the reproduced file and `command_line` turns the Args back into the argv the script's own
parser accepts: only what differs from the defaults, with the right option string and action.

Value forms are those the clearml SDK (2.1) records for argparse options, so both sides read each other's
tasks: lists as a Python list literal (`[3, 4]`), booleans `True` / `False` (read back in any case, also
1/0 and yes/no), and None as an empty value (the SDK records None as ""; "None" is read back the same).
What cannot be read literally (a default from `os.environ`, a custom type) is reported as unknown and never
guessed: an option whose default is unknown is recorded only when it is given, and passed only then.

Subcommand options are addressed as `sub.option`; the subcommand that runs is recorded under the
subparsers' dest (or `command`). `argv()` is the first cut, kept for scripts whose parser cannot be read.

Args recorded by ClearML's own tools are read too: plain dests for subcommand options, `command/option`
and click.Command entries for click groups, Hydra's own options and `overrides` list. When the script calls
Task.init, the clearml SDK sets the argparse defaults from the same Args before parsing; the command line
then agrees with it, except for what accumulates (append, extend, count), which is left to the SDK.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task.errors import UserError

if TYPE_CHECKING:
    import libcst as cst

READABLE = ("argparse", "click", "typer")  # kinds whose options are read, checked and recorded
FLAGS = ("store_true", "store_false", "boolean_optional")
LIST_ACTIONS = ("append", "extend")
ARGPARSE_ACTIONS = (
    "store", "store_const", "store_true", "store_false", "append", "append_const", "extend", "count",
    "help", "version",
)  # fmt: skip
TRUE = {"true", "yes", "1"}
FALSE = {"false", "no", "0"}
BOOL_WORDS = {
    "true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False,
}  # fmt: skip
PARSE_METHODS = ("parse_args", "parse_known_args", "parse_intermixed_args", "parse_known_intermixed_args")
ARGPARSE_CONSTANTS = {
    "argparse.SUPPRESS": "==SUPPRESS==", "argparse.OPTIONAL": "?", "argparse.ZERO_OR_MORE": "*",
    "argparse.ONE_OR_MORE": "+", "argparse.REMAINDER": "...", "argparse.PARSER": "A...",
}  # fmt: skip
SUPPRESS = "==SUPPRESS=="


class _Unknown:
    """What the script computes at run time and this module does not guess."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unknown:
        return self

    def __reduce__(self) -> str:
        return "UNKNOWN"  # unpickled as the module's one UNKNOWN, so `is UNKNOWN` holds


UNKNOWN: Any = _Unknown()


@dataclass
class Option:
    """One argument of a script's command line, as read from its source."""

    dest: str  # the name the script reads it by, and its key in hyperparams.Args
    option_strings: list[str] = field(default_factory=list)  # empty for a positional
    # store, store_const, store_true, store_false, boolean_optional (--x/--no-x), append, append_const,
    # extend, count, custom (an action class, or calls that cannot be read)
    action: str = "store"
    type: str = "str"  # what a value must be: int, float, str, bool, or unknown (any text, passed as it is)
    type_name: str = ""  # the converter as the script names it ("int", "str2bool", "Path"); "" if none
    default: Any = None  # UNKNOWN when it cannot be read literally
    const: Any = None
    choices: list[Any] | None = None  # UNKNOWN when not literal
    nargs: int | str | None = None
    required: bool = False  # must be given on the command line
    help: str | None = None
    negatives: list[str] = field(default_factory=list)  # the --no-x strings of a boolean_optional
    exclusive: int | None = None  # the mutually exclusive group it is in
    true_token: str = "true"  # how a bool-typed value is written for the script's converter
    false_token: str = "false"

    @property
    def positional(self) -> bool:
        return not self.option_strings

    @property
    def many(self) -> bool:
        """Its value is a list."""
        return (
            self.action in LIST_ACTIONS
            or self.nargs in ("+", "*", "...", "A...")
            or (isinstance(self.nargs, int) and self.action == "store")
        )

    @property
    def display(self) -> str:
        return "/".join(self.option_strings) if self.option_strings else self.dest


@dataclass
class Parser:
    """A script's command line as read statically."""

    kind: str = "none"  # argparse, click, typer, hydra, none
    options: list[Option] = field(default_factory=list)
    subcommands: dict[str, Parser] = field(default_factory=dict)
    subcommand_dest: str = "command"  # the Args key (under the parent's prefix) naming the subcommand
    subcommand_required: bool = False
    aliases: dict[str, str] = field(default_factory=dict)  # subcommand alias → name
    complete: bool = True  # every option was read (False: unknown keys are accepted, not rejected)
    problems: list[str] = field(default_factory=list)
    filename: str = ""
    name: str = ""
    # the script calls clearml's Task.init with its argparse binding on: at run time the SDK sets the
    # options' defaults from Args before parsing, so what accumulates (append, extend, count) is not passed
    sdk_binds_args: bool = False

    @property
    def script(self) -> str:
        return Path(self.filename).name or "the script"


@dataclass
class CommandLine:
    argv: list[str]
    kind: str = "none"
    ignored: list[str] = field(default_factory=list)  # Args keys that are nothing on the script's parser
    problems: list[str] = field(default_factory=list)  # what could not be read in the script


# ------------------------------------------------------------------------------------------- creation
def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """`--args k=v ...`: the value may contain '=' or be empty; a repeated key: the last one wins."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise UserError(
                f"--args takes key=value pairs, got {pair!r}", "write it as name=value", exit_code=2
            )
        out.pop(key, None)
        out[key] = value
    return out


def check_and_record(
    parser: Parser, overrides: Mapping[str, str], *, require: bool = True
) -> dict[str, dict[str, str]]:
    """hyperparams.Args for the task: every option of a readable parser (the override or the default), the
    overrides checked against it first; for other scripts the pairs as they are. `require`: an option the
    script requires (a positional, required=True, a required subcommand) must be given; pass False for a
    draft that is edited before it runs."""
    if parser.kind not in READABLE:
        return {key: _entry(key, value, "str") for key, value in overrides.items()}
    slots = _slots(parser)
    given: dict[str, tuple[str, str]] = {}  # full key → (the key as written, value)
    extra: dict[str, str] = {}
    for key, text in overrides.items():
        full = _resolve(parser, slots, key)
        if full is None:
            if parser.complete:
                raise _unknown_key(parser, slots, key)
            extra[key] = text
        else:
            given[full] = (key, text)
    chain = _chosen(parser, {k: v for k, (_, v) in given.items()})
    recorded = {full: _checked(parser, slots[full], key, text) for full, (key, text) in given.items()}
    _check_exclusive(parser, slots, given, recorded)
    if require:
        _check_required(parser, recorded, chain)
    section: dict[str, dict[str, str]] = {}
    for full, slot in slots.items():
        if not slot.options:
            names = ", ".join(slot.level.subcommands)
            value = chain.get(slot.prefix, "")
            section[full] = _entry(full, value, "str", f"the subcommand that runs: {names}")
            continue
        first = slot.options[0]
        if full in recorded:
            value = recorded[full]
        elif first.default is UNKNOWN:
            continue  # recorded only when given: a recorded guess would be passed back as an override
        else:
            value = _format(first.default)
        section[full] = _entry(full, value, _type_name(first), first.help)
    for key, text in extra.items():
        section[key] = _entry(key, text, "str")
    return section


def merge_overrides(
    args_section: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, str]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """A clone's Args with the overrides applied (type and description kept); also the keys it did not
    have before, which may be typos: a clone has no source to check them against."""
    merged = {key: dict(param) for key, param in args_section.items()}
    names = {str(param.get("name") or key): key for key, param in merged.items()}
    new: list[str] = []
    for key, text in overrides.items():
        if key in names:
            merged[names[key]]["value"] = text
        else:
            merged[key] = _entry(key, text, "str")
            new.append(key)
    return merged, new


# ------------------------------------------------------------------------------------------- run time
def command_line(args_section: Mapping[str, Mapping[str, Any]], parser: Parser) -> list[str]:
    """The argv (after the script) for a task's hyperparams.Args."""
    return render(args_section, parser).argv


def render(args_section: Mapping[str, Mapping[str, Any]], parser: Parser) -> CommandLine:
    values = _values(args_section)
    if parser.kind == "hydra":
        return CommandLine(_hydra_argv(values), "hydra", problems=parser.problems)
    if parser.kind not in READABLE:
        return CommandLine(argv(args_section), parser.kind, problems=parser.problems)
    if parser.kind == "click" and parser.subcommands:
        values = _from_clearml_click(args_section, values, parser)
    used: set[str] = set()
    problems = list(parser.problems)
    if parser.sdk_binds_args:  # the SDK gives these their values; passed too, they would count twice
        left = [
            d for d, options in _dests(parser).items() if options[0].action in ("append", "extend", "count")
        ]
        values = {key: value for key, value in values.items() if key not in left}
        used.update(left)
        if left:
            problems.append(f"set by the clearml SDK (Task.init), not on the command line: {', '.join(left)}")
    out = _render_level(parser, values, "", used, set(_dests(parser)))
    known = set(_slots(parser))
    rest = {key: value for key, value in values.items() if key not in used and key not in known}
    if rest and not parser.complete:
        extra = argv({k: {"name": k, "value": v} for k, v in rest.items()})
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


def _hydra_argv(values: Mapping[str, str]) -> list[str]:
    """Hydra: `key=value` overrides. Keys that are Hydra's own options (`config_name`, `multirun`; the
    clearml SDK records them in Args) become those options; `overrides` (the SDK's record of the command
    line's overrides, a list) becomes its items."""
    flags = Parser(kind="argparse", options=list(HYDRA_FLAGS))
    out = _render_level(flags, values, "", set(), set())
    for key, value in values.items():
        if key == "overrides" and value.strip()[:1] in ("[", ""):
            out += [_text(item) for item in _items(value) if not isinstance(item, list)]
        elif key not in HYDRA_IGNORED and not any(key == option.dest for option in HYDRA_FLAGS):
            out.append(f"{key}={value}")
    return out


def _from_clearml_click(
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


def entry_file(workdir: Path, root: Path, entry_point: str) -> Path | None:
    """The Python file an entry point runs (`train.py`, `-m pkg.main`), or None."""
    entry = entry_point.strip()
    if entry.startswith("-m "):
        parts = entry[3:].split()
        if not parts:
            return None
        relative = parts[0].replace(".", "/")
        for base in dict.fromkeys((workdir, root)):
            for candidate in (base / f"{relative}.py", base / relative / "__main__.py"):
                if candidate.is_file():
                    return candidate
        return None
    if not entry or entry.endswith(".sh"):
        return None
    path = workdir / entry.split()[0]
    return path if path.is_file() else None


def for_run(args_section: Mapping[str, Mapping[str, Any]], script: Path | None) -> CommandLine:
    """The launcher's half: the parser read from the reproduced entry point; `argv()` when it cannot be."""
    parser = Parser()
    if script is not None:
        try:
            parser = read_parser_cached(script.read_text(encoding="utf-8"), script.name)
        except (OSError, UnicodeDecodeError) as e:
            parser = Parser(problems=[f"{script.name}: {e}"])
    return render(args_section, parser)


def argv(args_section: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The first cut, for a script whose parser cannot be read: each Args entry becomes `--name value`;
    "true" a bare flag, "false" nothing, a Python list literal several values."""
    out: list[str] = []
    for name, param in args_section.items():
        key = str(param.get("name") or name)
        if not key or key.startswith("_"):
            continue
        option = key if key.startswith("-") else f"--{key}"
        value = "" if param.get("value") is None else str(param.get("value"))
        if value.lower() in TRUE and (param.get("type") in ("bool", "boolean") or value.lower() == "true"):
            out.append(option)
        elif value.lower() == "false" or (
            value.lower() in FALSE and param.get("type") in ("bool", "boolean")
        ):
            continue
        else:
            out += [option, *_list_values(value)]
    return out


def _list_values(value: str) -> list[str]:
    if value.startswith("[") and value.endswith("]"):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return [value]
        if isinstance(parsed, list):
            return [str(v) for v in parsed]
    return [value]


# ---------------------------------------------------------------------------------- keys and checks
@dataclass
class _Slot:
    level: Parser
    prefix: str  # "" on the main parser, "train." on subcommand train
    options: list[Option]  # the options that share this dest; empty: the slot naming the subcommand


def _dests(parser: Parser) -> dict[str, list[Option]]:
    out: dict[str, list[Option]] = {}
    for option in parser.options:
        out.setdefault(option.dest, []).append(option)
    return out


def _slots(parser: Parser, prefix: str = "") -> dict[str, _Slot]:
    out = {prefix + dest: _Slot(parser, prefix, options) for dest, options in _dests(parser).items()}
    if parser.subcommands:
        out[prefix + parser.subcommand_dest] = _Slot(parser, prefix, [])
        for name, sub in parser.subcommands.items():
            out.update(_slots(sub, f"{prefix}{name}."))
    return out


def _levels(parser: Parser, chain: Mapping[str, str]) -> Iterator[tuple[str, Parser]]:
    """The main parser and the subcommands that run, with their key prefixes."""
    prefix, level = "", parser
    while True:
        yield prefix, level
        name = chain.get(prefix)
        if not name:
            return
        level, prefix = level.subcommands[name], f"{prefix}{name}."


def _resolve(parser: Parser, slots: Mapping[str, _Slot], key: str) -> str | None:
    """The Args key an override means: its dest, one of its option strings without the dashes
    (`learning-rate`), or a subcommand's option without the prefix when only one subcommand has it."""
    if key in slots:
        return key
    spelled = {
        slot.prefix + string.lstrip("-+/"): full
        for full, slot in slots.items()
        for option in slot.options
        for string in option.option_strings
    }
    if key in spelled:
        return spelled[key]
    if "." in key:
        return None
    owners = sorted(
        {
            full
            for spelling, full in [*spelled.items(), *((f, f) for f in slots)]
            if spelling.endswith(f".{key}")
        }
    )
    if len(owners) > 1:
        raise UserError(
            f"--args {key}: {parser.script} has {key!r} in several subcommands",
            f"write one of {', '.join(owners)}",
            exit_code=2,
        )
    return owners[0] if owners else None


def _unknown_key(parser: Parser, slots: Mapping[str, _Slot], key: str) -> UserError:
    known = list(slots)
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    suggestion = f"; did you mean {' or '.join(close)}?" if close else ""
    shown = ", ".join(known[:40]) + (f", ... ({len(known)} in all)" if len(known) > 40 else "")
    hint = f"its arguments: {shown}" if known else "it takes no arguments"
    return UserError(f"--args {key}: {parser.script} has no argument {key!r}{suggestion}", hint, exit_code=2)


def _chosen(parser: Parser, given: Mapping[str, str]) -> dict[str, str]:
    """The subcommand that runs at each level (key prefix → name): named, or implied by the keys given."""
    out: dict[str, str] = {}
    prefix, level = "", parser
    while level.subcommands:
        key = prefix + level.subcommand_dest
        named = given.get(key, "").strip()
        name = level.aliases.get(named, named)
        if named and name not in level.subcommands:
            raise UserError(
                f"--args {key}={named}: {parser.script} has no subcommand {named!r}",
                f"its subcommands: {', '.join(level.subcommands)}",
                exit_code=2,
            )
        implied = sorted({n for n in level.subcommands for k in given if k.startswith(f"{prefix}{n}.")})
        others = [n for n in implied if n != name]
        if name and others:
            raise UserError(
                f"--args {key}={named} runs subcommand {name}, but options of {', '.join(others)} are given",
                "a run uses one subcommand: drop the other subcommand's options",
                exit_code=2,
            )
        if not name and len(implied) > 1:
            raise UserError(
                f"--args sets options of subcommands {' and '.join(implied)}; a run uses one",
                f"keep one subcommand's options, or choose with --args {key}=NAME",
                exit_code=2,
            )
        name = name or (implied[0] if implied else "")
        if not name:
            break
        out[prefix] = name
        prefix, level = f"{prefix}{name}.", level.subcommands[name]
    return out


def _checked(parser: Parser, slot: _Slot, key: str, text: str) -> str:
    """The value as recorded, after checking it against the option (type, choices, expressible)."""
    if not slot.options:
        return text.strip()
    first = slot.options[0]
    known = first.default is not UNKNOWN and first.default is not None
    default = f" (its default: {_format(first.default)!r})" if known else ""
    try:
        value = _interpret(first, text)
    except ValueError as e:
        raise UserError(
            f"--args {key}={text}: {e}", f"{parser.script} defines {first.display}{default}", exit_code=2
        ) from e
    if value is None:
        return ""
    if not _same(first, value, text):
        try:
            _express(slot.options, value, text)
        except _Inexpressible as e:
            raise UserError(
                f"--args {key}={text}: {e}", f"{parser.script} defines {first.display}{default}", exit_code=2
            ) from e
    if (
        first.action in FLAGS
        or first.action in ("count", "store_const")
        or first.many
        or isinstance(value, bool)
    ):
        return _format(value)
    return text


def _check_exclusive(
    parser: Parser,
    slots: Mapping[str, _Slot],
    given: Mapping[str, tuple[str, str]],
    recorded: Mapping[str, str],
) -> None:
    groups: dict[tuple[str, int], list[str]] = {}
    for full, text in recorded.items():
        slot = slots[full]
        for option in slot.options[:1]:
            if option.exclusive is not None and not _same(option, _interpret(option, text), text):
                groups.setdefault((slot.prefix, option.exclusive), []).append(given[full][0])
    for keys in groups.values():
        if len(keys) > 1:
            raise UserError(
                f"--args {' and '.join(keys)}: {parser.script} takes only one of them "
                "(a mutually exclusive group)",
                "keep one",
                exit_code=2,
            )


def _check_required(parser: Parser, recorded: Mapping[str, str], chain: Mapping[str, str]) -> None:
    for prefix, level in _levels(parser, chain):
        for dest, options in _dests(level).items():
            key = prefix + dest
            if options[0].required and not recorded.get(key, "").strip():
                raise UserError(
                    f"{parser.script} needs {options[0].display}: it is required",
                    f"pass it with --args {key}=VALUE",
                    exit_code=2,
                )
        if level.subcommands and level.subcommand_required and prefix not in chain:
            raise UserError(
                f"{parser.script} needs a subcommand: one of {', '.join(level.subcommands)}",
                f"choose it with --args {prefix}{level.subcommand_dest}=NAME",
                exit_code=2,
            )


def _entry(name: str, value: str, type_name: str, description: str | None = None) -> dict[str, str]:
    entry = {"section": "Args", "name": name, "value": value, "type": type_name}
    if description:
        entry["description"] = description
    return entry


def _type_name(option: Option) -> str:
    """The type as the clearml SDK records it: the converter's name, else the default's type."""
    if option.action in FLAGS:
        return "bool"
    if option.action == "count":
        return "int"
    if option.action in ("store_const", "append_const"):
        return type(option.const).__name__ if option.const is not None else "str"
    if option.type_name:
        return option.type_name.rpartition(".")[2]
    if option.many:
        return "list"
    default = option.default
    if isinstance(default, (list, tuple)):
        return "list"
    return type(default).__name__ if isinstance(default, (bool, int, float)) else "str"


# ------------------------------------------------------------------------------------------- values
def _values(args_section: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, param in args_section.items():
        key = str(param.get("name") or name)
        if key and not key.startswith("_"):
            value = param.get("value")
            out[key] = "" if value is None else str(value)
    return out


def _format(value: Any) -> str:
    """A value as the clearml SDK records it."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return str([list(v) if isinstance(v, tuple) else v for v in value])
    return str(value)


def _boolean(text: str, name: str) -> bool:
    word = text.strip().lower()
    if word == "":
        return False  # as the clearml SDK reads an empty flag
    if word not in BOOL_WORDS:
        raise ValueError(f"{name} takes true or false, not {text!r}")
    return BOOL_WORDS[word]


def _items(text: str) -> list[Any]:
    """A list value: a Python list literal (as recorded), a YAML flow list, or one value."""
    stripped = text.strip()
    if not stripped:
        return []
    if stripped[0] in "[(":
        parsed: Any = None
        try:
            parsed = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            import yaml

            try:
                parsed = yaml.safe_load(stripped)
            except yaml.YAMLError:
                parsed = None
        if isinstance(parsed, (list, tuple)):
            return [list(v) if isinstance(v, (list, tuple)) else _text(v) for v in parsed]
    return [stripped]


def _text(value: Any) -> str:
    return "None" if value is None else str(value)


def _interpret(option: Option, text: str) -> Any:
    """The value the script gets from `text`; None: its default None. ValueError says what is allowed."""
    name = option.display
    blank = text.strip() in ("", "None")
    if option.action in FLAGS:
        return None if blank and option.default is None else _boolean(text, name)
    if blank and option.default is None:
        return None
    if option.action == "count":
        try:
            count = int(text.strip())
        except ValueError:
            count = -1
        if count < 0:
            raise ValueError(f"{name} counts how often it is given: 0, 1, 2, ..., not {text!r}")
        return count
    if option.action in ("store_const", "append_const", "custom"):
        if option.action == "store_const" and text.strip() == _format(option.const):
            return option.const
        if option.default is not UNKNOWN and text.strip() == _format(option.default):
            return option.default
        if option.action == "store_const":
            raise ValueError(
                f"{name} is a switch: {_format(option.const)!r} when given, "
                f"{_format(option.default)!r} when not"
            )
        raise ValueError(
            f"{name} has an action clearml-task cannot pass on a command line "
            f"({option.type_name or 'custom'})"
        )
    if not option.many:
        return _convert(option, text)
    items = _items(text)
    per = option.nargs if isinstance(option.nargs, int) else None
    if option.action == "store" and per is not None and len(items) != per:
        raise ValueError(f"{name} takes {per} values, as a list: [{', '.join(['...'] * per)}]")
    if option.action == "store" and option.nargs == "+" and not items:
        raise ValueError(f"{name} takes at least one value")
    return [_convert(option, item) for item in items]


def _convert(option: Option, item: Any) -> Any:
    if isinstance(item, list):
        return [_convert(option, element) for element in item]
    text = str(item)
    name = option.display
    value: Any = text
    if option.type == "int":
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{name} takes an integer, not {text!r}") from None
    elif option.type == "float":
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"{name} takes a number, not {text!r}") from None
    elif option.type == "bool":
        value = _boolean(text, name)
    if isinstance(option.choices, list) and option.choices and value not in option.choices:
        allowed = ", ".join(_format(choice) for choice in option.choices)
        raise ValueError(f"{name} takes one of {allowed}, not {text!r}")
    return value


def _same(option: Option, value: Any, text: str) -> bool:
    """The value is the option's default: nothing to pass."""
    default = option.default
    if default is UNKNOWN:
        return text.strip() == ""
    if value is None:
        return True
    if option.type == "unknown" and option.action in ("store", *LIST_ACTIONS):
        return _format(value) == _format(default)
    if isinstance(default, tuple):
        default = list(default)
    return bool(value == default and type(value) is type(default)) or (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and isinstance(default, (int, float))
        and not isinstance(default, bool)
        and value == default
    )


class _Inexpressible(Exception):
    """A value no command line can give the script."""


def _express(options: Sequence[Option], value: Any, text: str) -> list[str]:
    reasons: list[str] = []
    for option in options:
        try:
            return _render_option(option, value, text)
        except _Inexpressible as e:
            reasons.append(str(e))
    raise _Inexpressible("; ".join(reasons))


def _token(option: Option, value: Any) -> str:
    if isinstance(value, bool):
        if option.type == "bool":
            return option.true_token if value else option.false_token
        return str(value)
    return _text(value)


def _with_value(option: Option, token: str) -> list[str]:
    string = option.option_strings[0]
    if token.startswith("-"):  # a value that looks like an option: glued to its option string
        return [f"{string}{token}"] if len(string) == 2 else [f"{string}={token}"]
    return [string, token]


def _render_option(option: Option, value: Any, text: str) -> list[str]:
    name, action = option.display, option.action
    string = option.option_strings[0] if option.option_strings else ""
    if action == "store_true" or action == "store_false":
        if value is (action == "store_true"):
            return [string]
        raise _Inexpressible(f"{name} can only be switched to {action == 'store_true'}")
    if action == "boolean_optional":
        if value is True:
            return [string]
        if value is False and option.negatives:
            return [option.negatives[0]]
        raise _Inexpressible(f"{name} has no option for {value!r}")
    if action == "count":
        base = option.default or 0
        if not isinstance(base, int) or value < base:
            raise _Inexpressible(f"{name} counts up from {_format(option.default)!r}")
        return [string] * (value - base)
    if action == "store_const":
        if value == option.const:
            return [string]
        raise _Inexpressible(f"{name} is a switch: {_format(option.const)!r} when given")
    if action in LIST_ACTIONS:
        base = list(option.default or [])
        if value[: len(base)] != base:
            raise _Inexpressible(f"{name} adds to its default {_format(base)}: the value must start with it")
        rest = value[len(base) :]
        groups = [[_token(option, v) for v in (item if isinstance(item, list) else [item])] for item in rest]
        flat = [token for group in groups for token in group]
        _plain(option, flat)
        if action == "extend":
            return [string, *flat] if rest else []
        return [token for group in groups for token in (string, *group)]
    if action != "store":
        raise _Inexpressible(f"{name} has an action clearml-task cannot pass on a command line")
    if option.many:
        tokens = [_token(option, v) for v in value]
        if option.positional:
            return tokens
        _plain(option, tokens)
        return [string, *tokens]
    token = (
        text
        if option.type in ("str", "unknown", "int", "float") and isinstance(text, str)
        else _token(option, value)
    )
    if option.positional:
        _plain(option, [token])
        return [token]
    return _with_value(option, token)


def _plain(option: Option, tokens: Sequence[str]) -> None:
    for token in tokens:
        if token.startswith("-") and not _number(token):
            raise _Inexpressible(f"{option.display}: the value {token!r} would be read as an option")


def _number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _render_dest(options: Sequence[Option], text: str, key: str, script: str) -> list[str]:
    """Run time: the tokens for one Args entry; a value the script must judge itself is passed as it is."""
    first = options[0]
    if not text.strip() and first.action == "store" and first.type not in ("str", "unknown"):
        return []  # a value cleared in a UI: the default
    try:
        value = _interpret(first, text)
    except ValueError:
        if first.action == "store" and not first.many:
            return [text] if first.positional else _with_value(first, text)
        if first.action in ("store", *LIST_ACTIONS) and first.many:
            raw = [_text(v) for v in _items(text)]
            return raw if first.positional else [first.option_strings[0], *raw]
        raise UserError(
            f"Args {key}={text!r} cannot be passed to {script}", f"{first.display}: check the value"
        ) from None
    if _same(first, value, text):
        return []
    try:
        return _express(options, value, text)
    except _Inexpressible as e:
        raise UserError(f"Args {key}={text!r} cannot be passed to {script}: {e}") from None


def _render_level(
    parser: Parser, values: Mapping[str, str], prefix: str, used: set[str], top: set[str]
) -> list[str]:
    optionals: list[str] = []
    positionals: list[tuple[list[Option], list[str]]] = []
    for dest, options in _dests(parser).items():
        key = prefix + dest
        text = values.get(key)
        if text is None and prefix and dest in values and dest not in top:
            key = dest  # as the clearml SDK records a subcommand's option: by its dest alone
            text = values[dest]
        if text is not None:
            used.add(key)
        tokens = _render_dest(options, text, key, parser.script) if text is not None else []
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
            with contextlib.suppress(_Inexpressible):
                value = list(default) if isinstance(default, tuple) else default
                positionals[i] = (options, _express(options, value, _format(default)))
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
            if _render_level(sub, values, f"{prefix}{n}.", set(), top)
        ]
        name = named = running[0] if len(running) == 1 else ""
    if name in parser.subcommands:
        return [*out, named, *_render_level(parser.subcommands[name], values, f"{prefix}{name}.", used, top)]
    return [*out, named] if named else out


# ------------------------------------------------------------------------------------- reading code
def read_parser_cached(source: str, filename: str = "") -> Parser:
    """read_parser, remembered by content (clearml_task/cache.py): launching the same script again, with
    whatever --args, reads its parser without importing libcst."""
    import base64
    import pickle
    import sys

    from clearml_task import cache

    def compute() -> dict[str, Any]:
        return {"pickle": base64.b64encode(pickle.dumps(read_parser(source, filename))).decode()}

    found = cache.memoized("parser", sys.modules[__name__], (filename, source), compute)
    parser: Parser = pickle.loads(base64.b64decode(found["pickle"]))
    return parser


def read_parser(source: str, filename: str = "") -> Parser:
    """The command line a script's source defines, read with libcst without running it."""
    import libcst as cst

    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as e:
        return Parser(filename=filename, problems=[f"cannot parse it: {e.message} (line {e.raw_line})"])
    try:
        return _Reader(module, filename).read()
    except RecursionError:
        return Parser(filename=filename, problems=["too deeply nested to read"])


class _Scope:
    def __init__(self, parent: _Scope | None = None) -> None:
        self.parent = parent
        self.names: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None


class _PObj:
    """An argparse.ArgumentParser being traced."""

    def __init__(self, node: cst.Call) -> None:
        self.node = node
        self.options: dict[int, Option] = {}
        self.parents: list[_PObj] = []
        self.subs: _SubsObj | None = None
        self.defaults: dict[str, Any] = {}
        self.defaults_unknown = False
        self.argument_default: Any = None
        self.prefix_chars = "-"
        self.is_parent = self.is_sub = self.parsed = False


@dataclass
class _GroupObj:
    parser: _PObj
    exclusive: int | None


@dataclass
class _SubsObj:
    parser: _PObj
    dest: str | None
    required: bool
    choices: dict[str, _PObj] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


class _Reader:
    """One module: its imports, module-level functions and constants, and the readers per library."""

    def __init__(self, module: cst.Module, filename: str) -> None:
        import libcst

        self.cst = libcst
        self.module = module
        self.filename = filename
        self.positions: Mapping[cst.CSTNode, Any] | None = None  # computed when a problem names a line
        self.all_calls: list[cst.Call] = []
        self.modules: dict[str, str] = {}  # local name → module
        self.names: dict[str, str] = {}  # local name → qualified name (from-imports)
        self.functions: dict[str, cst.FunctionDef] = {}
        self.classes: dict[str, cst.ClassDef] = {}
        self.constants: dict[str, Any] = {}
        self.problems: list[str] = []
        self._index()

    # ----- the module
    def _index(self) -> None:
        import libcst as cst

        assigned: dict[str, list[cst.BaseExpression | None]] = {}

        def walk(node: cst.CSTNode, top: bool) -> None:
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
                self.all_calls.append(node)
            for child in _children(node):
                walk(child, top)

        walk(self.module, True)
        for name, values in assigned.items():
            if len(values) == 1 and values[0] is not None:
                value = self.literal(values[0])
                if value is not UNKNOWN:
                    self.constants[name] = value

    def _target_names(self, target: cst.CSTNode) -> list[str]:
        import libcst as cst

        if isinstance(target, cst.Name):
            return [target.value]
        if isinstance(target, (cst.Tuple, cst.List)):
            return [n for element in target.elements for n in self._target_names(element.value)]
        return []

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node).strip()

    def line(self, node: cst.CSTNode) -> int:
        if self.positions is None:
            from libcst.metadata import MetadataWrapper, PositionProvider

            self.positions = MetadataWrapper(self.module, unsafe_skip_copy=True).resolve(PositionProvider)
        try:
            return int(self.positions[node].start.line)
        except KeyError:
            return 0

    def qualified(self, expr: cst.CSTNode) -> str | None:
        """`argparse.ArgumentParser` for `ap.ArgumentParser` (import argparse as ap) or `ArgumentParser`."""
        import libcst as cst

        if isinstance(expr, cst.Name):
            return self.names.get(expr.value) or self.modules.get(expr.value)
        if isinstance(expr, cst.Attribute):
            base = self.qualified(expr.value)
            return f"{base}.{expr.attr.value}" if base else None
        return None

    def literal(self, expr: cst.CSTNode) -> Any:
        """The value of a literal expression (or of a module-level constant); UNKNOWN otherwise."""
        import libcst as cst

        if isinstance(expr, cst.Name):
            fixed = {"True": True, "False": False, "None": None}
            if expr.value in fixed:
                return fixed[expr.value]
            return self.constants.get(expr.value, UNKNOWN)
        if isinstance(expr, cst.Attribute):
            return ARGPARSE_CONSTANTS.get(self.qualified(expr) or "", UNKNOWN)
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
        value = self.literal(expr)
        return value if isinstance(value, str) else None

    def decorators(self, func: cst.FunctionDef) -> Iterator[tuple[cst.BaseExpression, cst.Call | None]]:
        """(what is called or applied, the call when there is one) for each decorator, top to bottom."""
        for decorator in func.decorators:
            expr = decorator.decorator
            if isinstance(expr, self.cst.Call):
                yield expr.func, expr
            else:
                yield expr, None

    def calls(self) -> list[cst.Call]:
        return self.all_calls

    def imports(self, library: str) -> bool:
        return any(
            name.partition(".")[0] == library for name in [*self.modules.values(), *self.names.values()]
        )

    def read(self) -> Parser:
        readers = {
            "hydra": self._hydra,
            "click": self._click,
            "typer": self._typer,
            "argparse": self._argparse,
        }
        for library, reader in readers.items():
            parser = reader() if self.imports(library) else None
            if parser is not None:
                parser.filename = self.filename
                parser.problems = self.problems + parser.problems
                for sub in _all_levels(parser):
                    sub.filename, sub.complete = self.filename, parser.complete
                parser.sdk_binds_args = library == "argparse" and self._sdk_binds_args()
                return parser
        return Parser(filename=self.filename, problems=self.problems)

    def _sdk_binds_args(self) -> bool:
        """A call of clearml's Task.init that leaves auto_connect_arg_parser on."""
        for call in self.calls():
            qualified = self.qualified(call.func) or ""
            if qualified.startswith("clearml.") and qualified.endswith("Task.init"):
                switch = self._keyword(call, "auto_connect_arg_parser")
                if switch is None or self.literal(switch) is not False:
                    return True
        return False

    # ----- Hydra
    def _hydra(self) -> Parser | None:
        for func in self.functions.values():
            for target, _ in self.decorators(func):
                if self.qualified(target) == "hydra.main":
                    return Parser(kind="hydra", name=func.name.value)
        return None

    # ----- argparse
    def _argparse(self) -> Parser | None:
        return _Argparse(self).read()

    # ----- click
    def _click(self) -> Parser | None:
        import libcst as cst

        found: dict[str, dict[str, Any]] = {}
        for name, func in self.functions.items():
            info: dict[str, Any] = {
                "func": func,
                "kind": None,
                "parent": None,
                "name": None,
                "params": [],
                "other": [],
            }
            for target, call in self.decorators(func):
                qualified = self.qualified(target)
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
                    info["other"].append(self.code(target))
            if info["kind"]:
                found[name] = info
        for name in list(found):
            parent = found[name]["parent"]
            if parent is not None and (parent not in found or found[parent]["kind"] != "group"):
                del found[name]  # `app.command()` of something that is not a click group (typer, ...)
        if not found:
            return None
        for call in self.calls():
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
                            found[child]["name"] = self.string(named[0])
        tops = [name for name, info in found.items() if info["parent"] is None]
        main = self._entry_function(tops)
        if main is None:
            return Parser(
                kind="click", complete=False, problems=[f"several click commands: {', '.join(tops)}"]
            )
        return self._click_command(main, found)

    def _entry_function(self, names: Sequence[str]) -> str | None:
        """Of several top-level commands, the one the module calls."""
        if len(names) == 1:
            return names[0]
        import libcst as cst

        called = {
            call.func.value if isinstance(call.func, cst.Name) else ""
            for call in self.calls()
            if isinstance(call.func, cst.Name)
        }
        matching = [name for name in names if name in called]
        return matching[0] if len(matching) == 1 else None

    def _click_command(self, name: str, found: Mapping[str, dict[str, Any]]) -> Parser:
        info = found[name]
        parser = Parser(kind="click", name=info["name"] or self._click_name(info))
        call: cst.Call | None = info.get("call")
        for kind, param_call in info["params"]:
            option = self._click_param(kind, param_call)
            if option is None:
                parser.complete = False
            else:
                parser.options.append(option)
        if info["other"]:
            parser.complete = False
            parser.problems.append(f"{name}: decorators that may add options: {', '.join(info['other'])}")
        if info["kind"] == "group":
            invoke = self._keyword(call, "invoke_without_command")
            parser.subcommand_required = not (invoke is not None and self.literal(invoke) is True)
            for child, child_info in found.items():
                if child_info["parent"] == name:
                    sub = self._click_command(child, found)
                    command = child_info["name"] or self._click_name(child_info)
                    parser.subcommands[command] = sub
                    parser.complete = parser.complete and sub.complete
                    parser.problems += sub.problems
            parser.subcommand_dest = _free_key(parser)
        return parser

    def _click_name(self, info: Mapping[str, Any]) -> str:
        call = info.get("call")
        if call is not None:
            named = [a.value for a in call.args if a.keyword is None][:1]
            named += [a.value for a in call.args if a.keyword is not None and a.keyword.value == "name"]
            if named and self.string(named[0]):
                return str(self.string(named[0]))
        command = str(info["func"].name.value).lower().replace("_", "-")
        left, sep, suffix = command.rpartition("-")
        return left if sep and suffix in ("command", "cmd", "group", "grp") else command

    def _keyword(self, call: cst.Call | None, name: str) -> cst.BaseExpression | None:
        if call is None:
            return None
        for arg in call.args:
            if arg.keyword is not None and arg.keyword.value == name:
                return arg.value
        return None

    def _click_param(self, kind: str, call: cst.Call) -> Option | None:
        decls: list[str] = []
        kw: dict[str, cst.BaseExpression] = {}
        for arg in call.args:
            text = self.string(arg.value) if arg.keyword is None and not arg.star else None
            if arg.star or (arg.keyword is None and text is None):
                self.problems.append(
                    f"line {self.line(call)}: click.{kind}(...) with names that are not literal"
                )
                return None
            if arg.keyword is None and text is not None:
                decls.append(text)
            elif arg.keyword is not None:
                kw[arg.keyword.value] = arg.value

        def given(key: str, fallback: Any = None) -> Any:
            return self.literal(kw[key]) if key in kw else fallback

        default = given("default", _MISSING)
        type_, type_name, choices = self._click_type(kw.get("type"), default)
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
            required = given("required", default is _MISSING and nargs != -1)
            option.required = required is True
            if nargs == -1:
                option.nargs = "+" if required is True else "*"
                option.default = [] if default is _MISSING else default
            else:
                option.nargs = nargs if isinstance(nargs, int) and nargs > 1 else None
                option.default = None if default is _MISSING else default
            return option
        name, opts, secondary = _click_decls(decls)
        if not name or not (opts or secondary):
            self.problems.append(f"line {self.line(call)}: click.option{tuple(decls)} cannot be read")
            return None
        option.dest, option.option_strings = name, opts or secondary
        option.required = given("required") is True
        is_flag = given("is_flag", None)
        if "flag_value" in kw and not isinstance(given("flag_value"), bool):
            option.action, option.const = "store_const", given("flag_value")
            option.default = None if default is _MISSING else default
        elif given("count") is True:
            option.action, option.type = "count", "int"
            option.default = 0 if default is _MISSING else default
        elif secondary and is_flag is not False:
            option.action, option.negatives, option.type = "boolean_optional", secondary, "bool"
            option.default = False if default is _MISSING else default
        elif is_flag is True:
            flag_default = False if default is _MISSING else default
            option.action = "store_false" if flag_default is True else "store_true"
            option.type, option.default = "bool", flag_default
        elif given("multiple") is True:
            option.action = "append"
            option.default = [] if default is _MISSING or default is None else default
        else:
            option.nargs = nargs if isinstance(nargs, int) and nargs > 1 else None
            option.default = None if default is _MISSING else default
        return option

    def _click_type(self, expr: cst.BaseExpression | None, default: Any) -> tuple[str, str, list[Any] | None]:
        import libcst as cst

        if expr is None:
            sample = default[0] if isinstance(default, (list, tuple)) and default else default
            for kind in (bool, int, float):
                if type(sample) is kind:
                    return kind.__name__, "", None
            return "str", "", None
        call = expr if isinstance(expr, cst.Call) else None
        qualified = self.qualified(call.func if call else expr) or self.code(call.func if call else expr)
        short = qualified.rpartition(".")[2]
        simple = {
            "int": "int", "float": "float", "str": "str", "bool": "bool", "INT": "int", "FLOAT": "float",
            "STRING": "str", "BOOL": "bool", "IntRange": "int", "FloatRange": "float",
        }  # fmt: skip
        if short == "Choice" and call is not None and call.args:
            choices = self.literal(call.args[0].value)
            if isinstance(choices, (list, tuple)):
                return "str", "Choice", [str(c) for c in choices]
            return "str", "Choice", UNKNOWN
        if short in simple and (
            qualified.startswith("click.") or qualified in ("int", "float", "str", "bool")
        ):
            return simple[short], short if short in ("int", "float", "str", "bool") else simple[short], None
        return "unknown", short, None

    # ----- typer
    def _typer(self) -> Parser | None:
        import libcst as cst

        apps: dict[str, dict[str, Any]] = {}
        runs: list[str] = []
        for run in self.calls():
            if (
                self.qualified(run.func) == "typer.run"
                and run.args
                and isinstance(run.args[0].value, cst.Name)
            ):
                runs.append(run.args[0].value.value)
        for statement in self.module.body:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if (
                        isinstance(small, cst.Assign)
                        and isinstance(small.value, cst.Call)
                        and self.qualified(small.value.func) == "typer.Typer"
                    ):
                        for assigned in small.targets:
                            if isinstance(assigned.target, cst.Name):
                                apps[assigned.target.value] = {
                                    "commands": [],
                                    "callback": None,
                                    "groups": [],
                                    "sub": False,
                                }
        for func in self.functions.values():
            for target, call in self.decorators(func):
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
        for call in self.calls():
            if (
                isinstance(call.func, cst.Attribute)
                and call.func.attr.value == "add_typer"
                and isinstance(call.func.value, cst.Name)
                and call.func.value.value in apps
                and call.args
                and isinstance(call.args[0].value, cst.Name)
                and call.args[0].value.value in apps
            ):
                named = self._keyword(call, "name")
                apps[call.func.value.value]["groups"].append(
                    (call.args[0].value.value, self.string(named) if named else None)
                )
                apps[call.args[0].value.value]["sub"] = True
        if runs and runs[0] in self.functions:
            return self._typer_function(self.functions[runs[0]])
        tops = [
            name
            for name, app in apps.items()
            if not app["sub"] and (app["commands"] or app["callback"] or app["groups"])
        ]
        if not tops:
            return None
        main = self._entry_function(tops)
        if main is None:
            return Parser(kind="typer", complete=False, problems=[f"several typer apps: {', '.join(tops)}"])
        return self._typer_app(main, apps, set())

    def _typer_app(self, name: str, apps: Mapping[str, dict[str, Any]], seen: set[str]) -> Parser:
        app = apps[name]
        seen = seen | {name}
        if not app["callback"] and not app["groups"] and len(app["commands"]) == 1:
            return self._typer_function(app["commands"][0][0])
        parser = self._typer_function(app["callback"][0]) if app["callback"] else Parser(kind="typer")
        parser.subcommand_required = True
        if app["callback"]:
            invoke = self._keyword(app["callback"][1], "invoke_without_command")
            parser.subcommand_required = not (invoke is not None and self.literal(invoke) is True)
        for func, call in app["commands"]:
            named = [a.value for a in call.args if a.keyword is None][:1] if call is not None else []
            keyword = self._keyword(call, "name")
            named += [keyword] if keyword is not None else []
            command = (self.string(named[0]) if named else None) or func.name.value.lower().replace("_", "-")
            parser.subcommands[command] = self._typer_function(func)
        for group, group_name in app["groups"]:
            if group in seen or not group_name:
                parser.complete = False
                parser.problems.append(f"typer app {group} is added without a name")
                continue
            parser.subcommands[group_name] = self._typer_app(group, apps, seen)
        for sub in parser.subcommands.values():
            parser.complete = parser.complete and sub.complete
            parser.problems += sub.problems
        parser.subcommand_dest = _free_key(parser)
        return parser

    def _typer_function(self, func: cst.FunctionDef) -> Parser:
        import libcst as cst

        parser = Parser(kind="typer", name=func.name.value)
        for param in [*func.params.posonly_params, *func.params.params, *func.params.kwonly_params]:
            name = param.name.value
            annotation = param.annotation.annotation if param.annotation is not None else None
            info: cst.Call | None = None
            in_annotation = False
            base = annotation
            if isinstance(annotation, cst.Subscript) and (self.qualified(annotation.value) or "").endswith(
                "Annotated"
            ):
                elements = [e.slice.value for e in annotation.slice if isinstance(e.slice, cst.Index)]
                base = elements[0] if elements else None
                for element in elements[1:]:
                    if isinstance(element, cst.Call) and self.qualified(element.func) in (
                        "typer.Option",
                        "typer.Argument",
                    ):
                        info, in_annotation = element, True
            if isinstance(param.default, cst.Call) and self.qualified(param.default.func) in (
                "typer.Option",
                "typer.Argument",
            ):
                info, in_annotation = param.default, False
            if base is not None and (self.qualified(base) or self.code(base)).rpartition(".")[2] == "Context":
                continue
            option = self._typer_param(param, name, base, info, in_annotation)
            if option is None:
                parser.complete = False
            else:
                parser.options.append(option)
        return parser

    def _typer_param(
        self,
        param: cst.Param,
        name: str,
        base: cst.BaseExpression | None,
        info: cst.Call | None,
        in_annotation: bool,
    ) -> Option | None:

        decls: list[str] = []
        kw: dict[str, cst.BaseExpression] = {}
        default: Any = _MISSING if param.default is None else self._typer_default(param.default)
        if info is not None:
            positional = [a.value for a in info.args if a.keyword is None and not a.star]
            kw = {a.keyword.value: a.value for a in info.args if a.keyword is not None}
            if in_annotation:
                names = positional
            else:
                default = (
                    self._typer_default(positional[0])
                    if positional
                    else (self._typer_default(kw["default"]) if "default" in kw else _MISSING)
                )
                names = positional[1:]
            for expr in names:
                text = self.string(expr)
                if text is None:
                    self.problems.append(f"line {self.line(param)}: typer names that are not literal")
                    return None
                decls.append(text)
        if default is Ellipsis:
            default = _MISSING
        type_, type_name, is_list, choices = self._annotation(base, default)
        help_expr = kw.get("help")
        help_text = self.string(help_expr) if help_expr is not None else None
        is_argument = (info is not None and self.qualified(info.func) == "typer.Argument") or (
            info is None and param.default is None
        )
        option = Option(dest=name, type=type_, type_name=type_name, choices=choices, help=help_text)
        option.required = default is _MISSING
        option.default = None if default is _MISSING else default
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
        if "count" in kw and self.literal(kw["count"]) is True:
            option.action, option.type = "count", "int"
            option.default = option.default or 0
        elif is_list:
            option.action = "append"
        return option

    def _annotation(
        self, expr: cst.BaseExpression | None, default: Any
    ) -> tuple[str, str, bool, list[Any] | None]:
        """(type, type name, is a list, choices) of a typer parameter's annotation."""
        import libcst as cst

        if expr is None:
            for kind in (bool, int, float):
                if type(default) is kind:
                    return kind.__name__, kind.__name__, False, None
            return "str", "", False, None
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.BitOr):
            left, right = expr.left, expr.right
            return self._annotation(right if self.code(left) == "None" else left, default)
        if isinstance(expr, cst.Subscript):
            outer = (self.qualified(expr.value) or self.code(expr.value)).rpartition(".")[2]
            inner = [e.slice.value for e in expr.slice if isinstance(e.slice, cst.Index)]
            if outer == "Optional" and inner:
                return self._annotation(inner[0], default)
            if outer == "Union":
                rest = [e for e in inner if self.code(e) != "None"]
                if len(rest) == 1:
                    return self._annotation(rest[0], default)
            if outer in ("List", "list", "Sequence") and inner:
                type_, type_name, _, choices = self._annotation(inner[0], None)
                return type_, type_name, True, choices
            return "unknown", self.code(expr), False, None
        name = self.code(expr)
        if name in ("int", "float", "str", "bool"):
            return name, name, False, None
        if name in self.classes:
            values = self._enum_values(self.classes[name])
            if values:
                return "str", name, False, values
        return "unknown", name.rpartition(".")[2], False, None

    def _typer_default(self, expr: cst.BaseExpression) -> Any:
        """A literal, or a member of an Enum class of the module (typer passes its value)."""
        import libcst as cst

        value = self.literal(expr)
        if (
            value is UNKNOWN
            and isinstance(expr, cst.Attribute)
            and isinstance(expr.value, cst.Name)
            and expr.value.value in self.classes
        ):
            members = self._enum_members(self.classes[expr.value.value]) or {}
            value = members.get(expr.attr.value, UNKNOWN)
        return value

    def _enum_values(self, cls: cst.ClassDef) -> list[Any] | None:
        members = self._enum_members(cls)
        return list(members.values()) if members else None

    def _enum_members(self, cls: cst.ClassDef) -> dict[str, str] | None:
        import libcst as cst

        if not any("Enum" in self.code(base.value) for base in cls.bases):
            return None
        members: dict[str, str] = {}
        for statement in cls.body.body:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if isinstance(small, cst.Assign) and isinstance(small.targets[0].target, cst.Name):
                        value = self.literal(small.value)
                        if value is UNKNOWN:
                            return None
                        members[small.targets[0].target.value] = str(value)
        return members or None


_MISSING: Any = object()


def _click_decls(decls: Sequence[str]) -> tuple[str, list[str], list[str]]:
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
    first = opt[:1]
    if first.isalnum():
        return "", opt
    if opt[1:2] == first:
        return opt[:2], opt[2:]
    return first, opt[1:]


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


def _children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """A node's children without the whitespace and comments (faster than libcst's `children`)."""
    import libcst as cst

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


def _free_key(parser: Parser) -> str:
    """The Args key naming the subcommand when the script does not name it: one no option uses."""
    dests = {option.dest for option in parser.options}
    return next(key for key in ("command", "subcommand", "_command") if key not in dests)


def _all_levels(parser: Parser) -> Iterator[Parser]:
    yield parser
    for sub in parser.subcommands.values():
        yield from _all_levels(sub)


class _Argparse:
    """Traces argparse parsers through one module: names bound to parsers, groups and subparsers, the
    module's own functions called with them (add_common_args(parser)) or returning them (get_parser())."""

    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.cst = reader.cst
        self.module_scope = _Scope()
        self.attributes: dict[str, Any] = {}  # self.parser = ... (by its dotted name)
        self.parsers: dict[int, _PObj] = {}  # by the id of the ArgumentParser(...) call
        self.order: list[_PObj] = []
        self.derived: dict[tuple[int, int], Any] = {}
        self.calls: dict[tuple[Any, ...], Any] = {}
        self.active: set[int] = set()
        self.pending: list[tuple[cst.FunctionDef, _Scope]] = []
        self.add_argument_calls: dict[int, cst.Call] = {}
        self.attributed: set[int] = set()
        self.exclusive = itertools.count(1)
        self.problems: list[str] = []
        self.complete = True

    def read(self) -> Parser | None:
        self.walk(self.r.module, self.module_scope, None)
        while self.pending:
            func, scope = self.pending.pop(0)
            self.walk(func.body, scope, None)
        if not self.parsers:
            return None
        for call_id, call in self.add_argument_calls.items():
            if call_id not in self.attributed:
                self.complete = False
                self.problems.append(
                    f"line {self.r.line(call)}: add_argument on "
                    f"{self.r.code(call.func)[: -len('.add_argument')]} that cannot be traced to a parser"
                )
        tops = [p for p in self.order if not p.is_sub and not p.is_parent]
        if len(tops) > 1:
            tops = [p for p in tops if p.parsed] or tops
        if len(tops) != 1:
            lines = ", ".join(str(self.r.line(p.node)) for p in tops) or "none"
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

    def to_parser(self, pobj: _PObj, name: str, seen: set[int]) -> Parser:
        seen = seen | {id(pobj)}
        options = [dataclasses.replace(o) for o in self.options_of(pobj, seen)]
        for option in options:
            if option.dest in pobj.defaults:
                option.default = _typed_default(option, pobj.defaults[option.dest])
            elif pobj.defaults_unknown:
                option.default = UNKNOWN
        parser = Parser(
            kind="argparse", name=name, options=[o for o in options if o.action not in ("help", "version")]
        )
        subs = pobj.subs
        if subs is not None:
            for sub_name, sub in subs.choices.items():
                if id(sub) not in seen:
                    parser.subcommands[sub_name] = self.to_parser(sub, sub_name, seen)
            parser.aliases = dict(subs.aliases)
            parser.subcommand_required = subs.required
            parser.subcommand_dest = subs.dest or _free_key(parser)
        return parser

    def options_of(self, pobj: _PObj, seen: set[int]) -> list[Option]:
        out: list[Option] = []
        for parent in pobj.parents:
            if id(parent) not in seen:
                out += self.options_of(parent, seen | {id(parent)})
        return out + list(pobj.options.values())

    # ----- walking
    def walk(self, node: cst.CSTNode, scope: _Scope, returns: list[Any] | None) -> None:
        import libcst as cst

        if isinstance(node, cst.FunctionDef):
            for decorator in node.decorators:
                self.walk(decorator, scope, returns)
            inner = _Scope(scope)
            for param in self._params(node):
                inner.names[param.name.value] = None
            self.pending.append((node, inner))
            return
        if isinstance(node, cst.Lambda):
            return
        if isinstance(node, cst.ClassDef):
            self.walk(node.body, _Scope(scope), None)
            return
        if isinstance(node, (cst.Assign, cst.AnnAssign)):
            if node.value is None:
                return
            self.walk(node.value, scope, returns)
            obj = self.obj(node.value, scope)
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                self.bind(target, obj, scope)
            return
        if isinstance(node, cst.Return):
            if node.value is not None:
                self.walk(node.value, scope, returns)
                if returns is not None:
                    returns.append(self.obj(node.value, scope))
            return
        if isinstance(node, cst.For) and isinstance(node.iter, (cst.List, cst.Tuple)):
            objs = [self.obj(e.value, scope) for e in node.iter.elements]
            if objs and all(o is not None for o in objs):
                for obj in objs:
                    self.bind(node.target, obj, scope)
                    self.walk(node.body, scope, returns)
                return
        for child in _children(node):
            self.walk(child, scope, returns)
        if isinstance(node, cst.Call):
            self.on_call(node, scope)

    def _params(self, func: cst.FunctionDef) -> list[cst.Param]:
        params = func.params
        out = [*params.posonly_params, *params.params, *params.kwonly_params]
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, self.cst.Param):
                out.append(star)
        return out

    def bind(self, target: cst.CSTNode, obj: Any, scope: _Scope) -> None:
        import libcst as cst

        if isinstance(target, cst.Name):
            scope.names[target.value] = obj
        elif isinstance(target, cst.Attribute):
            self.attributes[self.r.code(target)] = obj
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self.bind(element.value, None, scope)

    def obj(self, expr: cst.CSTNode, scope: _Scope) -> Any:
        """The traced object an expression evaluates to (a parser, a group, subparsers), or None."""
        import libcst as cst

        if isinstance(expr, cst.Name):
            return scope.get(expr.value)
        if isinstance(expr, cst.Attribute):
            return self.attributes.get(self.r.code(expr))
        if not isinstance(expr, cst.Call):
            return None
        func = expr.func
        if self.r.qualified(func) == "argparse.ArgumentParser":
            return self.new_parser(expr, scope)
        if isinstance(func, cst.Name) and func.value in self.r.functions:
            return self.call_function(expr, scope)
        if not isinstance(func, cst.Attribute):
            return None
        receiver = self.obj(func.value, scope)
        if receiver is None:
            return None
        key = (id(expr), id(receiver))
        if key in self.derived:
            return self.derived[key]
        method = func.attr.value
        result: Any = None
        if method in ("add_argument_group", "add_mutually_exclusive_group") and isinstance(
            receiver, (_PObj, _GroupObj)
        ):
            parser = receiver if isinstance(receiver, _PObj) else receiver.parser
            exclusive = receiver.exclusive if isinstance(receiver, _GroupObj) else None
            if method == "add_mutually_exclusive_group":
                exclusive = next(self.exclusive)
            result = _GroupObj(parser, exclusive)
        elif method == "add_subparsers" and isinstance(receiver, _PObj):
            result = self.new_subparsers(expr, receiver)
        elif method == "add_parser" and isinstance(receiver, _SubsObj):
            result = self.new_subparser(expr, receiver, scope)
        if result is not None:
            self.derived[key] = result
        return result

    def on_call(self, call: cst.Call, scope: _Scope) -> None:
        import libcst as cst

        func = call.func
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "add_argument":
                self.add_argument_calls.setdefault(id(call), call)
                target = self.obj(func.value, scope)
                if isinstance(target, (_PObj, _GroupObj)):
                    self.add_argument(call, target)
            elif method == "set_defaults":
                target = self.obj(func.value, scope)
                if isinstance(target, _PObj):
                    self.set_defaults(call, target)
            elif method in PARSE_METHODS:
                target = self.obj(func.value, scope)
                if isinstance(target, _PObj):
                    target.parsed = True
            else:
                self.obj(call, scope)
        else:
            self.obj(call, scope)

    def call_function(self, call: cst.Call, scope: _Scope) -> Any:
        """A call to one of the module's functions, traced with what it is given; what it returns."""
        assert isinstance(call.func, self.cst.Name)
        func = self.r.functions[call.func.value]
        positional = [self.obj(a.value, scope) for a in call.args if a.keyword is None and not a.star]
        keywords = {a.keyword.value: self.obj(a.value, scope) for a in call.args if a.keyword is not None}
        key = (id(func), *(id(o) for o in positional), *sorted((k, id(v)) for k, v in keywords.items()))
        if key in self.calls:
            return self.calls[key]
        if id(func) in self.active or len(self.active) > 16:
            return None
        self.calls[key] = None
        self.active.add(id(func))
        inner = _Scope(self.module_scope)
        params = func.params
        for i, param in enumerate([*params.posonly_params, *params.params]):
            inner.names[param.name.value] = (
                positional[i] if i < len(positional) else keywords.get(param.name.value)
            )
        for param in params.kwonly_params:
            inner.names[param.name.value] = keywords.get(param.name.value)
        for star in (params.star_arg, params.star_kwarg):
            if isinstance(star, self.cst.Param):
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
    def new_parser(self, call: cst.Call, scope: _Scope) -> _PObj:
        if id(call) in self.parsers:
            return self.parsers[id(call)]
        pobj = _PObj(call)
        self.parsers[id(call)] = pobj
        self.order.append(pobj)
        self.configure(pobj, call, scope)
        return pobj

    def configure(self, pobj: _PObj, call: cst.Call, scope: _Scope) -> None:
        import libcst as cst

        for arg in call.args:
            if arg.keyword is None:
                continue
            keyword = arg.keyword.value
            if keyword == "parents":
                elements = arg.value.elements if isinstance(arg.value, (cst.List, cst.Tuple)) else None
                parents = [self.obj(e.value, scope) for e in elements or []]
                if elements is None or not all(isinstance(p, _PObj) for p in parents):
                    self.complete = False
                    self.problems.append(
                        f"line {self.r.line(pobj.node)}: parents that are not parsers of this file"
                    )
                for parent in parents:
                    if isinstance(parent, _PObj):
                        parent.is_parent = True
                        pobj.parents.append(parent)
            elif keyword == "prefix_chars":
                pobj.prefix_chars = self.r.string(arg.value) or "-"
            elif keyword == "argument_default":
                pobj.argument_default = self.r.literal(arg.value)

    def new_subparsers(self, call: cst.Call, parser: _PObj) -> _SubsObj:
        if parser.subs is not None:
            return parser.subs
        dest = self.r._keyword(call, "dest")
        required = self.r._keyword(call, "required")
        subs = _SubsObj(
            parser,
            self.r.string(dest) if dest is not None else None,
            required is not None and self.r.literal(required) is True,
        )
        parser.subs = subs
        return subs

    def new_subparser(self, call: cst.Call, subs: _SubsObj, scope: _Scope) -> _PObj:
        pobj = _PObj(call)
        pobj.is_sub = True
        self.order.append(pobj)
        self.configure(pobj, call, scope)
        names = [a.value for a in call.args if a.keyword is None][:1]
        name = self.r.string(names[0]) if names else None
        if name is None:
            self.complete = False
            self.problems.append(
                f"line {self.r.line(pobj.node)}: a subcommand whose name is not a literal string"
            )
            return pobj
        subs.choices[name] = pobj
        aliases = self.r._keyword(call, "aliases")
        for alias in self.r.literal(aliases) if aliases is not None else []:
            if isinstance(alias, str):
                subs.aliases[alias] = name
        return pobj

    def set_defaults(self, call: cst.Call, parser: _PObj) -> None:
        for arg in call.args:
            if arg.keyword is None:
                parser.defaults_unknown = True
                for option in parser.options.values():
                    option.default = UNKNOWN
                continue
            dest, value = arg.keyword.value, self.r.literal(arg.value)
            parser.defaults[dest] = value
            for option in parser.options.values():
                if option.dest == dest:
                    option.default = _typed_default(option, value)

    def add_argument(self, call: cst.Call, target: _PObj | _GroupObj) -> None:
        parser = target if isinstance(target, _PObj) else target.parser
        self.attributed.add(id(call))
        if id(call) in parser.options:
            return
        option = self.read_argument(call, parser)
        if option is None:
            self.complete = False
            return
        option.exclusive = target.exclusive if isinstance(target, _GroupObj) else None
        parser.options[id(call)] = option

    def read_argument(self, call: cst.Call, parser: _PObj) -> Option | None:
        r = self.r
        names: list[str] = []
        kw: dict[str, cst.BaseExpression] = {}
        opaque = False
        for arg in call.args:
            if arg.star == "**":
                opaque = True
            elif arg.star or (arg.keyword is None and r.string(arg.value) is None):
                self.problems.append(
                    f"line {r.line(call)}: add_argument with names that are not literal strings"
                )
                return None
            elif arg.keyword is None:
                names.append(str(r.string(arg.value)))
            else:
                kw[arg.keyword.value] = arg.value
        if not names and "dest" in kw and r.string(kw["dest"]):
            names = [str(r.string(kw.pop("dest")))]  # add_argument(dest="x"): a positional
        if not names:
            self.problems.append(f"line {r.line(call)}: add_argument without names")
            return None
        prefix = parser.prefix_chars
        option = Option(dest=names[0])
        if names[0][:1] in prefix:
            option.option_strings = names
            long = [n for n in names if len(n) > 1 and n[1] in prefix]
            dest = (
                r.string(kw["dest"]) if "dest" in kw else (long or names)[0].lstrip(prefix).replace("-", "_")
            )
            if not dest:
                self.problems.append(
                    f"line {r.line(call)}: add_argument with a dest that is not a literal string"
                )
                return None
            option.dest = dest
        option.action = self.action(kw.get("action"))
        if opaque and "action" not in kw:
            option.action = "custom"
            self.problems.append(
                f"line {r.line(call)}: add_argument(**...) cannot be read: {option.display} passes as it is"
            )
        if option.action == "boolean_optional":
            option.negatives = [f"--no-{s[2:]}" for s in option.option_strings if s.startswith("--")]
        nargs = r.literal(kw["nargs"]) if "nargs" in kw else None
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
            option.const = r.literal(kw["const"])
        elif option.action in ("store_true", "store_false"):
            option.const = option.action == "store_true"
        if "default" in kw:
            default = r.literal(kw["default"])
        elif option.dest in parser.defaults:
            default = parser.defaults[option.dest]
        elif parser.defaults_unknown or (opaque and option.action == "custom"):
            default = UNKNOWN
        elif parser.argument_default is not None:
            default = parser.argument_default
        else:
            default = {"store_true": False, "store_false": True}.get(option.action)
        option.default = _typed_default(option, None if default == SUPPRESS else default)
        if "choices" in kw:
            option.choices = self.choices(kw["choices"])
        help_text = r.string(kw["help"]) if "help" in kw else None
        option.help = None if help_text == SUPPRESS else help_text
        required = r.literal(kw["required"]) if "required" in kw else False
        if option.positional:
            option.required = option.nargs not in ("?", "*", "...")
        else:
            option.required = required is True
        return option

    def action(self, expr: cst.BaseExpression | None) -> str:
        if expr is None:
            return "store"
        value = self.r.literal(expr)
        if isinstance(value, str):
            return value if value in ARGPARSE_ACTIONS else "custom"
        qualified = self.r.qualified(expr) or ""
        if qualified == "argparse.BooleanOptionalAction":
            return "boolean_optional"
        return "custom"

    def choices(self, expr: cst.BaseExpression) -> list[Any] | None:
        import libcst as cst

        value = self.r.literal(expr)
        if isinstance(value, (list, tuple, set, frozenset)):
            return list(value)
        if isinstance(value, dict):
            return list(value)
        if isinstance(expr, cst.Call) and self.r.code(expr.func) == "range":
            bounds = [self.r.literal(a.value) for a in expr.args]
            if bounds and all(isinstance(b, int) for b in bounds) and len(bounds) <= 3:
                return list(range(*bounds))
        result: Any = UNKNOWN
        return result

    def converter(self, expr: cst.BaseExpression) -> tuple[str, str, str, str]:
        """(type, type name, true token, false token) of add_argument's type=."""
        import libcst as cst

        code = self.r.code(expr)
        if (
            isinstance(expr, cst.Name)
            and expr.value in ("int", "float", "str")
            and expr.value not in self.r.functions
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
        elif isinstance(expr, cst.Name) and expr.value in self.r.functions:
            func = self.r.functions[expr.value]
        tokens = _bool_like(self.r, func) if func is not None else None
        name = "<lambda>" if isinstance(expr, cst.Lambda) else short
        if tokens is not None:
            return "bool", name, *tokens
        return "unknown", name, "true", "false"


def _typed_default(option: Option, value: Any) -> Any:
    """argparse passes a string default through the option's type."""
    if not isinstance(value, str) or option.many:
        return value
    try:
        if option.type == "int":
            return int(value)
        if option.type == "float":
            return float(value)
        if option.type == "bool":
            return _boolean(value, option.display)
    except ValueError:
        return UNKNOWN
    return value


def _bool_like(reader: _Reader, func: cst.FunctionDef | cst.Lambda) -> tuple[str, str] | None:
    """(true token, false token) when a converter clearly turns text into a bool: each of its returns is
    True/False, a comparison, `not ...`, `bool(...)` or `strtobool(...)`; None otherwise."""
    import libcst as cst

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
        for child in _children(node):
            walk(child)

    if isinstance(func, cst.Lambda):
        returns.append(func.body)
    else:
        walk(func.body)
    if not returns:
        return None

    params = func.params.params if isinstance(func, (cst.FunctionDef, cst.Lambda)) else []
    first = params[0].name.value if params else ""
    passes_bools = f"isinstance({first},bool)" in reader.code(func).replace(" ", "")

    def boolean(expr: cst.BaseExpression) -> bool:
        if isinstance(expr, cst.Name):
            return expr.value in ("True", "False") or (passes_bools and expr.value == first)
        if isinstance(expr, cst.Comparison):
            return True
        if isinstance(expr, cst.UnaryOperation):
            return isinstance(expr.operator, cst.Not)
        if isinstance(expr, cst.Call):
            return reader.code(expr.func).rpartition(".")[2] in ("bool", "strtobool")
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
                value = reader.literal(target.comparator)
                values = [value] if isinstance(value, str) else value
                if isinstance(values, (list, tuple, set, frozenset)):
                    words[outcome] += sorted(str(v) for v in values if isinstance(v, str))
    true = "true" if "true" in words[True] or not words[True] else words[True][0]
    false = "false" if "false" in words[False] or not words[False] else words[False][0]
    if false in words[True]:
        return None
    return true, false
