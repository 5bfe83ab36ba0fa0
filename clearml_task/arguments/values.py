"""Values: how an Args text becomes the value a script's option gets (types, choices, booleans, lists)
and how a value is written back as the clearml SDK records it."""

from __future__ import annotations

from typing import Any

from clearml_task.arguments.model import FLAGS, LIST_ACTIONS, UNKNOWN, Option
from clearml_task.vocabulary import FALSE_WORDS, TRUE_WORDS

_BOOL_WORDS = {**dict.fromkeys(TRUE_WORDS, True), **dict.fromkeys(FALSE_WORDS, False)}


def format_value(value: Any) -> str:
    """A value as the clearml SDK records it."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return str([list(v) if isinstance(v, tuple) else v for v in value])
    return str(value)


def parse_boolean(text: str, name: str) -> bool:
    word = text.strip().lower()
    if word == "":
        return False  # as the clearml SDK reads an empty flag
    if word not in _BOOL_WORDS:
        raise ValueError(f"{name} takes true or false, not {text!r}")
    return _BOOL_WORDS[word]


def list_items(text: str) -> list[Any]:
    """A list value: a Python list literal (as recorded), a YAML flow list, or one value."""
    stripped = text.strip()
    if not stripped:
        return []
    if stripped[0] in "[(":
        import ast  # only for a list's text (~5 ms to import)

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
            return [list(v) if isinstance(v, (list, tuple)) else token_text(v) for v in parsed]
    return [stripped]


def token_text(value: Any) -> str:
    """A list item as a command-line token (None as argparse would print it)."""
    return "None" if value is None else str(value)


def interpret(option: Option, text: str) -> Any:
    """The value the script gets from `text`; None: its default None. ValueError says what is allowed."""
    name = option.display
    blank = text.strip() in ("", "None")
    if option.action in FLAGS:
        return None if blank and option.default is None else parse_boolean(text, name)
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
        if option.action == "store_const" and text.strip() == format_value(option.const):
            return option.const
        if option.default is not UNKNOWN and text.strip() == format_value(option.default):
            return option.default
        if option.action == "store_const":
            raise ValueError(
                f"{name} is a switch: {format_value(option.const)!r} when given, "
                f"{format_value(option.default)!r} when not"
            )
        raise ValueError(
            f"{name} has an action clearml-task cannot pass on a command line "
            f"({option.type_name or 'custom'})"
        )
    if not option.many:
        return convert(option, text)
    items = list_items(text)
    per = option.nargs if isinstance(option.nargs, int) else None
    if option.action == "store" and per is not None and len(items) != per:
        raise ValueError(f"{name} takes {per} values, as a list: [{', '.join(['...'] * per)}]")
    if option.action == "store" and option.nargs == "+" and not items:
        raise ValueError(f"{name} takes at least one value")
    return [convert(option, item) for item in items]


def convert(option: Option, item: Any) -> Any:
    if isinstance(item, list):
        return [convert(option, element) for element in item]
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
        value = parse_boolean(text, name)
    if isinstance(option.choices, list) and option.choices and value not in option.choices:
        allowed = ", ".join(format_value(choice) for choice in option.choices)
        raise ValueError(f"{name} takes one of {allowed}, not {text!r}")
    return value


def is_default(option: Option, value: Any, text: str) -> bool:
    """The value is the option's default: nothing to pass."""
    default = option.default
    if default is UNKNOWN:
        return text.strip() == ""
    if value is None:
        return True
    if option.type == "unknown" and option.action in ("store", *LIST_ACTIONS):
        return format_value(value) == format_value(default)
    if isinstance(default, tuple):
        default = list(default)
    return bool(value == default and type(value) is type(default)) or (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and isinstance(default, (int, float))
        and not isinstance(default, bool)
        and value == default
    )


def typed_default(option: Option, value: Any) -> Any:
    """argparse passes a string default through the option's type."""
    if not isinstance(value, str) or option.many:
        return value
    try:
        if option.type == "int":
            return int(value)
        if option.type == "float":
            return float(value)
        if option.type == "bool":
            return parse_boolean(value, option.display)
    except ValueError:
        return UNKNOWN
    return value
