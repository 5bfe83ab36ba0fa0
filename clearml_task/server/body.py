"""Reading a request body: its size limits, strict JSON and json-lines, and the query string merged in.

Strict JSON is what SQLite and every client can store and read back: no NaN/Infinity (nor `1e400`,
which Python reads as infinity), integers within 64 bits, nesting at most MAX_DEPTH deep, and text only
(a `\udc80` escape makes a lone surrogate, which is not text: SQLite, RE2 and UTF-8 cannot take it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from clearml_task.errors import UserError
from clearml_task.server import errors

# Requests without a valid token (auth.login, debug.ping, and anything refused anyway) need no more.
UNAUTHENTICATED_MAX_BODY = 16 * 1024
# Requests with a token: sized for events.add_batch; the env var and `clearml-launcher server` change it.
DEFAULT_MAX_BODY_MB = 64
MAX_BODY_ENV = "CLEARML_TASK_SERVER_MAX_BODY_MB"
# A file upload (a model's weights, a dataset's chunk) with a token: no limit unless one is given, as
# ClearML's file server (`max_upload_size_mb: 0`); the env var and `clearml-launcher server` set one.
MAX_UPLOAD_ENV = "CLEARML_TASK_SERVER_MAX_UPLOAD_MB"
NO_LIMIT = 1 << 62  # what the HTTP layer is told when uploads have no limit
MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # where a lone surrogate could come from
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def max_body(environ: Mapping[str, str], given_mb: int | None = None) -> int:
    """The largest body (bytes) an authenticated request may send: `given_mb`, else the env var."""
    if given_mb is None:
        text = environ.get(MAX_BODY_ENV, "").strip()
        try:
            given_mb = int(text) if text else DEFAULT_MAX_BODY_MB
        except ValueError:
            raise UserError(f"{MAX_BODY_ENV}={text!r} is not a whole number of megabytes") from None
    if given_mb <= 0:
        raise UserError(f"the body limit must be a positive number of megabytes, not {given_mb}")
    return given_mb * 1024 * 1024


def max_upload(environ: Mapping[str, str], given_mb: int | None = None) -> int | None:
    """The largest file upload (bytes) with a token: `given_mb`, else the env var; None (0): no limit."""
    if given_mb is None:
        text = environ.get(MAX_UPLOAD_ENV, "").strip()
        try:
            given_mb = int(text) if text else 0
        except ValueError:
            raise UserError(f"{MAX_UPLOAD_ENV}={text!r} is not a whole number of megabytes") from None
    if given_mb < 0:
        raise UserError(f"the upload limit must be 0 (none) or a number of megabytes, not {given_mb}")
    return given_mb * 1024 * 1024 or None


class _Refused(ValueError):
    pass


class _Unstorable:
    """NaN, Infinity or a float beyond 64 bits, met by the parser; the walk after parsing names where."""

    def __init__(self, text: str, why: str) -> None:
        self.text = text[:24] + ("..." if len(text) > 24 else "")
        self.why = why


def _constant(name: str) -> Any:
    return _Unstorable(name, "is not a JSON number")


def _float(text: str) -> float | _Unstorable:
    value = float(text)
    return value if math.isfinite(value) else _Unstorable(text, "is beyond a 64-bit float")


def loads(text: str) -> Any:
    """json.loads, refusing what cannot be stored and read back (see the module's docstring)."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels") from None
    _check(value, text=_SURROGATE_ESCAPE.search(text) is not None)
    return value


def _check(value: Any, text: bool) -> None:
    """Refuse, naming the field, a number that cannot be stored, nesting deeper than MAX_DEPTH, and (`text`:
    the body has escapes that could make one) a lone surrogate in a key or a string. Only containers are
    stacked, and numbers are parsed natively: a long list of numbers costs little beyond itself."""
    _check_scalar(value, None, text)
    # trail: (key, parent's trail), so that a path is spelled out only for the error
    stack: list[tuple[Any, int, tuple[Any, Any] | None]] = [(value, 0, None)]
    while stack:
        item, depth, trail = stack.pop()
        if type(item) is not dict and type(item) is not list:
            continue
        if depth >= MAX_DEPTH:
            raise _Refused(f"{_path(trail)}: nested deeper than {MAX_DEPTH} levels")
        pairs = item.items() if type(item) is dict else enumerate(item)
        for key, child in pairs:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1, (key, trail)))
            elif kind is int:
                if not INT_MIN <= child <= INT_MAX:
                    _check_scalar(child, (key, trail), text)
            elif kind is not bool and child is not None:
                _check_scalar(child, (key, trail), text)
            if text and type(key) is str and _LONE_SURROGATE.search(key):
                raise _Refused(f"{_path((key, trail))}: the key holds a lone surrogate, which is not text")


def _check_scalar(value: Any, trail: tuple[Any, Any] | None, text: bool) -> None:
    """A number within 64 bits (an integer) or finite (a float), and text without a lone surrogate."""
    if isinstance(value, _Unstorable):
        raise _Refused(f"{_path(trail)}: {value.text} {value.why}")
    if type(value) is int and not INT_MIN <= value <= INT_MAX:
        shown = str(value) if len(str(value)) <= 24 else str(value)[:24] + "..."
        raise _Refused(f"{_path(trail)}: {shown} is beyond a 64-bit integer")
    if text and type(value) is str and _LONE_SURROGATE.search(value):
        raise _Refused(f"{_path(trail)}: holds a lone surrogate (a \\udXXX escape alone), which is not text")


def _path(trail: tuple[Any, Any] | None) -> str:
    keys = []
    while trail is not None:
        key, trail = trail
        shown = key.encode("utf-8", "backslashreplace").decode() if isinstance(key, str) else key
        keys.append(f"[{key}]" if isinstance(key, int) else f".{shown}")
    text = "".join(reversed(keys)).lstrip(".") or "the body"
    return text if len(text) <= 80 else text[:77] + "..."


def parse(body: bytes, content_type: str, batch: bool) -> dict[str, Any]:
    """The request's arguments; a JSON list or json-lines (for a `batch` endpoint) is data["requests"]."""
    try:
        text = body.decode("utf-8").strip() if body else ""
    except UnicodeDecodeError:
        raise errors.bad_request("the body is not UTF-8") from None
    if not text:
        return {}
    parsed: Any
    if "json-lines" in content_type or "jsonlines" in content_type:
        parsed = _json_lines(text)
    else:
        try:
            parsed = loads(text)
        except _Refused as e:
            raise errors.bad_request(f"body refused: {e}") from None
        except ValueError as e:
            if "\n" not in text:
                raise errors.bad_request(f"body is not valid JSON ({_reason(e)})") from None
            parsed = _json_lines(text)
    if isinstance(parsed, list) and batch:
        return {"requests": parsed}
    if not isinstance(parsed, dict):
        raise errors.bad_request("the body must be a JSON object")
    return parsed


def _reason(e: ValueError) -> str:
    return f"{e.msg} at char {e.pos}" if isinstance(e, json.JSONDecodeError) else str(e)


def _json_lines(text: str) -> list[Any]:
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append(loads(line))
            except _Refused as e:
                raise errors.bad_request(f"line {number} refused: {e}") from None
            except ValueError as e:
                raise errors.bad_request(f"line {number} is not valid JSON ({_reason(e)})") from None
    return items


def merge_query(data: dict[str, Any], query: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query-string arguments join the body; a repeated argument becomes a list."""
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(value)
    for key, values in grouped.items():
        data[key] = values[0] if len(values) == 1 else values
    return data
