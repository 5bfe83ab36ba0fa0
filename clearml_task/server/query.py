"""What every `*.get_all` shares: name regexes, tag filters, ordering, paging, dotted only_fields."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import re2

from clearml_task.server import errors, ranges
from clearml_task.server.fields import MAX_LISTED
from clearml_task.server.ranges import leaves

if TYPE_CHECKING:
    from clearml_task.server.endpoints import Call


def select(
    call: Call, docs: Iterable[dict[str, Any]], keep: Callable[[dict[str, Any]], bool] | None = None
) -> list[dict[str, Any]]:
    """What every get_all does: filter by id, name (a regex), tags and system_tags, leave out `hidden`
    documents unless search_hidden (or ids) are given, then order_by, page/page_size and only_fields."""
    fields = call.items("only_fields")
    return [project(doc, fields) for doc in chosen(call, docs, keep)]


def chosen(
    call: Call, docs: Iterable[dict[str, Any]], keep: Callable[[dict[str, Any]], bool] | None = None
) -> list[dict[str, Any]]:
    """select without only_fields: the whole documents it returns, filtered, ordered and paged."""
    ids = wanted(call, "id")
    pattern = name_filter(call.text("name"))
    tags, system_tags = call.items("tags"), call.items("system_tags")
    show_hidden = call.flag("search_hidden") or ids is not None
    found = [
        doc
        for doc in docs
        if one_of(doc["id"], ids)
        and (pattern is None or pattern.search(doc["name"]))
        and tags_match(doc.get("tags", []), tags)
        and tags_match(doc.get("system_tags", []), system_tags)
        and (show_hidden or "hidden" not in doc.get("system_tags", []))
        and (keep is None or keep(doc))
    ]
    return page(order(found, call.items("order_by")), call.integer("page"), call.integer("page_size"))


def page_ids(call: Call, kind: str, where_sql: str, params: list[Any]) -> list[str] | None:
    """The ids of one page of `chosen`, in SQL over the table's columns (no document read; a name regex on
    the names SQL gives), or None when the call asks for what only `chosen` does: no paging, tag operators
    (`__$all`, `__$not`), an order by a field that is no column. Same answer: tags any-of, `-tag`
    none-of, hidden left out unless search_hidden or ids, nulls first ascending (last descending), ties
    in rowid order."""
    from clearml_task.server.store import COLUMNS, JSON_COLUMNS

    size = call.integer("page_size")
    if size is None or size <= 0:
        return None
    pattern = name_filter(call.text("name"))
    where, args = ([f"({where_sql})"] if where_sql else []), list(params)
    for column in ("tags", "system_tags"):
        wanted = call.items(column) or []
        if not all(isinstance(t, str) and t and not t.startswith("__$") for t in wanted):
            return None
        each = f"SELECT 1 FROM json_each({kind}.{column}) WHERE value IN"
        include = [t for t in wanted if not t.startswith("-")]
        exclude = [t[1:] for t in wanted if t.startswith("-")]
        if include:
            where.append(f"EXISTS ({each} ({', '.join('?' * len(include))}))")
        args.extend(include)
        for tag in exclude:  # a list without the text at all is read no further
            where.append(f"(instr({kind}.{column}, ?) = 0 OR NOT EXISTS ({each} (?)))")
            args.extend((json.dumps(tag)[1:-1] or '"', tag))
    if not (call.flag("search_hidden") or call.items("id") is not None):
        hidden = f"SELECT 1 FROM json_each({kind}.system_tags) WHERE value = 'hidden'"
        where.append(f"(instr({kind}.system_tags, 'hidden') = 0 OR NOT EXISTS ({hidden}))")
    sortable = {"id", *COLUMNS[kind]} - JSON_COLUMNS
    terms = []
    for spec in call.items("order_by") or []:
        if not isinstance(spec, str) or spec.lstrip("-") not in sortable:
            return None
        terms.append(f"{spec.lstrip('-')} {'DESC' if spec.startswith('-') else 'ASC'}")
    sql = (
        f"SELECT id, name FROM {kind}"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {', '.join([*terms, 'rowid'])}"
    )
    start = max(call.integer("page") or 0, 0) * size
    if pattern is None:
        return [row[0] for row in call.tx.conn.execute(f"{sql} LIMIT ? OFFSET ?", (*args, size, start))]
    # The name regex runs on RE2 (linear time) over the names alone, in the order SQL gave.
    found = [row[0] for row in call.tx.conn.execute(sql, args) if pattern.search(row[1])]
    return found[start : start + size]


def wanted(call: Call, name: str) -> set[str] | None:
    """A filter field (strings, as its kind is checked) as a set, looked up once per document."""
    values = call.items(name)
    return None if values is None else set(values)


def one_of(value: Any, values: set[str] | None) -> bool:
    """Whether a document's `value` passes the filter `values` (None: no filter)."""
    return values is None or (isinstance(value, str) and value in values)


MAX_PATTERN = 1000
# RE2 instructions a name pattern may compile to: past a few thousand (`(a|aa){999}b`), RE2's DFA runs out of
# memory and falls back to its NFA, minutes over a long text; everyday patterns are tens.
MAX_PROGRAM = 1000
MAX_SCAN_SECONDS = 5.0  # one request's name matching, over all the names it reads


class NameFilter:
    """A get_all's name regex, compiled by RE2 (linear time in the name, whatever the pattern; no
    backreferences or lookaround, which are refused), within a time budget for the whole request: names
    are at most MAX_NAME characters, so no single match takes long, and a request whose matching passes
    MAX_SCAN_SECONDS is refused rather than holding a server thread."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.deadline = time.monotonic() + MAX_SCAN_SECONDS

    def search(self, name: str) -> bool:
        if time.monotonic() > self.deadline:
            raise errors.validation_error(
                f"the pattern took over {MAX_SCAN_SECONDS:g}s over the values searched; make it simpler"
            )
        return self.compiled.search(name) is not None


def name_filter(pattern: str | None, what: str = "name") -> NameFilter | None:
    """The name regex of a get_all (None: no filter); a pattern RE2 refuses, or too large, is a 400.
    `what` names the field the pattern came in (`_any_.pattern` ...) in those answers."""
    if not pattern:
        return None
    if len(pattern) > MAX_PATTERN:
        raise errors.validation_error(f"{what} pattern longer than {MAX_PATTERN} characters")
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options=options)
    except re2.error as e:
        reason = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise errors.validation_error(f"{what} is not a valid regular expression ({reason})") from None
    if compiled.programsize > MAX_PROGRAM:
        raise errors.validation_error(
            f"{what} pattern is too complex ({compiled.programsize} RE2 instructions; "
            f"at most {MAX_PROGRAM}): use fewer or smaller repetitions"
        )
    return NameFilter(compiled)


def tags_match(have: Iterable[str], wanted: list[str] | None) -> bool:
    """ClearML's tag filter: any of the listed tags; `-tag` or `__$not tag` excludes; `__$all` needs all."""
    if not wanted:
        return True
    have = set(have)
    include: list[str] = []
    exclude: list[str] = []
    need_all = negate = False
    for tag in wanted:
        if tag == "__$all":
            need_all = True
        elif tag == "__$any":
            need_all = False
        elif tag == "__$not":
            negate = True
        elif tag.startswith("-") or negate:
            exclude.append(tag[1:] if tag.startswith("-") else tag)
            negate = False
        else:
            include.append(tag)
    if have & set(exclude):
        return False
    if not include:
        return True
    return set(include) <= have if need_all else bool(have & set(include))


def order(docs: list[dict[str, Any]], order_by: list[str] | None) -> list[dict[str, Any]]:
    """Sort by each field in turn (`-field` descending); documents lacking a field sort first."""
    for spec in reversed(order_by or []):
        if not isinstance(spec, str) or not spec.strip("-"):
            raise errors.validation_error(f"order_by entries must be field names, got {spec!r}")
        descending = spec.startswith("-")
        path = spec.lstrip("-").split(".")
        docs.sort(key=lambda d, p=path: _sort_key(_get(d, p)), reverse=descending)  # type: ignore[misc]
    return docs


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def page(docs: list[dict[str, Any]], page_no: int | None, page_size: int | None) -> list[dict[str, Any]]:
    if page_size is None or page_size <= 0:
        return docs
    start = max(page_no or 0, 0) * page_size
    return docs[start : start + page_size]


def project(doc: dict[str, Any], only_fields: list[str] | None) -> dict[str, Any]:
    """Keep only the (dotted) fields asked for, nested as in the document (as ClearML does, `id` too
    is left out unless asked for). As MongoDB's projection: a dotted field that is missing under an
    object the document has still gives that object (`runtime.version` of `runtime: {}` is
    `runtime: {}`, which the SDK reads); under a missing or non-object parent, nothing."""
    if not only_fields:
        return doc
    out: dict[str, Any] = {}
    for spec in only_fields:
        if not isinstance(spec, str):
            raise errors.validation_error("only_fields entries must be strings")
        path = spec.split(".")
        source: Any = doc
        target = out
        for depth, key in enumerate(path):
            if not isinstance(source, dict) or key not in source:
                break
            if depth == len(path) - 1:
                target[key] = source[key]
            elif isinstance(source[key], dict):
                target = target.setdefault(key, {})
            else:
                break
            source = source[key]
    return out


def _get(doc: Any, path: list[str]) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


# What `search_text` looks in, per kind: the fields of ClearML's text index on each collection. ClearML's
# MongoDB matches whole (stemmed) words there; here the text is a case-insensitive substring of any of them.
SEARCHED: dict[str, tuple[str, ...]] = {
    "tasks": (
        "id",
        "name",
        "comment",
        "report",
        "models.input.model",
        "models.output.model",
        "script.repository",
        "script.entry_point",
    ),
    "models": ("id", "name", "comment", "parent", "task", "project"),
    "projects": ("id", "name", "description"),
    "queues": ("id", "name", "display_name"),
}
MAX_PATH_DEPTH = 16  # segments of a dotted field path a filter names


def filters(call: Call, kind: str) -> tuple[Callable[[dict[str, Any]], bool] | None, set[str]]:
    """The get_all filters beyond `chosen`'s that the endpoint declares: `search_text` (SEARCHED),
    `_any_` / `_all_` (or `_or_` / `_and_`) ({pattern, fields}: the regex, as `name`'s on RE2 within its
    time budget, found in any / all of the dotted fields; a list field matches when an element does; with
    `datetime` instead, see ranges), `user` (any of the ids), the date and range fields (ranges.tests)
    and, where the endpoint takes them, dotted field paths (`metadata.<key>.value`: equal to the value, or
    to one of a list). The test of a document (None when none is given) and the top-level fields it reads."""
    tests: list[Callable[[dict[str, Any]], bool]] = []
    reads: set[str] = set()
    text = call.text("search_text")
    if text:
        if len(text) > MAX_PATTERN:
            raise errors.validation_error(f"search_text longer than {MAX_PATTERN} characters")
        needle = text.casefold()
        searched = [field.split(".") for field in SEARCHED[kind]]
        tests.append(lambda doc: any(needle in v.casefold() for p in searched for v in strings(doc, p)))
        reads.update(p[0] for p in searched)
    for key in ("_any_", "_all_", "_or_", "_and_"):
        spec = call.mapping(key)
        if not spec:
            continue
        if spec.get("datetime") is not None:
            if spec.get("pattern") is not None:
                raise errors.validation_error(f"{key} takes a pattern or a datetime, not both")
            test, names = ranges.multi_field(key, spec, kind)
            tests.append(test)
            reads.update(names)
            continue
        pattern = name_filter(spec.get("pattern"), f"{key}.pattern")
        paths = [_path(field, f"{key}.fields") for field in spec.get("fields") or []]
        if pattern is None:
            continue
        if not paths:
            raise errors.validation_error(f"{key}.fields must name at least one field")
        test = all if key in ("_all_", "_and_") else any
        tests.append(
            lambda doc, r=pattern, ps=paths, t=test: t(any(r.search(v) for v in strings(doc, p)) for p in ps)  # type: ignore[misc]
        )
        reads.update(p[0] for p in paths)
    users = wanted(call, "user")
    if users is not None:
        tests.append(lambda doc: one_of(doc.get("user"), users))
        reads.add("user")
    conditions, read = ranges.tests(call.data, kind)
    tests += conditions
    reads |= read
    dotted = [(key, value) for key, value in call.data.items() if "." in key and value is not None]
    if len(dotted) > MAX_LISTED:
        raise errors.validation_error(f"at most {MAX_LISTED} dotted field filters")
    if sum(ranges.is_metric_path(key) for key, _ in dotted) > ranges.MAX_METRIC_PATHS:
        raise errors.validation_error(f"at most {ranges.MAX_METRIC_PATHS} {ranges.METRICS} conditions")
    for key, value in dotted:
        path = _path(key, key)
        if ranges.is_metric_path(key):  # a number range, as ClearML's server reads every last_metrics path
            tests.append(ranges.range_test(path, value, key, numbers=True))
            reads.add(path[0])
            continue
        accepted = value if isinstance(value, list) else [value]
        if len(accepted) > MAX_LISTED or not all(isinstance(v, str | int | float | bool) for v in accepted):
            raise errors.validation_error(f"{key} must be a value or a list of at most {MAX_LISTED} values")
        tests.append(lambda doc, p=path, a=accepted: any(v in a for v in leaves(doc, p)))  # type: ignore[misc]
        reads.add(path[0])
    if not tests:
        return None, reads
    return (lambda doc: all(test(doc) for test in tests)), reads


def both(
    first: Callable[[dict[str, Any]], bool] | None, second: Callable[[dict[str, Any]], bool] | None
) -> Callable[[dict[str, Any]], bool] | None:
    """One document test of two (either None: no test)."""
    if first is None or second is None:
        return first or second
    return lambda doc: first(doc) and second(doc)


def _path(field: Any, what: str) -> list[str]:
    if not isinstance(field, str) or not all(field.split(".")) or field.count(".") >= MAX_PATH_DEPTH:
        raise errors.validation_error(f"{what}: {str(field)[:100]!r} is not a field path")
    return field.split(".")


def strings(doc: dict[str, Any], path: list[str]) -> Iterable[str]:
    """The texts at a dotted path (what a pattern or a search is matched against)."""
    return (value for value in leaves(doc, path) if isinstance(value, str))
