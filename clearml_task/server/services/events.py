"""events.*: a task's console log and metrics; events.add_batch takes json-lines."""

from __future__ import annotations

import hashlib
import math
import re
import time
from typing import Any

from clearml_task.server import errors
from clearml_task.server.endpoints import Call, endpoint, now
from clearml_task.server.fields import (
    COUNT,
    FLAG,
    ID,
    MAX_TASKS,
    TASKS,
    TEXT,
    TIMESTAMP,
    Anything,
    Int,
    Number,
    Objects,
    Texts,
    problem,
)
from clearml_task.server.store import Tx

MAX_LOG_MSG = 64 * 1024
DEFAULT_LOG_BATCH = 5000
STORED = Int(0, 2**62)  # a position in the order events were stored (get_task_log's stored_after)
TYPES = ("log", "training_stats_scalar", "training_stats_vector", "training_debug_image", "plot")
# What the server reads of an event (other fields are stored as sent).
EVENT_FIELDS = {
    "task": TEXT,
    "type": TEXT,
    "timestamp": TIMESTAMP,
    "ts": TIMESTAMP,
    "iter": Int(),
    "value": Number(),
    "metric": TEXT,
    "variant": TEXT,
    "worker": TEXT,
    "level": TEXT,
}


class _Rejected(Exception):
    pass


def _iteration(value: Any) -> int:
    """An event's iteration as a whole number: stored as one, or as its decimal text (`"5"`, `"5.0"`) by a
    server that kept the text as given."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        pass
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def _checked(
    event: Any, tasks: dict[str, dict[str, Any] | None], models: dict[str, bool], tx: Tx
) -> dict[str, Any]:
    """The event as stored; `tasks` and `models`: the owners looked up so far (a model's events, sent with
    `model_event`, are stored under the model's id, which no task shares)."""
    if not isinstance(event, dict):
        raise _Rejected("Event must be a JSON object")
    task_id, kind = event.get("task"), event.get("type")
    if not kind:
        raise _Rejected("Event must have a 'type' field")
    if kind not in TYPES:
        raise _Rejected(f"Invalid event type {kind}")
    if not isinstance(task_id, str) or not task_id:
        raise _Rejected("Event must have a 'task' field")
    wrong = problem(event, EVENT_FIELDS)
    if wrong is not None:
        raise _Rejected(f"Invalid event: {wrong}")
    model_event = event.get("model_event")
    if model_event not in (None, True, False):
        raise _Rejected("Invalid event: model_event must be a boolean")
    if model_event:  # an OutputModel's report_scalar: the event's `task` is a model's id
        if task_id not in models:
            models[task_id] = tx.get("models", task_id) is not None
        if not models[task_id]:
            raise _Rejected(f"Invalid model id {task_id}")
    else:
        if task_id not in tasks:
            tasks[task_id] = tx.get("tasks", task_id)
        if tasks[task_id] is None:
            raise _Rejected(f"Invalid task id {task_id}")
    out = dict(event)
    out.pop("model_event", None)
    # Numbers may come as their decimal text (their kinds take it, as query strings carry it): stored as
    # numbers, so that reads sort and compare them with the others.
    if isinstance(out.get("iter"), str):
        out["iter"] = _iteration(out["iter"])
    if isinstance(out.get("value"), str):
        out["value"] = float(out["value"])
    timestamp = out.pop("ts", None) if "timestamp" not in out else out["timestamp"]
    out["timestamp"] = int(timestamp) if isinstance(timestamp, int | float) else int(time.time() * 1000)
    out.setdefault("worker", "<unknown>")
    out.setdefault("metric", "")
    out.setdefault("variant", "")
    if kind == "log":
        out["msg"] = str(out.get("msg", ""))[:MAX_LOG_MSG]
        out.setdefault("level", "info")
    return out


@endpoint("events.add_batch", batch=True, fields={"requests": Anything()})
def add_batch(call: Call) -> dict[str, Any]:
    given = call.data.get("requests")
    if given is None:  # one event posted as a JSON object
        given = [call.data] if call.data else []
    if not isinstance(given, list):
        raise errors.validation_error("requests must be a list of events")
    if not given:
        raise errors.empty_batch()
    accepted: list[dict[str, Any]] = []
    problems: dict[str, int] = {}
    tasks: dict[str, dict[str, Any] | None] = {}
    models: dict[str, bool] = {}
    for event in given:
        try:
            accepted.append(_checked(event, tasks, models, call.tx))
        except _Rejected as e:
            problems[str(e)] = problems.get(str(e), 0) + 1
    if not accepted:
        raise errors.events_not_added(", ".join(problems))
    call.tx.add_events(accepted)  # a retried batch's events (same task and seq) are stored once
    _touch_tasks(call.tx, accepted, tasks)
    return {"added": len(accepted), "errors": sum(problems.values()), "errors_info": problems}


def _touch_tasks(tx: Tx, events: list[dict[str, Any]], tasks: dict[str, dict[str, Any] | None]) -> None:
    """Every event moves its task's last_update forward (the non-responsive watchdog reads it); metric
    events move last_iteration too, and scalar events the task's last_metrics (a log batch costs no more
    than that)."""
    iterations: dict[str, int] = {}
    scalars: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["task"] not in tasks:  # a model's event: no task to touch
            continue
        iterations.setdefault(event["task"], 0)
        if event["type"] != "log" and isinstance(event.get("iter"), int):
            iterations[event["task"]] = max(iterations[event["task"]], event["iter"])
        if event["type"] == "training_stats_scalar":
            scalars.setdefault(event["task"], []).append(event)
    for task_id, iteration in iterations.items():
        task = tasks[task_id]
        if task is not None:
            task["last_iteration"] = max(int(task.get("last_iteration") or 0), iteration)
            task["last_update"] = now()
            if task_id in scalars:
                _update_last_metrics(task, scalars[task_id])
            tx.put("tasks", task)


# How many metric/variant pairs a task's last_metrics holds at most (ClearML's max_last_metrics default).
MAX_LAST_METRICS = 2000


def hashed_name(name: str) -> str:
    """A metric's or variant's key in last_metrics, as ClearML's server makes it (md5 hex of the name)."""
    return hashlib.md5(name.encode("utf-8"), usedforsecurity=False).hexdigest()


def _update_last_metrics(task: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """ClearML's last_metrics: {md5(metric): {md5(variant): {metric, variant, value, min_value,
    min_value_iteration, max_value, max_value_iteration, first_value, first_value_iteration, count,
    mean_value}}}. `value` is the batch's latest report (by iteration, then time); min, max, first, count and
    mean run over every report. Values that are not finite numbers are left out."""
    metrics = task.get("last_metrics")
    if not isinstance(metrics, dict):
        metrics = task["last_metrics"] = {}
    size = sum(len(v) for v in metrics.values() if isinstance(v, dict))
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    firsts: set[tuple[str, str]] = set()  # first values set by this batch (its earliest iteration wins)
    for event in events:
        value = event.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        metric, variant = str(event.get("metric") or ""), str(event.get("variant") or "")
        key = (hashed_name(metric), hashed_name(variant))
        variants = metrics.get(key[0])
        if not isinstance(variants, dict):
            variants = None
        entry = variants.get(key[1]) if variants is not None else None
        if not isinstance(entry, dict):
            if size >= MAX_LAST_METRICS:
                continue
            size += 1
            if variants is None:
                variants = metrics[key[0]] = {}
            entry = variants[key[1]] = {"metric": metric, "variant": variant}
        iteration, stamp = _iteration(event.get("iter")), int(event.get("timestamp") or 0)
        if key not in latest or (iteration, stamp) >= latest[key]:
            latest[key] = (iteration, stamp)
            entry["value"] = value
        if "first_value" not in entry or (key in firsts and iteration < entry["first_value_iteration"]):
            firsts.add(key)
            entry["first_value"], entry["first_value_iteration"] = value, iteration
        if not isinstance(entry.get("min_value"), int | float) or value < entry["min_value"]:
            entry["min_value"], entry["min_value_iteration"] = value, iteration
        if not isinstance(entry.get("max_value"), int | float) or value > entry["max_value"]:
            entry["max_value"], entry["max_value_iteration"] = value, iteration
        count = entry["count"] if isinstance(entry.get("count"), int) else 0
        mean = entry["mean_value"] if isinstance(entry.get("mean_value"), int | float) else 0.0
        entry["count"] = count + 1
        entry["mean_value"] = (mean * count + value) / (count + 1)


@endpoint(
    "events.get_task_log",
    write=False,
    fields={
        "task": ID,
        "batch_size": COUNT,
        "navigate_earlier": FLAG,
        "from_timestamp": TIMESTAMP,
        "order": TEXT,
        "stored_after": STORED,
    },
)
def get_task_log(call: Call) -> dict[str, Any]:
    """A batch of log events: with navigate_earlier (the default) newest first, going back from the end
    or from from_timestamp; otherwise oldest first, going forward. Events sharing the last returned
    timestamp are all included, so paging by from_timestamp never skips a line.

    Ours (ClearML's server has neither): every answer's `stored_last` is the position of the task's log
    line stored last, and `stored_after` (such a position) reads the lines stored after it, in the order
    they were stored, whatever their timestamps: what a live console polls with (by timestamp, a line
    stamped earlier than the newest shown would never be asked for)."""
    task_id = call.id("task")
    _check_owner(call, task_id)
    batch = call.integer("batch_size", DEFAULT_LOG_BATCH) or DEFAULT_LOG_BATCH
    total, last = call.tx.count_and_last(task_id, "log")
    after = call.integer("stored_after")
    if after is not None:
        stored = call.tx.events_stored_after(task_id, "log", after=after, limit=batch)
        reached = stored[-1][0] if stored else max(after, 0)  # where the next poll goes on from
        events = [event for _, event in stored]
        return {"events": events, "returned": len(events), "total": total, "stored_last": reached}
    earlier = call.flag("navigate_earlier", True)
    start = call.integer("from_timestamp")
    events = call.tx.events(task_id, "log", from_timestamp=start, limit=batch, newest_first=earlier)
    order = call.text("order")
    if (order == "asc" and earlier) or (order == "desc" and not earlier):
        events.reverse()
    return {"events": events, "returned": len(events), "total": total, "stored_last": last}


def _scalars(call: Call) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The task's scalar events as {metric: {variant: [events by iteration]}} (the last report of an
    iteration wins, as ClearML keeps one value per metric, variant and iteration)."""
    task_id = call.id("task")
    _check_owner(call, task_id)
    series: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for event in call.tx.all_events(task_id, "training_stats_scalar"):
        by_iter = series.setdefault(str(event.get("metric", "")), {}).setdefault(
            str(event.get("variant", "")), {}
        )
        by_iter[_iteration(event.get("iter"))] = event
    return {
        metric: {variant: [points[i] for i in sorted(points)] for variant, points in variants.items()}
        for metric, variants in series.items()
    }


@endpoint("events.get_scalar_metrics_and_variants", write=False, fields={"task": ID})
def get_scalar_metrics_and_variants(call: Call) -> dict[str, Any]:
    found = _scalars(call)
    return {"metrics": {m: {v: {"name": v} for v in variants} for m, variants in found.items()}}


@endpoint("events.scalar_metrics_iter_histogram", write=False, fields={"task": ID})
def scalar_metrics_iter_histogram(call: Call) -> dict[str, Any]:
    """Each metric's variants as x and y (values) series, what ClearML's SDK (Task.get_reported_scalars)
    and UI plot; x is the iteration, or with `key` timestamp / iso_time the report's time in ms."""
    key = call.text("key") or "iter"
    if key not in ("iter", "timestamp", "iso_time"):
        raise errors.validation_error("key must be iter, timestamp or iso_time", key=key)
    field = "iter" if key == "iter" else "timestamp"
    return {
        metric: {
            variant: {
                "name": variant,
                "x": [e.get(field, 0) for e in points],
                "y": [e.get("value") for e in points],
            }
            for variant, points in variants.items()
        }
        for metric, variants in _scalars(call).items()
    }


# ClearML answers at most this many events a call, whatever the batch_size.
MAX_EVENTS_BATCH = 10_000
# get_task_events' scroll_id: the query (event type, order) and the position of the last event returned.
SCROLL = re.compile(r"^(all|[a-z_]{1,32})~(asc|desc)~(-?[0-9]{1,16})~([0-9]{1,18})$")


def _scroll(given: str, task_id: str) -> tuple[str | None, bool, tuple[int, int]]:
    """A scroll_id's event type (None: all but the log), newest_first and position; a 400 when it is not
    one this server gave."""
    found = SCROLL.match(given)
    if found is None or (found[1] != "all" and found[1] not in TYPES):
        raise errors.validation_error("Invalid scroll_id", scroll_id=given[:100], task=task_id)
    return (None if found[1] == "all" else found[1]), found[2] == "desc", (int(found[3]), int(found[4]))


@endpoint("events.get_task_events", write=False, fields={"batch_size": COUNT, "scroll_id": TEXT})
def get_task_events(call: Call) -> dict[str, Any]:
    """A task's events of one `event_type` (plots, debug images, ...; all but the log when not given),
    oldest first (`order` desc: newest first), at most `batch_size` (10,000). The answer's scroll_id,
    given back, reads the next batch of the same query (its type and order); a batch with fewer events
    than asked for is the last one."""
    task_id = call.id("task")
    _check_owner(call, task_id)
    scroll = call.text("scroll_id")
    after: tuple[int, int] | None = None
    if scroll:
        kind, newest_first, after = _scroll(scroll, task_id)
    else:
        kind, newest_first = call.text("event_type"), call.text("order") == "desc"
        if kind is not None and kind not in TYPES:
            raise errors.validation_error(f"event_type must be one of {', '.join(TYPES)}", event_type=kind)
    types = [kind] if kind else list(TYPES[1:])
    batch = min(call.integer("batch_size", DEFAULT_LOG_BATCH) or DEFAULT_LOG_BATCH, MAX_EVENTS_BATCH)
    found = call.tx.events_after(task_id, types, after=after, limit=batch, newest_first=newest_first)
    if found:
        after = (found[-1][0], found[-1][1])
    position = after if after is not None else ((2**53, 10**18 - 1) if newest_first else (-1, 0))
    scroll_id = f"{kind or 'all'}~{'desc' if newest_first else 'asc'}~{position[0]}~{position[1]}"
    return {
        "events": [event for _, _, event in found],
        "returned": len(found),
        "total": sum(call.tx.count_events(task_id, t) for t in types),
        "scroll_id": scroll_id,
    }


DEBUG_IMAGES = "training_debug_image"
METRIC_REQUEST = Objects(
    {"task": TEXT, "metric": TEXT, "variants": Texts(single=True)},
    required=("task",),
    what=f"a list of at most {MAX_TASKS} objects",
    most=MAX_TASKS,
)


def _task_events(call: Call, task_id: str, kind: str) -> list[dict[str, Any]]:
    _check_owner(call, task_id)
    return call.tx.all_events(task_id, kind)


def _check_owner(call: Call, task_id: str) -> None:
    """The task whose events are read exists; with `model_events`, the model."""
    if call.flag("model_events", False):
        if call.tx.get("models", task_id) is None:
            raise errors.invalid_model_id(id=task_id)
    elif call.tx.get("tasks", task_id) is None:
        raise errors.invalid_task_id(id=task_id)


@endpoint(
    "events.debug_images",
    write=False,
    fields={"metrics": METRIC_REQUEST, "iters": Int(1, 10_000), "scroll_id": TEXT, "navigate_earlier": FLAG},
)
def debug_images(call: Call) -> dict[str, Any]:
    """Each requested task's (and metric's) debug images by iteration, newest first, `iters` iterations a
    call; scroll_id (the number of iterations already returned) pages on, and a page past the last one has
    no iterations (which is how the SDK knows it is done)."""
    requests = call.items("metrics")
    if not requests:
        raise errors.missing_field(field="metrics")
    iters = call.integer("iters") or 1
    scroll = call.text("scroll_id") or "0"
    done = int(scroll) if scroll.isascii() and scroll.isdigit() and len(scroll) <= 18 else 0
    answer = []
    read: dict[str, list[dict[str, Any]]] = {}  # each task's events read once, however often it is asked
    for request in requests:
        variants = request.get("variants")
        variants = [variants] if isinstance(variants, str) else variants
        by_iter: dict[int, list[dict[str, Any]]] = {}
        task_id = request["task"]
        if task_id not in read:
            read[task_id] = _task_events(call, task_id, DEBUG_IMAGES)
        for event in read[task_id]:
            if request.get("metric") not in (None, event.get("metric")):
                continue
            if variants and event.get("variant") not in variants:
                continue
            by_iter.setdefault(_iteration(event.get("iter")), []).append(event)
        chosen = sorted(by_iter, reverse=True)[done : done + iters]
        answer.append(
            {
                "task": request["task"],
                "metric": request.get("metric"),
                "iterations": [{"iter": i, "events": by_iter[i]} for i in chosen],
            }
        )
    return {"metrics": answer, "scroll_id": str(done + iters)}


@endpoint(
    "events.get_task_plots",
    write=False,
    fields={"task": ID, "iters": Int(1, 10_000), "scroll_id": TEXT, "metrics": Anything(), "no_scroll": FLAG},
)
def get_task_plots(call: Call) -> dict[str, Any]:
    """A task's plot events, oldest first: with `iters`, each plot's (metric and variant's) last `iters`
    iterations (the last report of an iteration, as ClearML keeps one). One page holds them all, so a
    scroll_id reads past the end."""
    task_id = call.id("task")
    plots = _task_events(call, task_id, "plot")
    iters = call.integer("iters")
    if iters:
        series: dict[tuple[str, str], dict[int, int]] = {}  # (metric, variant): {iteration: index in plots}
        for index, event in enumerate(plots):
            key = (str(event.get("metric", "")), str(event.get("variant", "")))
            series.setdefault(key, {})[_iteration(event.get("iter"))] = index
        kept = {by_iter[i] for by_iter in series.values() for i in sorted(by_iter, reverse=True)[:iters]}
        plots = [e for index, e in enumerate(plots) if index in kept]
    if call.text("scroll_id"):
        plots = []
    return {"plots": plots, "returned": len(plots), "total": len(plots), "scroll_id": "end"}


SINGLE_VALUE_ITERATION = -(2**31)


@endpoint("events.get_task_single_value_metrics", write=False, fields={"tasks": TASKS})
def get_task_single_value_metrics(call: Call) -> dict[str, Any]:
    """The single values a task reported (scalars at ClearML's single-value iteration), the last of each."""
    answer = []
    for task_id in call.task_list():
        values: dict[tuple[str, str], dict[str, Any]] = {}
        for event in _task_events(call, task_id, "training_stats_scalar"):
            if event.get("iter") == SINGLE_VALUE_ITERATION:
                values[(event.get("metric", ""), event.get("variant", ""))] = {
                    "metric": event.get("metric", ""),
                    "variant": event.get("variant", ""),
                    "value": event.get("value"),
                    "timestamp": event.get("timestamp"),
                }
        answer.append({"task": task_id, "values": list(values.values())})
    return {"tasks": answer}


@endpoint("events.get_task_metrics", write=False, fields={"tasks": TASKS, "event_type": TEXT})
def get_task_metrics(call: Call) -> dict[str, Any]:
    """The metric names each task reported events of (of `event_type`, every metric type when not given)."""
    kind = call.text("event_type")
    if kind is not None and kind not in TYPES[1:]:
        raise errors.validation_error(f"event_type must be one of {', '.join(TYPES[1:])}", event_type=kind)
    answer = []
    for task_id in call.task_list():
        names = {
            str(e.get("metric", ""))
            for t in ([kind] if kind else TYPES[1:])
            for e in _task_events(call, task_id, t)
        }
        answer.append({"task": task_id, "metrics": sorted(names)})
    return {"metrics": answer}
