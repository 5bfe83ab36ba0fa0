"""The date and range conditions of `tasks.get_all` and `models.get_all`, read as ClearML's server reads
them (ClearML's TriggerScheduler and the web app send them):

- a date field (`last_update: ">2024-05-01T10:00:00"`): one condition or a list of them, each an ISO
  time after `>`, `>=`, `<`, `<=` or none (equal); all must hold. Two times without an operator are a
  range, as below.
- a range field (`created: [low, high]`, `last_metrics.<metric>.<variant>.max_value: [0.9, null]`): both
  ends included, either may be null (open); with no low end a missing value matches too.
- `_or_` / `_and_` (and `_any_` / `_all_`) with `datetime`: the condition on any / all of its date fields.

A condition the server cannot read is a 400 naming it, never ignored: an ignored filter would answer with
everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from clearml_task.server import errors

Test = Callable[[dict[str, Any]], bool]

DATE_FIELDS: dict[str, tuple[str, ...]] = {
    "tasks": ("status_changed", "last_update", "last_change"),
    "models": ("last_update", "last_change"),
}
# Range fields: times, and numbers (every path under last_metrics is a number range too).
TIME_RANGES: dict[str, tuple[str, ...]] = {"tasks": ("created", "started"), "models": ("created",)}
NUMBER_RANGES: dict[str, tuple[str, ...]] = {
    "tasks": ("active_duration", "last_iteration"),
    "models": ("last_iteration",),
}
METRICS = "last_metrics"
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
MAX_CONDITIONS = 8
MAX_METRIC_PATHS = 64  # last_metrics conditions in one call (each is a test of every document)


def fields(kind: str) -> tuple[str, ...]:
    """The top-level fields of `kind` that take a date or range condition."""
    return DATE_FIELDS.get(kind, ()) + TIME_RANGES.get(kind, ()) + NUMBER_RANGES.get(kind, ())


def is_metric_path(key: str) -> bool:
    return key.startswith(METRICS + ".")


def tests(data: dict[str, Any], kind: str) -> tuple[list[Test], set[str]]:
    """The tests of the top-level date and range fields given in a get_all body, and the fields they read
    (a `last_metrics` path is a dotted field: query.filters gives it `range_test`)."""
    found: list[Test] = []
    reads: set[str] = set()
    for name in fields(kind):
        value = data.get(name)
        if value is None:
            continue
        path = [name]
        if name in DATE_FIELDS[kind]:
            found.append(date_test(path, value, name))
        else:
            found.append(range_test(path, value, name, numbers=name in NUMBER_RANGES[kind]))
        reads.add(name)
    return found, reads


def date_test(path: list[str], value: Any, shown: str) -> Test:
    """The test of a date field's condition(s): `[low, high]`, or each of `>t`, `>=t`, `<t`, `<=t`, `t`."""
    conditions = value if isinstance(value, list) else [value]
    if len(conditions) == 2 and not any(isinstance(c, str) and c.startswith(("<", ">")) for c in conditions):
        return range_test(path, conditions, shown, numbers=False)
    if not conditions or len(conditions) > MAX_CONDITIONS or not all(isinstance(c, str) for c in conditions):
        raise errors.validation_error(
            f"{shown} must be a time condition (>, >=, <, <= or none, then an ISO time) or a list of at "
            f"most {MAX_CONDITIONS}"
        )
    checks: list[tuple[Callable[[Any, Any], bool], datetime]] = []
    for condition in conditions:
        operator = next((op for op in _OPERATORS if condition.startswith(op)), "")
        compare = _OPERATORS.get(operator, lambda a, b: a == b)
        checks.append((compare, _time(condition[len(operator) :], shown)))

    def test(doc: dict[str, Any]) -> bool:
        return any(
            all(compare(have, bound) for compare, bound in checks) for have in _times(leaves(doc, path))
        )

    return test


def range_test(path: list[str], value: Any, shown: str, *, numbers: bool) -> Test:
    """The test of `[low, high]`: both included, None open; with no low end a missing value matches."""
    if not isinstance(value, list) or len(value) != 2:
        raise errors.validation_error(f"{shown} must be a range [low, high] (either may be null)")
    if value[0] is None and value[1] is None:
        raise errors.validation_error(f"{shown}: at least one of the range's ends must be given")
    read: Callable[[Any, str], Any] = _number if numbers else _time
    low, high = (None if end is None else read(end, shown) for end in value)

    def test(doc: dict[str, Any]) -> bool:
        present = list(leaves(doc, path))
        if low is None and all(v is None for v in present):
            return True
        have: Iterable[Any] = _numbers(present) if numbers else _times(present)
        return any((low is None or low <= v) and (high is None or v <= high) for v in have)

    return test


def multi_field(key: str, spec: dict[str, Any], kind: str) -> tuple[Test, list[str]]:
    """`_or_` / `_and_` (or `_any_` / `_all_`) {fields, datetime}: the condition on any / all of the fields,
    each of which must be a date field of `kind` (one field may come as a string); and those fields."""
    names = spec.get("fields") or []
    names = [names] if isinstance(names, str) else names
    dates = DATE_FIELDS.get(kind, ())
    if not dates:
        raise errors.validation_error(f"{key}.datetime: {kind}.get_all has no date fields")
    wrong = [name for name in names if name not in dates]
    if not names or wrong:
        raise errors.validation_error(
            f"{key}.fields must name date fields ({', '.join(dates)})"
            + (f"; {str(wrong[0])[:100]!r} is not one" if wrong else "")
        )
    each = [date_test([name], spec["datetime"], f"{key}.datetime") for name in names]
    combine = all if key in ("_all_", "_and_") else any
    return (lambda doc: combine(test(doc) for test in each)), names


def _time(text: Any, shown: str) -> datetime:
    """An ISO time (naive: UTC), or the 400 naming the field."""
    try:
        if not isinstance(text, str) or len(text) > 64:
            raise ValueError
        found = datetime.fromisoformat(text.strip())
    except ValueError:
        raise errors.validation_error(f"{shown}: {str(text)[:64]!r} is not an ISO time") from None
    return _utc(found)


def _number(value: Any, shown: str) -> float:
    """A finite number, or its text (ClearML's server reads last_metrics bounds given as text)."""
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str) or len(str(value)) > 64:
            raise ValueError
        found = float(value)
    except ValueError:
        raise errors.validation_error(f"{shown}: {str(value)[:64]!r} is not a number") from None
    if not math.isfinite(found):
        raise errors.validation_error(f"{shown}: {str(value)[:64]!r} is not a finite number")
    return found


def _times(values: Iterable[Any]) -> Iterable[datetime]:
    """The stored values that are times (a stored value the server did not write may be anything)."""
    for value in values:
        if isinstance(value, str):
            try:
                yield _utc(datetime.fromisoformat(value))
            except ValueError:
                continue


def _utc(found: datetime) -> datetime:
    """A time that names no zone is UTC (as ClearML's server stores and reads them)."""
    return found if found.tzinfo else found.replace(tzinfo=timezone.utc)


def _numbers(values: Iterable[Any]) -> Iterable[float]:
    return (float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool))


def leaves(doc: Any, path: list[str]) -> Iterable[Any]:
    """The values at a dotted path; a list on the way gives each of its elements."""
    if isinstance(doc, list):
        for item in doc:
            yield from leaves(item, path)
    elif not path:
        yield doc
    elif isinstance(doc, dict) and path[0] in doc:
        yield from leaves(doc[path[0]], path[1:])
