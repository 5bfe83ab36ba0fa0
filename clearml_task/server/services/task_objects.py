"""tasks.* actions on what a task holds besides its own fields: artifacts (execution.artifacts, a list
keyed by key and mode), configuration objects (configuration, keyed by name) and links to models
(models.input / models.output, lists of {name, model})."""

from __future__ import annotations

from typing import Any

from clearml_task.server import errors
from clearml_task.server.endpoints import Call, endpoint, now
from clearml_task.server.fields import FLAG, ID, MATCHING, TASKS, TEXT, Int, Objects
from clearml_task.server.services.tasks import get
from clearml_task.server.store import Tx

ARTIFACT = Objects(
    {"key": TEXT, "type": TEXT, "mode": TEXT, "uri": TEXT, "hash": TEXT}, required=("key", "type")
)
ARTIFACT_KEY = Objects({"key": TEXT, "mode": TEXT}, required=("key",))
CONFIGURATION_ITEM = Objects(
    {"name": TEXT, "value": TEXT, "type": TEXT, "description": TEXT}, required=("name",)
)
MODES = ("input", "output")
MODEL_TYPES = ("input", "output")


def _mode(item: dict[str, Any]) -> str:
    mode = item.get("mode") or "output"
    if mode not in MODES:
        raise errors.validation_error("artifact mode must be input or output", mode=mode)
    return str(mode)


def _touched(tx: Tx, task: dict[str, Any]) -> None:
    task["last_update"] = task["last_change"] = now()
    tx.put("tasks", task)


@endpoint("tasks.add_or_update_artifacts", fields={"task": ID, "artifacts": ARTIFACT, "force": FLAG})
def add_or_update_artifacts(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    given = call.items("artifacts")
    if not given:
        raise errors.missing_field(field="artifacts")
    execution = dict(task.get("execution") or {})
    current = {(a["key"], _mode(a)): a for a in execution.get("artifacts") or [] if isinstance(a, dict)}
    for item in given:
        current[(item["key"], _mode(item))] = {**item, "mode": _mode(item)}
    execution["artifacts"] = list(current.values())
    task["execution"] = execution
    _touched(call.tx, task)
    return {"updated": len(given)}


@endpoint("tasks.delete_artifacts", fields={"task": ID, "artifacts": ARTIFACT_KEY, "force": FLAG})
def delete_artifacts(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    gone = {(item["key"], _mode(item)) for item in call.items("artifacts") or []}
    execution = dict(task.get("execution") or {})
    kept = [a for a in execution.get("artifacts") or [] if (a.get("key"), _mode(a)) not in gone]
    deleted = len(execution.get("artifacts") or []) - len(kept)
    execution["artifacts"] = kept
    task["execution"] = execution
    _touched(call.tx, task)
    return {"deleted": deleted}


@endpoint(
    "tasks.edit_configuration",
    fields={"task": ID, "configuration": CONFIGURATION_ITEM, "replace_configuration": FLAG, "force": FLAG},
)
def edit_configuration(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    merged = call.merged_by("configuration", "name", task.get("configuration"), "replace_configuration")
    task["configuration"] = {name: dict(item) for name, item in merged.items()}
    _touched(call.tx, task)
    return {"updated": 1}


def _tasks(call: Call) -> list[dict[str, Any]]:
    ids = call.task_list()
    if not ids:
        raise errors.missing_field(field="tasks")
    return [get(call.tx, task_id) for task_id in ids]


@endpoint("tasks.get_configurations", write=False, fields={"tasks": TASKS, "names": MATCHING})
def get_configurations(call: Call) -> dict[str, Any]:
    names = call.items("names")
    return {
        "configurations": [
            {
                "task": task["id"],
                "configuration": [
                    item
                    for name, item in (task.get("configuration") or {}).items()
                    if names is None or name in names
                ],
            }
            for task in _tasks(call)
        ]
    }


@endpoint("tasks.get_configuration_names", write=False, fields={"tasks": TASKS, "skip_empty": FLAG})
def get_configuration_names(call: Call) -> dict[str, Any]:
    skip_empty = call.flag("skip_empty", True)
    return {
        "configurations": [
            {
                "task": task["id"],
                "names": sorted(
                    name
                    for name, item in (task.get("configuration") or {}).items()
                    if not skip_empty or (isinstance(item, dict) and item.get("value"))
                ),
            }
            for task in _tasks(call)
        ]
    }


@endpoint("tasks.delete_configuration", fields={"task": ID, "configuration": MATCHING, "force": FLAG})
def delete_configuration(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    current = dict(task.get("configuration") or {})
    deleted = sum(current.pop(name, None) is not None for name in call.items("configuration") or [])
    task["configuration"] = current
    _touched(call.tx, task)
    return {"deleted": deleted}


def link_model(tx: Tx, task: dict[str, Any], kind: str, name: str, model_id: str) -> None:
    """Name `model_id` among the task's input or output models (replacing a link of the same name)."""
    models = dict(task.get("models") or {})
    links = [m for m in models.get(kind) or [] if isinstance(m, dict) and m.get("name") != name]
    models[kind] = [*links, {"name": name, "model": model_id}]
    task["models"] = models
    _touched(tx, task)


@endpoint(
    "tasks.add_or_update_model",
    fields={"task": ID, "name": TEXT, "model": ID, "type": TEXT, "iteration": Int()},
)
def add_or_update_model(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    kind = call.text("type", required=True) or ""
    if kind not in MODEL_TYPES:
        raise errors.validation_error("type must be input or output", type=kind)
    model_id = call.id("model")
    if call.tx.get("models", model_id) is None:
        raise errors.invalid_model_id(id=model_id)
    link_model(call.tx, task, kind, call.text("name", required=True) or "", model_id)
    return {"updated": 1}


@endpoint("tasks.delete_models", fields={"task": ID, "models": Objects({"name": TEXT, "type": TEXT})})
def delete_models(call: Call) -> dict[str, Any]:
    task = get(call.tx, call.id("task"))
    models = dict(task.get("models") or {})
    gone = {(m.get("type"), m.get("name")) for m in call.items("models") or []}
    for kind in MODEL_TYPES:
        models[kind] = [m for m in models.get(kind) or [] if (kind, m.get("name")) not in gone]
    task["models"] = models
    _touched(call.tx, task)
    return {"updated": 1}
