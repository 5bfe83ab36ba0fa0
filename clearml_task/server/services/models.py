"""models.*: model documents (a name, a weights URI, the task that made it, metadata); a task's links to
them are in task_objects.py."""

from __future__ import annotations

from typing import Any

from clearml_task.server import errors, files, query, ranges
from clearml_task.server.endpoints import Call, endpoint, new_id, now
from clearml_task.server.fields import (
    DATES,
    FLAG,
    GET_ALL,
    ID,
    MATCHING,
    NAME,
    OBJECT,
    RANGE,
    TAGS,
    TEXT,
    Int,
    Kind,
    Objects,
)
from clearml_task.server.services import projects, task_objects, tasks
from clearml_task.server.store import Tx

MODEL_FIELDS: dict[str, Kind] = {
    "uri": TEXT,
    "name": NAME,
    "comment": TEXT,
    "tags": TAGS,
    "system_tags": TAGS,
    "framework": TEXT,
    "design": OBJECT,
    "labels": OBJECT,
    "ready": FLAG,
    "project": TEXT,
    "parent": TEXT,
    "task": TEXT,
    "iteration": Int(),
    "ui_cache": OBJECT,
}
METADATA = Objects({"key": TEXT, "type": TEXT, "value": TEXT}, required=("key",))
# The fields models.edit/update copy as given; `ready` and `iteration` are handled on their own.
_COPIED = (
    "uri",
    "name",
    "comment",
    "tags",
    "system_tags",
    "framework",
    "design",
    "labels",
    "parent",
    "ui_cache",
)


def get(tx: Tx, model_id: str) -> dict[str, Any]:
    doc = tx.get("models", model_id)
    if doc is None:
        raise errors.invalid_model_id(id=model_id)
    return doc


def _links(call: Call, given: dict[str, Any]) -> dict[str, Any]:
    """The project and task a model names, checked to exist."""
    if given.get("project"):
        projects.get(call.tx, given["project"])
    if given.get("task") and call.tx.get("tasks", given["task"]) is None:
        raise errors.invalid_task_id("task", id=given["task"])
    return given


def _new(call: Call, given: dict[str, Any]) -> dict[str, Any]:
    stamp = now()
    return {
        "id": new_id(),
        "name": given.get("name") or "",
        "uri": given.get("uri"),
        "comment": given.get("comment") or "",
        "tags": given.get("tags") or [],
        "system_tags": given.get("system_tags") or [],
        "framework": given.get("framework"),
        "design": given.get("design") or {},
        "labels": given.get("labels") or {},
        "ready": bool(given.get("ready", False)),
        "project": given.get("project"),
        "parent": given.get("parent"),
        "task": given.get("task"),
        "user": call.identity.get("user", ""),
        "company": call.identity.get("company", ""),
        "created": stamp,
        "last_update": stamp,
        "last_change": stamp,
        "metadata": {},
        **({"last_iteration": given["iteration"]} if given.get("iteration") is not None else {}),
    }


def _changed(call: Call, model: dict[str, Any]) -> dict[str, Any]:
    """Apply the request's model fields to `model` and store it; the fields that were set."""
    fields = {key: call.data[key] for key in _COPIED if key in call.data}
    _links(call, {k: call.data.get(k) for k in ("project", "task")})
    fields.update({key: call.data[key] for key in ("project", "task") if key in call.data})
    if "ready" in call.data:
        fields["ready"] = call.flag("ready")
    if call.data.get("iteration") is not None:
        fields["last_iteration"] = call.integer("iteration")
    if fields:
        fields["last_update"] = fields["last_change"] = now()
        model.update(fields)
        call.tx.put("models", model)
    return fields


@endpoint("models.create", fields=MODEL_FIELDS)
def create(call: Call) -> dict[str, Any]:
    call.required("name")
    call.required("uri")
    given = _links(call, {key: call.data.get(key) for key in MODEL_FIELDS})
    model = _new(call, given)
    call.tx.put("models", model)
    return {"id": model["id"], "created": True}


@endpoint("models.edit", fields={"model": ID, "force": FLAG, **MODEL_FIELDS})
def edit(call: Call) -> dict[str, Any]:
    model = get(call.tx, call.id("model"))
    fields = _changed(call, model)
    return {"updated": 1 if fields else 0, "fields": fields}


@endpoint("models.update", fields={"model": ID, "force": FLAG, "created": TEXT, **MODEL_FIELDS})
def update(call: Call) -> dict[str, Any]:
    return edit(call)


@endpoint(
    "models.update_for_task",
    fields={
        "task": ID,
        "uri": TEXT,
        "name": NAME,
        "comment": TEXT,
        "tags": TAGS,
        "system_tags": TAGS,
        "override_model_id": TEXT,
        "iteration": Int(),
    },
)
def update_for_task(call: Call) -> dict[str, Any]:
    """The task's output model: override_model_id links an existing one; otherwise a new model is made
    from uri (and name, which defaults to the task's)."""
    task = tasks.get(call.tx, call.id("task"))
    override = call.text("override_model_id")
    if override:
        model, created = get(call.tx, override), False
    else:
        call.required("uri")
        given = {
            key: call.data.get(key) for key in ("uri", "name", "comment", "tags", "system_tags", "iteration")
        }
        given["name"] = given.get("name") or task["name"]
        model = _new(call, {**given, "task": task["id"], "project": task.get("project")})
        call.tx.put("models", model)
        created = True
    task_objects.link_model(call.tx, task, "output", model["name"], model["id"])
    return {"id": model["id"], "created": created, "updated": 0 if created else 1, "fields": {}}


@endpoint("models.get_by_id", write=False, fields={"model": ID})
def get_by_id(call: Call) -> dict[str, Any]:
    return {"model": get(call.tx, call.id("model"))}


@endpoint(
    "models.get_all",
    write=False,
    fields={
        **GET_ALL,
        "project": MATCHING,
        "task": MATCHING,
        "framework": MATCHING,
        "ready": FLAG,
        "uri": MATCHING,
        "user": MATCHING,
        "include_subprojects": FLAG,
        **{name: DATES for name in ranges.DATE_FIELDS["models"]},
        **{name: RANGE for name in ranges.TIME_RANGES["models"] + ranges.NUMBER_RANGES["models"]},
    },
    closed=True,
    paths=True,
)
def get_all(call: Call) -> dict[str, Any]:
    wanted = {key: query.wanted(call, key) for key in ("project", "task", "framework", "uri")}
    if wanted["project"] is not None and call.flag("include_subprojects"):
        wanted["project"] = set(projects.with_subprojects(call.tx, sorted(wanted["project"])))
    ready = call.flag("ready") if call.data.get("ready") is not None else None
    shared, _ = query.filters(call, "models")

    def keep(doc: dict[str, Any]) -> bool:
        return all(query.one_of(doc.get(key), values) for key, values in wanted.items()) and (
            ready is None or bool(doc.get("ready")) == ready
        )

    return {"models": query.select(call, call.tx.find("models"), query.both(keep, shared))}


@endpoint(
    "models.set_ready",
    fields={"model": ID, "force_publish_task": FLAG, "publish_task": FLAG},
)
def set_ready(call: Call) -> dict[str, Any]:
    model = get(call.tx, call.id("model"))
    model["ready"] = True
    model["last_update"] = model["last_change"] = now()
    call.tx.put("models", model)
    return {"updated": 1, "published_task": None}


@endpoint("models.publish_many", fields={"ids": MATCHING, "force_publish_task": FLAG, "publish_task": FLAG})
def publish_many(call: Call) -> dict[str, Any]:
    succeeded = []
    for model_id in call.items("ids") or []:
        model = get(call.tx, model_id)
        model["ready"] = True
        model["last_update"] = model["last_change"] = now()
        call.tx.put("models", model)
        succeeded.append({"id": model_id, "updated": 1, "published_task": None})
    return {"succeeded": succeeded, "failed": []}


def _set_archived(call: Call, archived: bool) -> dict[str, Any]:
    """models.archive_many / unarchive_many: the "archived" system tag added or taken away, per model; an
    unknown id is one of the `failed` (as ClearML's batch calls answer), not the call's error."""
    ids = list(dict.fromkeys(call.items("ids") or []))
    if not ids:
        raise errors.empty_batch(field="ids")
    key = "archived" if archived else "unarchived"
    succeeded, failed = [], []
    for model_id in ids:
        model = call.tx.get("models", model_id)
        if model is None:
            error = errors.invalid_model_id(id=model_id)
            failed.append(
                {
                    "id": model_id,
                    "error": {"codes": [error.code, error.subcode], "msg": error.msg, "data": {}},
                }
            )
            continue
        tags = [t for t in model.get("system_tags") or [] if t != "archived"]
        model["system_tags"] = [*tags, "archived"] if archived else tags
        model["last_update"] = model["last_change"] = now()
        call.tx.put("models", model)
        succeeded.append({"id": model_id, key: True})
    return {"succeeded": succeeded, "failed": failed}


@endpoint("models.archive_many", fields={"ids": MATCHING})
def archive_many(call: Call) -> dict[str, Any]:
    return _set_archived(call, True)


@endpoint("models.unarchive_many", fields={"ids": MATCHING})
def unarchive_many(call: Call) -> dict[str, Any]:
    return _set_archived(call, False)


@endpoint("models.delete", fields={"model": ID, "force": FLAG, "delete_external_artifacts": FLAG})
def delete(call: Call) -> dict[str, Any]:
    """The model document and its events (`model_event` reports), and its weights when they are a file of
    this server's store that no other model names (unless `delete_external_artifacts` is false)."""
    model = get(call.tx, call.id("model"))
    call.tx.delete("models", model["id"])
    call.tx.delete_events(model["id"])
    if call.flag("delete_external_artifacts", True):
        call.stale.files += files.unnamed_files(call.tx, [model.get("uri")])
    return {"deleted": True, "url": model.get("uri")}


@endpoint(
    "models.add_or_update_metadata",
    fields={"model": ID, "metadata": METADATA, "replace_metadata": FLAG},
)
def add_or_update_metadata(call: Call) -> dict[str, Any]:
    model = get(call.tx, call.id("model"))
    merged = call.merged_by("metadata", "key", model.get("metadata"), "replace_metadata")
    model["metadata"] = {
        name: {"key": name, "type": item.get("type"), "value": item.get("value")}
        for name, item in merged.items()
    }
    model["last_update"] = model["last_change"] = now()
    call.tx.put("models", model)
    return {"updated": 1}


@endpoint("models.delete_metadata", fields={"model": ID, "keys": MATCHING})
def delete_metadata(call: Call) -> dict[str, Any]:
    model = get(call.tx, call.id("model"))
    current = dict(model.get("metadata") or {})
    for key in call.items("keys") or []:
        current.pop(key, None)
    model["metadata"] = current
    call.tx.put("models", model)
    return {"updated": 1}
