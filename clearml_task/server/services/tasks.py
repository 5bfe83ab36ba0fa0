"""tasks.*: the task document, its status state machine, cloning, queueing and hyperparameters."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from clearml_task.server import errors, files, query, queue_entries, ranges, store
from clearml_task.server.endpoints import Call, Handler, endpoint, new_id, now
from clearml_task.server.fields import (
    DATES,
    FLAG,
    GET_ALL,
    ID,
    LISTED,
    MATCHING,
    NAME,
    OBJECT,
    RANGE,
    STATUS_CHANGE,
    TAGS,
    TASKS,
    TEXT,
    Kind,
    Objects,
    check,
)
from clearml_task.server.services import projects, workers
from clearml_task.server.store import Tx
from clearml_task.server.task_status import TRANSITIONS, set_status
from clearml_task.vocabulary import (
    CLOSED,
    COMPLETED,
    CREATED,
    FAILED,
    IN_PROGRESS,
    PUBLISHED,
    QUEUED,
    STOPPED,
    TASK_TYPES,
)

# tasks.edit: these are merged key by key into what the task has; every other field is replaced.
MERGED_ON_EDIT = ("script", "execution", "output", "models")
OBJECT_FIELDS = (
    "script",
    "execution",
    "output",
    "models",
    "hyperparams",
    "configuration",
    "runtime",
    "container",
)
EDITABLE = ("name", "type", "project", "comment", "parent", "tags", "system_tags", *OBJECT_FIELDS)
TASK_FIELDS: dict[str, Kind] = {
    "name": NAME,
    "type": TEXT,
    "project": TEXT,
    "comment": TEXT,
    "parent": TEXT,
    "tags": TAGS,
    "system_tags": TAGS,
    "output_dest": TEXT,
    **dict.fromkeys(OBJECT_FIELDS, OBJECT),
}
CLONE_FIELDS: dict[str, Kind] = {
    "task": ID,
    "new_task_name": NAME,
    "new_task_comment": TEXT,
    "new_task_tags": TAGS,
    "new_task_system_tags": TAGS,
    "new_task_project": TEXT,
    "new_task_parent": TEXT,
    "new_task_hyperparams": OBJECT,
    "new_task_configuration": OBJECT,
    "new_task_container": OBJECT,
    "execution_overrides": OBJECT,
    "new_project_name": NAME,
}


def get(tx: Tx, task_id: str) -> dict[str, Any]:
    return tx.require("tasks", task_id, lambda: errors.invalid_task_id(id=task_id))


def _validated(call: Call, fields: dict[str, Any]) -> dict[str, Any]:
    """Check the shapes of the document fields a client sends; fill hyperparam section/name."""
    name = fields.get("name")
    if name is not None and (not isinstance(name, str) or len(name.strip()) < 3):
        raise errors.validation_error("name must be a string of at least 3 characters")
    task_type = fields.get("type")
    if task_type is not None and task_type not in TASK_TYPES:
        raise errors.validation_error(f"type must be one of {', '.join(TASK_TYPES)}", type=task_type)
    check(fields, TASK_FIELDS)  # clone's fields come from the source task and the new_task_* overrides
    if fields.get("project"):
        projects.get(call.tx, fields["project"])
    if fields.get("parent") and call.tx.get("tasks", fields["parent"]) is None:
        raise errors.invalid_task_id("parent", id=fields["parent"])
    if fields.get("hyperparams") is not None:
        fields["hyperparams"] = _normalised_hyperparams(fields["hyperparams"])
    if fields.get("configuration") is not None:
        fields["configuration"] = _named_objects(fields["configuration"], "configuration")
    return fields


def _named_objects(items: dict[str, Any], path: str, **labels: str) -> dict[str, Any]:
    """Each of `items` (at `path` in the task) must be an object; it is given these labels and its name."""
    out: dict[str, Any] = {}
    for name, item in items.items():
        if not isinstance(item, dict):
            raise errors.validation_error(f"{path}.{name} must be an object")
        out[name] = {**item, **labels, "name": name}
    return out


def _normalised_hyperparams(hyperparams: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, params in hyperparams.items():
        if not isinstance(params, dict):
            raise errors.validation_error(f"hyperparams.{section} must be an object of parameters")
        out[section] = _named_objects(params, f"hyperparams.{section}", section=section)
    return out


def _with_artifacts(execution: dict[str, Any]) -> dict[str, Any]:
    """The execution with its artifacts list, empty when it has none: ClearML's task always has one, and
    the SDK's Task.delete reads `execution["artifacts"]` unguarded ("Task deletion failed: 'artifacts'")."""
    return execution if "artifacts" in execution else {**execution, "artifacts": []}


def _new_task(call: Call, fields: dict[str, Any]) -> dict[str, Any]:
    stamp = now()
    output = dict(fields.get("output") or {})
    if fields.get("output_dest"):
        output["destination"] = fields["output_dest"]
    return {
        "id": new_id(),
        "name": fields["name"].strip(),
        "type": fields["type"],
        "status": CREATED,
        "status_reason": "",
        "status_message": "",
        "status_changed": stamp,
        "project": fields.get("project"),
        "parent": fields.get("parent"),
        "comment": fields.get("comment") or "",
        "user": call.identity.get("user"),
        "company": call.identity.get("company"),
        "created": stamp,
        "last_update": stamp,
        "last_change": stamp,
        "last_iteration": 0,
        "last_metrics": {},
        "tags": list(fields.get("tags") or []),
        "system_tags": list(fields.get("system_tags") or []),
        "output": output,
        "models": fields.get("models") or {"input": [], "output": []},
        "script": fields.get("script") or {},
        "execution": _with_artifacts(fields.get("execution") or {}),
        "hyperparams": fields.get("hyperparams") or {},
        "configuration": fields.get("configuration") or {},
        "container": fields.get("container") or {},
        "runtime": fields.get("runtime") or {},
    }


@endpoint("tasks.create", fields=TASK_FIELDS)
def create(call: Call) -> dict[str, Any]:
    call.required("name")
    call.required("type")
    fields = {k: call.data.get(k) for k in (*EDITABLE, "output_dest")}
    doc = _new_task(call, _validated(call, fields))
    call.tx.put("tasks", doc)
    return {"id": doc["id"]}


@endpoint("tasks.edit", fields={"task": ID, "force": FLAG, **TASK_FIELDS})
def edit(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    if task["status"] != CREATED and not call.flag("force"):
        raise errors.invalid_task_status(
            "only tasks in status created can be edited (pass force to override)",
            current_status=task["status"],
        )
    given = _validated(call, {k: call.data[k] for k in EDITABLE if k in call.data})
    if "output_dest" in call.data:  # as tasks.create: it is output.destination ("" clears it)
        given["output"] = {**(given.get("output") or {}), "destination": call.data["output_dest"] or None}
    fields: dict[str, Any] = {}
    for key, value in given.items():
        if key in MERGED_ON_EDIT and isinstance(value, dict):
            fields[key] = {**(task.get(key) or {}), **value}
        else:
            fields[key] = value
    if fields:
        fields["last_update"] = fields["last_change"] = now()
        task.update(fields)
        call.tx.put("tasks", task)
    return {"updated": 1 if fields else 0, "fields": fields}


@endpoint("tasks.get_by_id", write=False, fields={"task": ID})
def get_by_id(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    task.setdefault("last_metrics", {})  # a task stored before the server kept them: none yet
    return {"task": task}


@endpoint(
    "tasks.get_all",
    write=False,
    fields={
        **GET_ALL,
        "project": MATCHING,
        "status": MATCHING,
        "type": MATCHING,
        "parent": MATCHING,
        "user": MATCHING,
        "include_subprojects": FLAG,
        **{name: DATES for name in ranges.DATE_FIELDS["tasks"]},
        **{name: RANGE for name in ranges.TIME_RANGES["tasks"] + ranges.NUMBER_RANGES["tasks"]},
        # Accepted and ignored, as ClearML's server does: its TriggerScheduler sends it for datasets,
        # which it also selects by their system tag.
        "task_types": LISTED,
    },
    closed=True,
    paths=True,
)
def get_all(call: Call) -> dict[str, Any]:
    where, params = [], []
    for column in ("id", "project", "status"):  # narrowed in SQL; the rest in query.select
        values = call.items(column)
        if column == "project" and values is not None and call.flag("include_subprojects"):
            values = projects.with_subprojects(call.tx, values)
        if values is not None:  # one JSON list, not one variable each: SQLite caps their number
            where.append(f"{column} IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(values))
    types, parents = query.wanted(call, "type"), query.wanted(call, "parent")

    def keep(doc: dict[str, Any]) -> bool:
        return query.one_of(doc.get("type"), types) and query.one_of(doc.get("parent"), parents)

    shared, reads = query.filters(call, "tasks")
    filtered = query.both(keep if types is not None or parents is not None else None, shared)
    return {"tasks": _listed(call, " AND ".join(where), params, filtered, reads)}


def _listed(
    call: Call,
    where_sql: str,
    params: list[Any],
    keep: Callable[[dict[str, Any]], bool] | None,
    reads: set[str],
) -> list[dict[str, Any]]:
    """get_all's answer. With only_fields, SQLite extracts the fields the filters, the order and the answer
    need, so a listing does not parse whole documents (a task's patch can be megabytes); with paging too,
    the filters and the order run first (in SQL when they can, else on a few small fields), and only the
    page's tasks are read."""
    only, order = call.items("only_fields"), call.items("order_by")
    if not only or not store.EXTRACTS_FIELDS:
        return query.select(call, call.tx.find("tasks", where_sql, params), keep)
    filtered = [key for key in _FILTERED_KEYS if call.data.get(key) is not None]
    sorting = ["id", "system_tags", *filtered, *sorted(reads), *_top_keys(order or [])]
    answer = _top_keys(only)
    if not all(store.FIELD_NAME.match(key) for key in [*sorting, *answer]):
        return query.select(call, call.tx.find("tasks", where_sql, params), keep)
    if call.integer("page_size") is None:
        docs = call.tx.find_fields("tasks", dict.fromkeys([*sorting, *answer]), where_sql, params)
        return query.select(call, docs, keep)
    ids = query.page_ids(call, "tasks", where_sql, params) if keep is None else None
    if ids is None:  # what only query.chosen does: on the few small fields it needs
        light = call.tx.find_fields("tasks", dict.fromkeys(sorting), where_sql, params, columns=True)
        ids = [doc["id"] for doc in query.chosen(call, light, keep)]
    found = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for doc in call.tx.find_fields("tasks", dict.fromkeys(["id", *answer]), f"id IN ({marks})", chunk):
            found[doc["id"]] = doc
    return [query.project(found[i], only) for i in ids if i in found]


# What tasks.get_all's filters read (each only when it is given), besides id and system_tags (hidden)
# and what query.filters reads.
_FILTERED_KEYS = ("name", "tags", "type", "parent")


def _top_keys(specs: list[Any]) -> list[str]:
    return [str(spec).lstrip("-").split(".")[0] for spec in specs]


def _is_input(artifact: Any) -> bool:
    """An artifact a task takes in, not one it made (mode output, ClearML's default)."""
    return isinstance(artifact, dict) and (artifact.get("mode") or "output") != "output"


@endpoint("tasks.clone", fields=CLONE_FIELDS)
def clone(call: Call) -> dict[str, Any]:
    source = get(call.tx, call.id("task"))
    data = call.data
    fields = {k: copy.deepcopy(source.get(k)) for k in EDITABLE if k != "runtime"}
    fields["output"] = {"destination": (source.get("output") or {}).get("destination")}
    fields["models"] = {"input": (source.get("models") or {}).get("input", []), "output": []}
    fields["execution"] = {k: v for k, v in (fields.get("execution") or {}).items() if k != "queue"}
    fields["system_tags"] = [
        t for t in source.get("system_tags") or [] if t not in ("development", "archived")
    ]
    fields["parent"] = data.get("new_task_parent") or source.get("parent") or source["id"]
    overrides = {
        "name": "new_task_name",
        "comment": "new_task_comment",
        "tags": "new_task_tags",
        "system_tags": "new_task_system_tags",
        "project": "new_task_project",
        "hyperparams": "new_task_hyperparams",
        "configuration": "new_task_configuration",
        "container": "new_task_container",
    }
    for key, param in overrides.items():
        if data.get(param) is not None:
            fields[key] = data[param]
    execution_overrides = call.mapping("execution_overrides")
    if execution_overrides:
        fields["execution"] = {**(fields["execution"] or {}), **execution_overrides}
    execution = fields["execution"] or {}
    if isinstance(execution.get("artifacts"), list):  # as ClearML: what the source takes in, not what it made
        fields["execution"] = {**execution, "artifacts": [a for a in execution["artifacts"] if _is_input(a)]}
    result: dict[str, Any] = {}
    project_name = call.text("new_project_name")
    if project_name and not data.get("new_task_project"):
        found = call.tx.find("projects", "name = ?", (project_name,))
        fields["project"] = found[0]["id"] if found else projects.create(call.tx, call, project_name)
        result["new_project"] = {"id": fields["project"], "name": project_name}
    doc = _new_task(call, _validated(call, fields))
    call.tx.put("tasks", doc)
    return {"id": doc["id"], **result}


def _status_call(call: Call, new: str, *, extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict]:
    task = get(call.tx, call.id("task"))
    return task, _set_status(call, task, new, extra=extra)


def _set_status(
    call: Call,
    task: dict[str, Any],
    new: str,
    *,
    force: bool | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """set_status as the call asks: its force flag (unless `force` is given), status_reason and message."""
    return set_status(
        call.tx,
        task,
        new,
        force=call.flag("force") if force is None else force,
        reason=call.text("status_reason"),
        message=call.text("status_message"),
        extra=extra,
    )


@endpoint("tasks.started", fields=STATUS_CHANGE)
def started(call: Call) -> dict[str, Any]:
    _, fields = _status_call(call, IN_PROGRESS)
    return {"updated": 1, "fields": fields, "started": 1}


@endpoint("tasks.completed", fields={**STATUS_CHANGE, "publish": FLAG})
def completed(call: Call) -> dict[str, Any]:
    task, fields = _status_call(call, COMPLETED)
    published = 0
    if call.flag("publish"):
        fields.update(set_status(call.tx, task, PUBLISHED, force=call.flag("force")))
        published = 1
    return {"updated": 1, "fields": fields, "published": published}


# Endpoints that only move a task to one status (request: task, force, status_reason, status_message).
SIMPLE_STATUS_ENDPOINTS = {
    "tasks.stopped": STOPPED,
    "tasks.failed": FAILED,
    "tasks.publish": PUBLISHED,
    "tasks.close": CLOSED,
}


def _simple_status_endpoint(status: str) -> Handler:
    def handler(call: Call) -> dict[str, Any]:
        _, fields = _status_call(call, status)
        return {"updated": 1, "fields": fields}

    return handler


for _name, _status in SIMPLE_STATUS_ENDPOINTS.items():
    endpoint(_name, fields=STATUS_CHANGE)(_simple_status_endpoint(_status))


TASK_UPDATE_TIMEOUT = 600  # seconds: a task a worker reported on within this is "held" by it


def _held_by_worker(task: dict[str, Any]) -> bool:
    if not task.get("last_worker") or not task.get("last_update"):
        return False
    age = datetime.now(timezone.utc) - datetime.fromisoformat(task["last_update"])
    return age.total_seconds() < TASK_UPDATE_TIMEOUT


@endpoint("tasks.stop", fields=STATUS_CHANGE)
def stop(call: Call) -> dict[str, Any]:
    """A task held by a live worker is asked to stop (status_message "stopping": the worker kills it and
    reports tasks.stopped); a queued or unattended task is stopped at once."""
    task = get(call.tx, call.id("task"))
    reason = call.text("status_reason") or ""
    if (
        task["status"] != QUEUED
        and "development" not in task.get("system_tags", [])
        and _held_by_worker(task)
    ):
        fields = {"status_reason": reason, "status_message": "stopping", "last_update": now()}
        task.update(fields)
        call.tx.put("tasks", task)
        return {"updated": 1, "fields": fields}
    user = call.identity.get("user_name") or "user"
    fields = set_status(
        call.tx, task, STOPPED, force=call.flag("force"), reason=reason, message=f"Stopped by {user}"
    )
    return {"updated": 1, "fields": fields}


@endpoint(
    "tasks.enqueue",
    fields={**STATUS_CHANGE, "queue": TEXT, "queue_name": TEXT, "verify_watched_queue": FLAG},
)
def enqueue(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    queue_id, queue_name = call.text("queue"), call.text("queue_name")
    if queue_id and queue_name:
        raise errors.validation_error("pass either queue or queue_name, not both")
    if queue_id:
        queue = queue_entries.get(call.tx, queue_id)
    elif queue_name:
        queue = queue_entries.by_name(call.tx, queue_name) or queue_entries.get(
            call.tx, queue_entries.create(call.tx, queue_name, user=call.identity.get("user"))
        )
    else:
        queue = queue_entries.default(call.tx)
    previous = task["status"]
    queue_entries.remove_from_all(call.tx, task["id"])
    execution = {**(task.get("execution") or {}), "queue": queue["id"]}
    system_tags = [t for t in task.get("system_tags", []) if t != "development"]
    extra = {"execution": execution, "enqueue_status": previous, "system_tags": system_tags}
    fields = _set_status(call, task, QUEUED, extra=extra)
    queue_entries.add_entry(call.tx, queue_entries.get(call.tx, queue["id"]), task["id"])
    result: dict[str, Any] = {"updated": 1, "fields": fields, "queued": 1}
    if call.flag("verify_watched_queue"):
        result["queue_watched"] = any(
            q["id"] == queue["id"] for w in workers.live(call.tx) for q in w.get("queues", [])
        )
    return result


@endpoint("tasks.dequeue", fields={**STATUS_CHANGE, "remove_from_all_queues": FLAG, "new_status": TEXT})
def dequeue(call: Call) -> dict[str, Any]:
    task_id = call.id("task")
    task = call.tx.get("tasks", task_id)
    if task is None:
        queue_entries.remove_from_all(call.tx, task_id)
        return {"dequeued": 1, "updated": 0}
    queue_id = (task.get("execution") or {}).get("queue")
    if call.flag("remove_from_all_queues") or not queue_id:
        queue_entries.remove_from_all(call.tx, task_id)
    elif call.tx.get("queues", queue_id):
        queue_entries.remove_entry(call.tx, queue_entries.get(call.tx, queue_id), task_id)
    if task["status"] not in (QUEUED, IN_PROGRESS):
        return {"dequeued": 1, "updated": 0}
    new_status = call.text("new_status") or task.get("enqueue_status") or CREATED
    if new_status not in TRANSITIONS:
        raise errors.validation_error("new_status is not a task status", new_status=new_status)
    fields = _set_status(call, task, new_status, force=True, extra={"enqueue_status": None})
    return {"dequeued": 1, "updated": 1, "fields": fields}


@endpoint(
    "tasks.reset", fields={"task": ID, "force": FLAG, "clear_all": FLAG, "delete_external_artifacts": FLAG}
)
def reset(call: Call) -> dict[str, Any]:
    """Back to created, as ClearML's server does it: out of its queues, its run's figures, output models,
    events and output artifacts gone (their files too, unless `delete_external_artifacts` is false: only
    those in the task's own folder, never a file a model names); its input artifacts, input models and
    code kept (not with `clear_all`)."""
    task = get(call.tx, call.id("task"))
    was_queued = task["status"] == QUEUED
    dequeued = queue_entries.remove_from_all(call.tx, task["id"])
    execution = {k: v for k, v in (task.get("execution") or {}).items() if k != "queue"}
    artifacts = execution.get("artifacts")
    if isinstance(artifacts, list):
        inputs = [a for a in artifacts if _is_input(a)]
        execution["artifacts"] = inputs
        if call.flag("delete_external_artifacts", True):
            outputs = [a.get("uri") for a in artifacts if isinstance(a, dict) and a not in inputs]
            stale = files.unnamed_files(call.tx, outputs)
            call.stale.files += [path for path in stale if files.in_task_folder(path, task["id"])]
    cleared: dict[str, Any] = {
        "started": None,
        "completed": None,
        "last_iteration": 0,
        "last_metrics": {},
        "last_worker": None,
        "last_worker_report": None,
        "enqueue_status": None,
        "runtime": {},
        "output": {"destination": (task.get("output") or {}).get("destination")},
        "execution": _with_artifacts(execution),
    }
    cleared["models"] = {"input": (task.get("models") or {}).get("input", []), "output": []}
    if call.flag("clear_all"):
        cleared["execution"] = {"artifacts": []}
        cleared["script"] = {}
    fields = set_status(
        call.tx, task, CREATED, force=call.flag("force"), reason="reset", message="reset", extra=cleared
    )
    call.tx.delete_events(task["id"])
    result: dict[str, Any] = {"updated": 1, "fields": fields, "deleted_models": 0}
    if was_queued:
        result["dequeued"] = {"removed": dequeued}
    return result


@endpoint("tasks.delete", fields={"task": ID, "force": FLAG, "delete_external_artifacts": FLAG})
def delete(call: Call) -> dict[str, Any]:
    """The task, its queue entries and events, and its folder in the file store (its artifacts and debug
    images) but for the weights of models that still exist (unless `delete_external_artifacts` is false)."""
    task = get(call.tx, call.id("task"))
    if task["status"] == IN_PROGRESS and not call.flag("force"):
        raise errors.invalid_task_status("task is running; pass force to delete it", task=task["id"])
    queue_entries.remove_from_all(call.tx, task["id"])
    call.tx.delete_events(task["id"])
    if call.flag("delete_external_artifacts", True):
        call.stale.folders.append(files.task_folder(task["id"]))
        call.stale.kept |= files.model_files(call.tx)
    return {"deleted": call.tx.delete("tasks", task["id"]) > 0}  # a boolean, as ClearML's schema has it


@endpoint("tasks.ping", fields={"task": ID})
def ping(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    task["last_update"] = now()
    call.tx.put("tasks", task)
    return {}


@endpoint("tasks.set_requirements", fields={"task": ID, "requirements": OBJECT})
def set_requirements(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    requirements = call.mapping("requirements")
    if requirements is None:
        raise errors.missing_field(field="requirements")
    script = {**(task.get("script") or {}), "requirements": requirements}
    fields = {"script": script, "last_update": now()}
    task.update(fields)
    call.tx.put("tasks", task)
    return {"updated": 1, "fields": fields}


@endpoint("tasks.get_hyper_params", write=False, fields={"tasks": TASKS})
def get_hyper_params(call: Call) -> dict[str, Any]:
    ids = call.task_list()
    if not ids:
        raise errors.missing_field(field="tasks")
    params = []
    for task_id in ids:
        task = get(call.tx, task_id)
        flat = [p for section in (task.get("hyperparams") or {}).values() for p in section.values()]
        params.append({"task": task_id, "hyperparams": flat})
    return {"params": params}


@endpoint(
    "tasks.edit_hyper_params",
    fields={
        "task": ID,
        "force": FLAG,
        "replace_hyperparams": TEXT,
        "hyperparams": Objects({"section": TEXT, "name": TEXT}, required=("section", "name")),
    },
)
def edit_hyper_params(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    given = call.items("hyperparams")
    if not given:
        raise errors.missing_field(field="hyperparams")
    only_properties = all(
        isinstance(p, dict) and str(p.get("section", "")).lower() == "properties" for p in given
    )
    if task["status"] != CREATED and not call.flag("force") and not only_properties:
        raise errors.invalid_task_status(
            "only tasks in status created can be edited", current_status=task["status"]
        )
    replace = call.text("replace_hyperparams") or "none"
    if replace not in ("none", "section", "all"):
        raise errors.validation_error("replace_hyperparams must be none, section or all")
    current: dict[str, dict[str, Any]] = (
        {} if replace == "all" else copy.deepcopy(task.get("hyperparams") or {})
    )
    if replace == "section":
        for param in given:
            current.pop(str(param.get("section", "")), None)
    for param in given:  # each an object with a section and a name (its declared kind)
        value = param.get("value")
        entry = {**param, "value": "" if value is None else str(value)}
        current.setdefault(param["section"], {})[param["name"]] = entry
    task["hyperparams"] = current
    task["last_update"] = task["last_change"] = now()
    call.tx.put("tasks", task)
    return {"updated": 1}


@endpoint(
    "tasks.delete_hyper_params",
    fields={
        "task": ID,
        "force": FLAG,
        "hyperparams": Objects({"section": TEXT, "name": TEXT}, required=("section",)),
    },
)
def delete_hyper_params(call: Call) -> dict[str, Any]:
    """As ClearML: each {section, name} parameter goes; a {section} without a name takes the whole section
    (then a parameter of that section is refused). Only a created task's, unless force, but for the
    `properties` section (user properties), which any task's are (Task.delete_user_properties)."""
    task = get(call.tx, call.id("task"))
    given = call.items("hyperparams")
    if not given:
        raise errors.missing_field(field="hyperparams")
    only_properties = all(str(p["section"]).lower() == "properties" for p in given)
    if task["status"] != CREATED and not call.flag("force") and not only_properties:
        raise errors.invalid_task_status(
            "only tasks in status created can be edited (pass force to override)",
            current_status=task["status"],
        )
    whole = {p["section"] for p in given if not p.get("name")}
    if any(p.get("name") and p["section"] in whole for p in given):
        raise errors.bad_request("cannot delete a parameter of a section deleted whole")
    current = copy.deepcopy(task.get("hyperparams") or {})
    deleted = 0
    for param in given:
        section = current.get(param["section"])
        if not isinstance(section, dict):
            continue
        if not param.get("name"):
            current.pop(param["section"])
            deleted = 1
        elif section.pop(param["name"], None) is not None:
            deleted = 1
    if deleted:
        task["hyperparams"] = current
        task["last_update"] = now()
        if not only_properties:
            task["last_change"] = task["last_update"]
        call.tx.put("tasks", task)
    return {"deleted": deleted}
