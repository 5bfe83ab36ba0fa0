"""Reading a request body: its size limits, strict JSON and json-lines, and the query string merged in.

Strict JSON is what SQLite and every client can store and read back: no NaN/Infinity (nor `1e400`,
which Python reads as infinity), integers within 64 bits, and nesting at most MAX_DEPTH deep.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from clearml_task.errors import UserError
from clearml_task.server import errors

# Requests without a valid token (auth.login, debug.ping, and anything refused anyway) need no more.
UNAUTHENTICATED_MAX_BODY = 16 * 1024
# Requests with a token: sized for events.add_batch; the env var and `clearml-launcher server` change it.
DEFAULT_MAX_BODY_MB = 64
MAX_BODY_ENV = "CLEARML_TASK_SERVER_MAX_BODY_MB"
MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


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


class _Refused(ValueError):
    pass


class _Unstorable:
    """A number the parser met that cannot be stored; the walk after parsing names where it was."""

    def __init__(self, text: str, why: str) -> None:
        self.text = text[:24] + ("..." if len(text) > 24 else "")
        self.why = why


def _constant(name: str) -> Any:
    return _Unstorable(name, "is not a JSON number")


def _float(text: str) -> float | _Unstorable:
    value = float(text)
    return value if math.isfinite(value) else _Unstorable(text, "is beyond a 64-bit float")


def _int(text: str) -> int | _Unstorable:
    if len(text) > 20 or not INT_MIN <= int(text) <= INT_MAX:
        return _Unstorable(text, "is beyond a 64-bit integer")
    return int(text)


def loads(text: str) -> Any:
    """json.loads, refusing what cannot be stored and read back (see the module's docstring)."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise _Refused(f"nested deeper than {MAX_DEPTH} levels") from None
    _check(value)
    return value


def _check(value: Any) -> None:
    """Refuse, naming the field, an unstorable number or nesting deeper than MAX_DEPTH."""
    # trail: (key, parent's trail), so that a path is spelled out only for the error
    stack: list[tuple[Any, int, tuple[Any, Any] | None]] = [(value, 0, None)]
    while stack:
        item, depth, trail = stack.pop()
        if isinstance(item, _Unstorable):
            raise _Refused(f"{_path(trail)}: {item.text} {item.why}")
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise _Refused(f"{_path(trail)}: nested deeper than {MAX_DEPTH} levels")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, depth + 1, (key, trail)) for key, child in pairs)


def _path(trail: tuple[Any, Any] | None) -> str:
    keys = []
    while trail is not None:
        key, trail = trail
        keys.append(f"[{key}]" if isinstance(key, int) else f".{key}")
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
