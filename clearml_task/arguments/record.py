"""Recording `--args`: the pairs read, resolved to the parser's Args keys (`lr`, `learning-rate`,
`train.lr`), checked (type, choices, subcommands, mutually exclusive groups, required options) and
recorded with every other option's default in hyperparams.Args; a clone's Args with overrides applied."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from clearml_task.arguments.model import (
    FLAGS,
    READABLE,
    UNKNOWN,
    Option,
    Parser,
    Slot,
    options_by_dest,
    slots_of,
)
from clearml_task.arguments.tokens import Inexpressible, tokens_for
from clearml_task.arguments.values import format_value, interpret, is_default
from clearml_task.errors import UserError


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
    slots = slots_of(parser)
    given: dict[str, tuple[str, str]] = {}  # full key → (the key as written, value)
    extra: dict[str, str] = {}
    for key, text in overrides.items():
        full = _resolve_key(parser, slots, key)
        if full is None:
            if parser.complete:
                raise _unknown_key(parser, slots, key)
            extra[key] = text
        elif full in given:  # two of its names (`--num-epochs` and `-n`): which value was meant?
            raise UserError(f"--args gives {full!r} twice, as {given[full][0]!r} and as {key!r}",
                            "give each argument once", exit_code=2)  # fmt: skip
        else:
            given[full] = (key, text)
    chain = _subcommands_run(parser, {k: v for k, (_, v) in given.items()})
    recorded = {full: _recorded_value(parser, slots[full], key, text) for full, (key, text) in given.items()}
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
            value = format_value(first.default)
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


def check_clone_overrides(
    args_section: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, str], base: str
) -> None:
    """A clone's overrides checked against the base task's recorded Args, before anything is created: a
    key it does not have is an error naming the close matches (when it has any Args to check against),
    and a value must fit the recorded type (int, float, bool; an empty value is the default)."""
    recorded = {str(param.get("name") or key): param for key, param in args_section.items()}
    known = [name for name in recorded if not name.startswith("_")]
    if not known:
        return
    for key, text in overrides.items():
        param = recorded.get(key)
        if param is None:
            import difflib

            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            suggestion = f"; did you mean {' or '.join(close)}?" if close else ""
            shown = ", ".join(known[:40]) + (f", ... ({len(known)} in all)" if len(known) > 40 else "")
            raise UserError(
                f"--args {key}: the base task {base} has no argument {key!r}{suggestion}",
                f"its arguments: {shown}",
                exit_code=2,
            )
        kind = str(param.get("type") or "")
        if kind in ("int", "float", "bool") and text.strip():
            try:
                interpret(Option(key, [f"--{key}"], type=kind), text)
            except ValueError as error:
                raise UserError(f"--args {key}={text}: {error} (the base task {base} records it as {kind})",
                                exit_code=2) from None  # fmt: skip


def _levels(parser: Parser, chain: Mapping[str, str]) -> Iterator[tuple[str, Parser]]:
    """The main parser and the subcommands that run, with their key prefixes."""
    prefix, level = "", parser
    while True:
        yield prefix, level
        name = chain.get(prefix)
        if not name:
            return
        level, prefix = level.subcommands[name], f"{prefix}{name}."


def resolve_key(parser: Parser, key: str) -> str | None:
    """The Args key an override names on this parser (None: none), as `check_and_record` resolves it."""
    return _resolve_key(parser, slots_of(parser), key)


def _resolve_key(parser: Parser, slots: Mapping[str, Slot], key: str) -> str | None:
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


def _unknown_key(parser: Parser, slots: Mapping[str, Slot], key: str) -> UserError:
    known = list(slots)
    import difflib

    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    suggestion = f"; did you mean {' or '.join(close)}?" if close else ""
    shown = ", ".join(known[:40]) + (f", ... ({len(known)} in all)" if len(known) > 40 else "")
    hint = f"its arguments: {shown}" if known else "it takes no arguments"
    return UserError(f"--args {key}: {parser.script} has no argument {key!r}{suggestion}", hint, exit_code=2)


def _subcommands_run(parser: Parser, given: Mapping[str, str]) -> dict[str, str]:
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


def _recorded_value(parser: Parser, slot: Slot, key: str, text: str) -> str:
    """The value as recorded, after checking it against the option (type, choices, expressible)."""
    if not slot.options:
        return text.strip()
    first = slot.options[0]
    known = first.default is not UNKNOWN and first.default is not None
    default = f" (its default: {format_value(first.default)!r})" if known else ""
    try:
        value = interpret(first, text)
    except ValueError as e:
        raise UserError(
            f"--args {key}={text}: {e}", f"{parser.script} defines {first.display}{default}", exit_code=2
        ) from e
    if value is None and first.required:
        raise UserError(
            f"--args {key}={text}: {parser.script} requires a value for {first.display}; an empty one would "
            "be recorded as not given and never reach the script",
            f"give it a value: --args {key}=VALUE",
            exit_code=2,
        )
    if value is None:
        return ""
    if not is_default(first, value, text):
        try:
            tokens_for(slot.options, value, text)
        except Inexpressible as e:
            raise UserError(
                f"--args {key}={text}: {e}", f"{parser.script} defines {first.display}{default}", exit_code=2
            ) from e
    if (
        first.action in FLAGS
        or first.action in ("count", "store_const")
        or first.many
        or isinstance(value, bool)
    ):
        return format_value(value)
    return text


def _check_exclusive(
    parser: Parser,
    slots: Mapping[str, Slot],
    given: Mapping[str, tuple[str, str]],
    recorded: Mapping[str, str],
) -> None:
    groups: dict[tuple[str, int], list[str]] = {}
    for full, text in recorded.items():
        slot = slots[full]
        for option in slot.options[:1]:
            if option.exclusive is not None and not is_default(option, interpret(option, text), text):
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
        for dest, options in options_by_dest(level).items():
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
