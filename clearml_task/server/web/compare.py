"""Comparing tasks (`/projects/<p>/compare-tasks;ids=a,b/<tab>`): scalars overlaid, hyperparameters side by
side with the differing ones marked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clearml_task.server.web import render

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from clearml_task.server.web.calls import Ui

TABS = {"scalars": "Scalars", "hyperparams": "Hyperparameters"}


def page(ui: Ui, project: str, ids: str, rest: str | None = None) -> Response:
    wanted = list(dict.fromkeys(i for i in ids.split(",") if i))
    tab = "hyperparams" if rest and ("param" in rest or "detail" in rest) else "scalars"
    found = {t["id"]: t for t in ui.api("tasks.get_all", id=wanted)["tasks"]} if wanted else {}
    tasks = [found[i] for i in wanted if i in found]
    context: dict[str, Any] = {}
    if tab == "scalars":
        context["scalars"] = overlaid(ui, tasks)
    else:
        context["rows"] = hyperparam_rows(tasks)
    return render.page(
        ui, "compare.html", title="Compare tasks", section="tasks", tasks=tasks, tab=tab, tabs=TABS,
        base=f"/projects/{project}/compare-tasks;ids={','.join(t['id'] for t in tasks)}",
        missing=[i for i in wanted if i not in found], **context,
    )  # fmt: skip


def overlaid(ui: Ui, tasks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{metric: [{label, x, y}]}: every task's variants of a metric on one chart."""
    charts: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        histogram = ui.api("events.scalar_metrics_iter_histogram", task=task["id"])
        for metric, variants in sorted(histogram.items()):
            for variant, series in sorted(variants.items()):
                label = task["name"] if len(variants) == 1 else f"{task['name']} · {variant}"
                charts.setdefault(metric, []).append({"label": label, "x": series["x"], "y": series["y"]})
    return charts


def hyperparam_rows(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per section/name any task has: each task's value, and whether they differ."""
    keys: dict[tuple[str, str], None] = {}
    for task in tasks:
        for section, params in sorted(render.mapping(task.get("hyperparams")).items()):
            for name in sorted(render.mapping(params)):
                keys[(section, name)] = None
    rows = []
    for section, name in keys:
        values = [
            render.mapping(
                render.mapping(render.mapping(task.get("hyperparams")).get(section)).get(name)
            ).get("value")
            for task in tasks
        ]
        rows.append(
            {"section": section, "name": name, "values": values, "differs": len(set(map(str, values))) > 1}
        )
    return rows
