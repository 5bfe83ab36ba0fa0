"""One option's tokens: the command-line strings that give an option a value (`--lr 0.1`, `-v -v`,
`--no-amp`), or why no command line can (Inexpressible)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clearml_task.arguments.model import LIST_ACTIONS, Option
from clearml_task.arguments.values import format_value, token_text


class Inexpressible(Exception):
    """A value no command line can give the script."""


def tokens_for(options: Sequence[Option], value: Any, text: str) -> list[str]:
    """The tokens of the first of a dest's options that can give it `value` (`text` as written)."""
    reasons: list[str] = []
    for option in options:
        try:
            return _option_tokens(option, value, text)
        except Inexpressible as e:
            reasons.append(str(e))
    raise Inexpressible("; ".join(reasons))


def _value_token(option: Option, value: Any) -> str:
    if isinstance(value, bool):
        if option.type == "bool":
            return option.true_token if value else option.false_token
        return str(value)
    return token_text(value)


def with_value(option: Option, token: str) -> list[str]:
    """An option string and its value; a value that starts with '-' is glued to it."""
    string = option.option_strings[0]
    if token.startswith("-"):  # a value that looks like an option: glued to its option string
        return [f"{string}{token}"] if len(string) == 2 else [f"{string}={token}"]
    return [string, token]


def _option_tokens(option: Option, value: Any, text: str) -> list[str]:
    """The tokens that give one option `value`, by its action: a switch given or not, `-v` repeated up
    from the default count, a list added to its default (append, extend), or the option string and the
    value (`text` itself when the script converts it, so `1e-3` stays as written). Raises Inexpressible
    when no command line gives the option that value."""
    name, action = option.display, option.action
    string = option.option_strings[0] if option.option_strings else ""
    if action == "store_true" or action == "store_false":
        if value is (action == "store_true"):
            return [string]
        raise Inexpressible(f"{name} can only be switched to {action == 'store_true'}")
    if action == "boolean_optional":
        if value is True:
            return [string]
        if value is False and option.negatives:
            return [option.negatives[0]]
        raise Inexpressible(f"{name} has no option for {value!r}")
    if action == "count":
        base = option.default or 0
        if not isinstance(base, int) or value < base:
            raise Inexpressible(f"{name} counts up from {format_value(option.default)!r}")
        return [string] * (value - base)
    if action == "store_const":
        if value == option.const:
            return [string]
        raise Inexpressible(f"{name} is a switch: {format_value(option.const)!r} when given")
    if action in LIST_ACTIONS:
        base = list(option.default or [])
        if value[: len(base)] != base:
            raise Inexpressible(
                f"{name} adds to its default {format_value(base)}: the value must start with it"
            )
        rest = value[len(base) :]
        groups = [
            [_value_token(option, v) for v in (item if isinstance(item, list) else [item])] for item in rest
        ]
        flat = [token for group in groups for token in group]
        _refuse_option_like(option, flat)
        if action == "extend":
            return [string, *flat] if rest else []
        return [token for group in groups for token in (string, *group)]
    if action != "store":
        raise Inexpressible(f"{name} has an action clearml-task cannot pass on a command line")
    if option.many:
        tokens = [_value_token(option, v) for v in value]
        if option.positional:
            return tokens
        _refuse_option_like(option, tokens)
        return [string, *tokens]
    token = (
        text
        if option.type in ("str", "unknown", "int", "float") and isinstance(text, str)
        else _value_token(option, value)
    )
    if option.positional:
        _refuse_option_like(option, [token])
        return [token]
    return with_value(option, token)


def _refuse_option_like(option: Option, tokens: Sequence[str]) -> None:
    """Values that argparse would read as options (`-x`; a negative number is fine) cannot be passed."""
    for token in tokens:
        if token.startswith("-") and not is_number(token):
            raise Inexpressible(f"{option.display}: the value {token!r} would be read as an option")


def is_number(token: str) -> bool:
    """Whether the token reads as a number (`-0.5`), which argparse takes as a value, not an option."""
    try:
        float(token)
    except ValueError:
        return False
    return True
