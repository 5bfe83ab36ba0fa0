"""ClearML's Orchestration page: the queues with their entries in order, and the workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clearml_task.server.web import render

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from clearml_task.server.web.calls import Ui


def queues(ui: Ui) -> Response:
    found = ui.queues()
    ids = [e["task"] for q in found for e in q.get("entries", [])]
    tasks = _tasks(ui, ids)
    listed = [
        {**q, "rows": [{**e, "task_doc": tasks.get(e["task"], {})} for e in q.get("entries", [])]}
        for q in found
    ]
    return render.page(ui, "queues.html", title="Queues", section="orchestration", queues=listed)


def workers(ui: Ui) -> Response:
    found = sorted(ui.api("workers.get_all")["workers"], key=lambda w: str(w.get("id")))
    ids = [str((w.get("task") or {}).get("id")) for w in found if (w.get("task") or {}).get("id")]
    tasks = _tasks(ui, ids)
    return render.page(
        ui, "workers.html", title="Workers", section="orchestration", workers=found, tasks=tasks
    )


def _tasks(ui: Ui, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    fields = ["id", "name", "status", "project"]
    return {t["id"]: t for t in ui.api("tasks.get_all", id=ids, only_fields=fields)["tasks"]}
