"""Declarative checks of the fields an endpoint reads, run before its handler touches the store.

Each endpoint declares `fields={name: kind}` (see endpoints.endpoint); a field that is present but not
of its kind is a 400 naming it. Fields an endpoint does not declare are not read, only stored as given
(body.py has already made sure any JSON value is storable).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clearml_task.server import errors
from clearml_task.server.body import INT_MAX, INT_MIN
from clearml_task.vocabulary import FALSE_WORDS, MAX_NAME, TRUE_WORDS


class Kind:
    """What a field may hold; `what` completes "<field> must be ..."."""

    what = "valid"

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Instance(Kind):
    """A value of one Python type (TEXT, OBJECT)."""

    type: type = object
    what: str = "valid"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.type)


@dataclass(frozen=True)
class Id(Kind):
    """An id, or a list of one id (as the clients sometimes send)."""

    what: str = "an id string"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        return isinstance(value, str)


@dataclass(frozen=True)
class Number(Kind):
    """A number (or its decimal text, as query strings carry it) within [low, high]."""

    low: float = -math.inf
    high: float = math.inf
    whole: bool = False
    what: str = "a number"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, str):
            value = _number(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.whole and isinstance(value, float) and not value.is_integer():
            return False
        return math.isfinite(value) and self.low <= value <= self.high


def Int(low: int = INT_MIN, high: int = INT_MAX) -> Number:
    return Number(low, high, whole=True, what=f"an integer from {low} to {high}")


def _number(text: str) -> float | int | None:
    text = text.strip()
    if len(text) > 24:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Flag(Kind):
    what: str = "a boolean"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, str):
            return value == "" or value.lower() in TRUE_WORDS | FALSE_WORDS
        return isinstance(value, bool | int)


@dataclass(frozen=True)
class Texts(Kind):
    """A list of strings; with `single`, one string too (taken as a list of one)."""

    single: bool = False
    what: str = "a list of strings"
    most: int | None = None  # the longest list taken (None: any length)

    def accepts(self, value: Any) -> bool:
        if self.single and isinstance(value, str):
            return True
        if not isinstance(value, list) or (self.most is not None and len(value) > self.most):
            return False
        return all(isinstance(v, str) for v in value)


@dataclass(frozen=True)
class Name(Kind):
    """The name of a task, project, queue or model: text of at most MAX_NAME characters (get_all's name
    regex runs over every name it filters: an unbounded one would let one search hold a thread)."""

    what: str = f"a string of at most {MAX_NAME} characters"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and len(value) <= MAX_NAME


@dataclass(frozen=True)
class Bounds(Kind):
    """A condition's text (one, or a list of at most 8) or, with `pair`, a list of two; the items of a
    list are texts, numbers or null (what they say is read, and refused, by server.ranges)."""

    pair: bool = False
    what: str = "a condition"

    def accepts(self, value: Any) -> bool:
        if not self.pair and isinstance(value, str):
            return True
        if not isinstance(value, list) or not (len(value) == 2 if self.pair else 1 <= len(value) <= 8):
            return False
        return all(v is None or (isinstance(v, str | int | float) and not isinstance(v, bool)) for v in value)


@dataclass(frozen=True)
class Anything(Kind):
    def accepts(self, value: Any) -> bool:
        return True


@dataclass(frozen=True)
class Objects(Kind):
    """A list of objects (or one object), each with the `required` fields and all of `fields` in kind."""

    fields: Mapping[str, Kind] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    what: str = "a list of objects"
    most: int | None = None  # the longest list taken (None: any length)

    def accepts(self, value: Any) -> bool:
        items = value if isinstance(value, list) else [value]
        if self.most is not None and len(items) > self.most:
            return False
        return all(
            isinstance(item, dict) and problem(item, self.fields, self.required) is None for item in items
        )


@dataclass(frozen=True)
class Shape(Kind):
    """One object whose fields are each of their kind (unknown fields are refused)."""

    fields: Mapping[str, Kind] = field(default_factory=dict)
    what: str = "an object"

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, dict) and set(value) <= set(self.fields) and problem(value, self.fields) is None
        )


def problem(data: Mapping[str, Any], spec: Mapping[str, Kind], required: tuple[str, ...] = ()) -> str | None:
    """What is wrong with `data` against `spec` (None when nothing is)."""
    for name in required:
        if data.get(name) in (None, ""):
            return f"{name} is required"
    for name, kind in spec.items():
        value = data.get(name)
        if value is not None and not kind.accepts(value):
            return f"{name} must be {kind.what}"
    return None


def check(data: Mapping[str, Any], spec: Mapping[str, Kind]) -> None:
    """Raise the 400 validation error naming the first field of `data` that `spec` refuses."""
    found = problem(data, spec)
    if found is not None:
        raise errors.validation_error(found)


def check_closed(data: Mapping[str, Any], spec: Mapping[str, Kind], paths: bool, endpoint: str) -> None:
    """The 400 naming a field of `data` that `spec` does not declare (a dotted path is one, with `paths`)."""
    for name in data:
        if name not in spec and not (paths and "." in name):
            raise errors.validation_error(
                f"{endpoint} does not support the field {name[:100]!r}; it takes "
                + ", ".join(sorted(spec))
                + (" and dotted field paths" if paths else "")
            )


# The kinds most endpoints use.
TEXT = Instance(str, "a string")
ID = Id()
NAME = Name()
FLAG = Flag()
OBJECT = Instance(dict, "an object")
TAGS = Texts()  # stored as given: a list of strings
MATCHING = Texts(single=True)  # a filter: one value or any of a list
# get_all's tag filters, order and fields each cost a step per document and entry (and only_fields one
# SQLite column each, which SQLite caps at 2000): no client needs more than a few dozen.
MAX_LISTED = 256
LISTED = Texts(single=True, most=MAX_LISTED, what=f"a string or a list of at most {MAX_LISTED} strings")
# The tasks of a read over several tasks (tasks.get_configurations, events.get_task_metrics, ...): each is
# read on its own, so a list costs a query per entry; ClearML's web app compares up to 100.
MAX_TASKS = 1000
TASKS = Texts(single=True, most=MAX_TASKS, what=f"an id or a list of at most {MAX_TASKS} ids")
COUNT = Int(0, 2**31)
TIMESTAMP = Number(0, 2**53)

# A date field's condition in a get_all (server.ranges reads it): `>t`, `>=t`, `<t`, `<=t` or `t`, or a
# list of them, or [low, high] with either null.
DATES = Bounds(what="a time condition or a list of at most 8 (a [low, high] pair may hold null)")
# A range field's [low, high] (either null).
RANGE = Bounds(pair=True, what="a range [low, high] (either may be null)")
# `_any_` / `_all_` (`_or_` / `_and_`) of a get_all: a regex, or a time condition, and the (dotted) fields.
FIELD_PATTERN = Shape(
    {"pattern": TEXT, "datetime": DATES, "fields": LISTED},
    what=f"an object {{pattern: a regex (or datetime: a time condition), fields: a list of at most "
    f"{MAX_LISTED} field names}}",
)
# What every *.get_all reads (query.select, query.filters). Its endpoints refuse any other field (but
# dotted field paths where they take them): a filter the server ignored would answer with everything.
GET_ALL: dict[str, Kind] = {
    "id": MATCHING,
    "name": TEXT,
    "tags": LISTED,
    "system_tags": LISTED,
    "search_hidden": FLAG,
    "order_by": LISTED,
    "page": COUNT,
    "page_size": COUNT,
    "only_fields": LISTED,
    "search_text": TEXT,
    "_any_": FIELD_PATTERN,
    "_all_": FIELD_PATTERN,
    "_or_": FIELD_PATTERN,
    "_and_": FIELD_PATTERN,
    # Accepted and ignored: ClearML's scroll paging (the whole answer comes in one page, or by page and
    # page_size) and the SDK's marker for fields its request class does not declare.
    "scroll_id": TEXT,
    "refresh_scroll": FLAG,
    "size": COUNT,
    "_allow_extra_fields_": FLAG,
    "method": TEXT,
}
# What every status change reads.
STATUS_CHANGE: dict[str, Kind] = {"task": ID, "force": FLAG, "status_reason": TEXT, "status_message": TEXT}
