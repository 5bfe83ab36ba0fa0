"""A task's page (`/projects/<p>/tasks/<t>/<tab>`, and ClearML's older `experiments` form), its actions, and
the full-screen console (`.../output/log`, the link the SDK prints; `?download=1` for the text file)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clearml_task import vocabulary
from clearml_task.server.web import render, task_tabs

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from clearml_task.server.web.calls import Ui

RUNNING = (vocabulary.QUEUED, vocabulary.IN_PROGRESS)


def page(ui: Ui, project: str, task_id: str, rest: str | None = None) -> Response:
    tab = task_tabs.tab_of(rest)
    task = ui.api("tasks.get_by_id", task=task_id)["task"]
    base = f"/projects/{task.get('project') or '*'}/tasks/{task['id']}"
    return render.page(
        ui, "task.html", title=task["name"], section="tasks", task=task, tab=tab, base=base,
        tabs=[(name, label) for name, (label, _) in task_tabs.TABS.items()],
        **header(ui, task), **task_tabs.TABS[tab][1](ui, task),
    )  # fmt: skip


def header(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    """What every tab shows above it: project, queue, user, the actions the task's status allows."""
    projects = ui.projects()
    queues = ui.queues()
    queue_id = render.text(render.mapping(task.get("execution")).get("queue"))
    return {
        "project_name": projects.get(render.text(task.get("project")), ""),
        "projects": projects,
        "queues": queues,
        "queue_name": next((q["name"] for q in queues if q["id"] == queue_id), ""),
        "user_name": ui.user_name(task.get("user")),
        "duration": render.duration(task),
        "running": task["status"] in RUNNING,
        "actions": actions(task),
    }


def actions(task: dict[str, Any]) -> set[str]:
    """ClearML's buttons that apply to a task in its status."""
    status = task["status"]
    archived = "archived" in render.listed(task.get("system_tags"))
    found = {"clone"}
    if status == vocabulary.IN_PROGRESS:
        found.add("abort")
    if status in (vocabulary.CREATED, vocabulary.STOPPED, vocabulary.FAILED):
        found.add("enqueue")
    if status == vocabulary.QUEUED:
        found.add("dequeue")
    if status not in (vocabulary.CREATED, vocabulary.IN_PROGRESS, vocabulary.PUBLISHED):
        found.add("reset")
    if status not in RUNNING:
        found.update({"restore"} if archived else {"archive"})
        found.add("delete")
    return found


def full_log(ui: Ui, project: str, task_id: str) -> Response:
    from werkzeug.wrappers import Response

    task = ui.api("tasks.get_by_id", task=task_id)["task"]
    if ui.request.args.get("download"):
        text = task_tabs.full_log(ui, task_id)
        disposition = f'attachment; filename="{task_id}.log"'
        headers = {**render.PAGE_HEADERS, "Content-Disposition": disposition}
        return Response(text, mimetype="text/plain", headers=headers)
    base = f"/projects/{task.get('project') or '*'}/tasks/{task['id']}"
    return render.page(
        ui, "log.html", title=f"{task['name']} — console", task=task, base=base,
        running=task["status"] in RUNNING, **task_tabs.console(ui, task),
    )  # fmt: skip
