"""What a script's command line is, as read from its source: its options (Option), its parser and
subcommands (Parser), what cannot be read (UNKNOWN), and the Args keys a parser has (slots)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clearml_task.records import field, record

READABLE = ("argparse", "click", "typer")  # kinds whose options are read, checked and recorded
FLAGS = ("store_true", "store_false", "boolean_optional")
LIST_ACTIONS = ("append", "extend")


class _Unknown:
    """What the script computes at run time and clearml-task does not guess."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unknown:
        return self

    def __reduce__(self) -> str:
        return "UNKNOWN"  # copied or pickled as the module's one UNKNOWN, so `is UNKNOWN` holds


UNKNOWN: Any = _Unknown()


@record
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


@record
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
    sdk_unbound: list[str] = field(default_factory=list)  # dests its auto_connect_arg_parser leaves out
    hydra_config: dict[str, str] = field(default_factory=dict)  # @hydra.main's config_path / config_name

    @property
    def script(self) -> str:
        return Path(self.filename).name or "the script"


@record
class CommandLine:
    """The argv a run passes to the script, and what the launcher reports about it."""

    argv: list[str]
    kind: str = "none"
    ignored: list[str] = field(default_factory=list)  # Args keys that are nothing on the script's parser
    problems: list[str] = field(default_factory=list)  # what could not be read in the script


# ------------------------------------------------------------------------------------------ Args keys
@record
class Slot:
    """One Args key of a parser: the options that share a dest, or the key naming the subcommand."""

    level: Parser
    prefix: str  # "" on the main parser, "train." on subcommand train
    options: list[Option]  # the options that share this dest; empty: the slot naming the subcommand


def options_by_dest(parser: Parser) -> dict[str, list[Option]]:
    """A parser's options by dest: several options may store to one dest (`--fast` and `--slow`)."""
    out: dict[str, list[Option]] = {}
    for option in parser.options:
        out.setdefault(option.dest, []).append(option)
    return out


def slots_of(parser: Parser, prefix: str = "") -> dict[str, Slot]:
    """Every Args key of a parser and of its subcommands (`train.lr`), with what it holds."""
    out = {prefix + dest: Slot(parser, prefix, options) for dest, options in options_by_dest(parser).items()}
    if parser.subcommands:
        out[prefix + parser.subcommand_dest] = Slot(parser, prefix, [])
        for name, sub in parser.subcommands.items():
            out.update(slots_of(sub, f"{prefix}{name}."))
    return out


def free_subcommand_key(parser: Parser) -> str:
    """The Args key naming the subcommand when the script does not name it: one no option uses."""
    dests = {option.dest for option in parser.options}
    return next(key for key in ("command", "subcommand", "_command") if key not in dests)


def counted_dests(parser: Parser) -> list[str]:
    """The dests of its `action="count"` options, at any level: the clearml SDK reads a count back from Args
    as a list (`[2]`), so Task.init is told to leave them to the command line."""
    dests = (o.dest for level in all_levels(parser) for o in level.options if o.action == "count")
    return list(dict.fromkeys(dests))


def all_levels(parser: Parser) -> Iterator[Parser]:
    """A parser and all its subcommands, at any depth."""
    yield parser
    for sub in parser.subcommands.values():
        yield from all_levels(sub)


# ------------------------------------------------------------------------------- stored as JSON
class NotStorable(ValueError):
    """A value read from a script that the JSON form of a parser does not hold."""


def parser_to_json(parser: Parser) -> dict[str, Any]:
    """A parser as JSON data (what the cache keeps): records as their fields, and values that JSON cannot
    hold as they are (tuples, sets, bytes, non-finite floats, dicts, UNKNOWN) tagged. No code is ever
    stored: reading it back builds only these classes and literal values."""
    return _stored(parser)


def parser_from_json(data: dict[str, Any]) -> Parser:
    """parser_to_json's data as the Parser again; ValueError when it is not such data (a field of the wrong
    type at any level included, so that what was planted never reaches the code that reads a parser)."""
    parser = _loaded(data)
    if not isinstance(parser, Parser) or not _well_formed(parser):
        raise ValueError("not a stored parser")
    return parser


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _text_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _is(*types: type) -> Any:
    return lambda value: isinstance(value, types)


def _anything(value: Any) -> bool:
    return True


# what each field of a stored record may hold (the values a script gives, default/const/choices/nargs, are
# checked by the code that uses them, as when they are read from the script)
_OPTION_FIELDS: dict[str, Any] = {
    "dest": _is(str), "option_strings": _texts, "action": _is(str), "type": _is(str), "type_name": _is(str),
    "default": _anything, "const": _anything, "choices": _anything, "nargs": _anything,
    "required": _is(bool), "help": _is(str, type(None)), "negatives": _texts,
    "exclusive": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
    "true_token": _is(str), "false_token": _is(str),
}  # fmt: skip
_PARSER_FIELDS: dict[str, Any] = {
    "kind": _is(str), "subcommand_dest": _is(str), "subcommand_required": _is(bool), "aliases": _text_map,
    "complete": _is(bool), "problems": _texts, "filename": _is(str), "name": _is(str),
    "sdk_binds_args": _is(bool), "sdk_unbound": _texts, "hydra_config": _text_map,
    "options": lambda v: isinstance(v, list) and all(isinstance(o, Option) and _fields_ok(o) for o in v),
    "subcommands": lambda v: isinstance(v, dict)
    and all(isinstance(k, str) and isinstance(p, Parser) and _well_formed(p) for k, p in v.items()),
}  # fmt: skip


def _fields_ok(option: Option) -> bool:
    return all(check(getattr(option, name)) for name, check in _OPTION_FIELDS.items())


def _well_formed(parser: Parser) -> bool:
    return all(check(getattr(parser, name)) for name, check in _PARSER_FIELDS.items())


_RECORDS: dict[str, Any] = {"parser": Parser, "option": Option}


def _stored(value: Any) -> Any:
    if value is UNKNOWN:
        return {"unknown": True}
    if isinstance(value, int) and value.bit_length() > 13000:
        raise NotStorable("an integer of more than 4,000 digits")  # json refuses to write it
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value - value == 0 else {"float": repr(value)}  # inf and nan are not JSON
    if isinstance(value, list):
        return [_stored(item) for item in value]
    if isinstance(value, (tuple, set, frozenset)):
        return {type(value).__name__: [_stored(item) for item in value]}
    if isinstance(value, dict):
        return {"dict": [[_stored(k), _stored(v)] for k, v in value.items()]}
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, complex):
        return {"complex": [value.real, value.imag]}
    kind = next((name for name, cls in _RECORDS.items() if type(value) is cls), None)
    if kind is None:
        raise NotStorable(f"a {type(value).__name__} value")
    return {kind: {f.name: _stored(getattr(value, f.name)) for f in type(value).__record_fields__}}


def _loaded(data: Any) -> Any:
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [_loaded(item) for item in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError("not a stored value")
    ((tag, inner),) = data.items()
    if tag in _BUILDERS:
        return _BUILDERS[tag](inner)
    if tag in _RECORDS and isinstance(inner, dict):
        return _RECORDS[tag](**{name: _loaded(value) for name, value in inner.items()})
    raise ValueError(f"not a stored value: {tag!r}")


# how each tagged value of _stored is built back
_BUILDERS: dict[str, Any] = {
    "unknown": lambda _: UNKNOWN,
    "float": float,
    "tuple": lambda items: tuple(_loaded(items)),
    "set": lambda items: set(_loaded(items)),
    "frozenset": lambda items: frozenset(_loaded(items)),
    "dict": lambda pairs: {_loaded(k): _loaded(v) for k, v in pairs},
    "bytes": lambda text: text.encode("latin-1"),
    "complex": lambda parts: complex(*parts),
}
