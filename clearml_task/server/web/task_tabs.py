"""What each tab of a task's page shows, read from the task document and its events through the API."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from clearml_task import vocabulary
from clearml_task.server import files
from clearml_task.server.web import render
from clearml_task.server.web.calls import PageError

if TYPE_CHECKING:
    from clearml_task.server.web.calls import Ui

LOG_BATCH = 5000
LOG_CHUNK = 100  # lines per block of the console: a block off screen is not laid out (app.css)
SECTION_ORDER = ("Args", "Environment", "General")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def execution(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    script = render.mapping(task.get("script"))
    requirements = render.mapping(script.get("requirements"))
    return {
        "script": script,
        "diff": diff_lines(render.text(script.get("diff"))),
        "packages": packages(requirements),
        "requirements_source": requirements.get("source") or "",
        "container": render.mapping(task.get("container")),
    }


def configuration(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    hyperparams = render.mapping(task.get("hyperparams"))
    names = [s for s in SECTION_ORDER if s in hyperparams] + sorted(
        s for s in hyperparams if s not in SECTION_ORDER
    )
    sections = [
        (name, sorted(render.objects(hyperparams[name]), key=lambda p: str(p.get("name")))) for name in names
    ]
    objects = sorted(render.objects(task.get("configuration")), key=lambda c: str(c.get("name")))
    return {"sections": sections, "objects": objects, "editable": task["status"] == vocabulary.CREATED}


def artifacts(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    found = render.mapping(task.get("execution")).get("artifacts")
    return {
        "artifacts": [
            {
                **a,
                "href": download_href(a.get("uri")),
                "preview": render.mapping(a.get("type_data")).get("preview") or "",
            }
            for a in render.objects(found)
        ]
    }


def models(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    """The task's input and output models; their names and URLs from models.get_all where it is served."""
    refs = render.mapping(task.get("models"))
    listed = {kind: render.objects(render.listed(refs.get(kind))) for kind in ("input", "output")}
    ids = [
        render.text(m.get("model")) for kind in listed.values() for m in kind if render.text(m.get("model"))
    ]
    details: dict[str, dict[str, Any]] = {}
    if ids:
        try:
            details = {m["id"]: m for m in ui.api("models.get_all", id=ids).get("models", [])}
        except PageError:  # models.* not served by this server: the task's references are all there is
            details = {}
    rows = {
        kind: [model_row(m, details.get(render.text(m.get("model")), {})) for m in models_]
        for kind, models_ in listed.items()
    }
    return {"models": rows}


def model_row(ref: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """A task's reference to a model (`{name, model}`), with what the model's document adds."""
    return {
        "name": ref.get("name") or model.get("name") or "",
        "id": render.text(ref.get("model")),
        "uri": model.get("uri") or "",
        "href": download_href(model.get("uri")),
    }


def info(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    parent = task.get("parent")
    return {"parent_link": f"/projects/*/tasks/{parent}/info" if parent else ""}


def console(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    found = ui.api("events.get_task_log", task=task["id"], batch_size=LOG_BATCH, navigate_earlier=True)
    events = list(reversed(found["events"]))
    return {
        "log_chunks": [log_text(events[i : i + LOG_CHUNK]) for i in range(0, len(events), LOG_CHUNK)],
        "log_total": found["total"],
        "log_shown": len(events),
        "log_stored": int(found.get("stored_last") or 0),  # where the live console polls on from
    }


def scalars(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    """Nothing: the page reads the scalars (events.scalar_metrics_iter_histogram) after its first paint."""
    return {}


def newest_events(ui: Ui, task: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """A task's newest LOG_BATCH events of one type, newest first (a task may have many more: the oldest
    are the ones left out)."""
    query = {"task": task["id"], "event_type": kind, "order": "desc", "batch_size": LOG_BATCH}
    return list(ui.api("events.get_task_events", **query)["events"])


def plots(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    """The newest plot of each metric and variant (as ClearML shows, and as the Debug samples tab does),
    with how many iterations of it were reported: a task reporting a plot every iteration has thousands,
    which as charts would make a page of megabytes that blocks the browser for seconds."""
    events = newest_events(ui, task, "plot")
    iterations: dict[tuple[str, str], set[Any]] = {}
    for event in events:
        iterations.setdefault(_series(event), set()).add(event.get("iter"))
    cut = len(events) >= LOG_BATCH  # the oldest reports were not read: their counts are lower bounds
    shown = [
        {**_fields(e, "metric", "variant", "iter", "timestamp", "plot_str"),
         "iterations": len(iterations[_series(e)]), "more": cut}
        for e in newest_of_each(events)
    ]  # fmt: skip
    return {"plots": shown}


def debug_samples(ui: Ui, task: dict[str, Any]) -> dict[str, Any]:
    """The newest image of each metric and variant (ClearML's debug samples show the last iteration)."""
    samples = [
        {**_fields(e, "metric", "variant", "iter", "url"), "src": download_href(e.get("url"))}
        for e in newest_of_each(newest_events(ui, task, "training_debug_image"))
    ]
    return {"samples": samples}


def newest_of_each(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest of `events` (given newest first) of each metric and variant, ordered by those."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        latest.setdefault(_series(event), event)
    return [event for _, event in sorted(latest.items())]


def _series(event: dict[str, Any]) -> tuple[str, str]:
    return str(event.get("metric", "")), str(event.get("variant", ""))


TABS = {
    "execution": ("Execution", execution),
    "configuration": ("Configuration", configuration),
    "artifacts": ("Artifacts", artifacts),
    "models": ("Models", models),
    "info": ("Info", info),
    "console": ("Console", console),
    "scalars": ("Scalars", scalars),
    "plots": ("Plots", plots),
    "debug-samples": ("Debug samples", debug_samples),
}


def tab_of(rest: str | None) -> str:
    """Our tab for what follows the task id in ClearML's routes (`execution`, `hyper-params/...`,
    `info-output/metrics/scalar`, `info-output/debugImages`, `artifacts/output-model`, `general`, ...)."""
    words = (rest or "").lower()
    if words.split("/", 1)[0] in TABS:
        return words.split("/", 1)[0]
    for needle, tab in (
        ("log", "console"), ("scalar", "scalars"), ("plot", "plots"), ("debug", "debug-samples"),
        ("hyper", "configuration"), ("config", "configuration"), ("model", "models"),
        ("artifact", "artifacts"), ("general", "info"), ("info", "info"),
    ):  # fmt: skip
        if needle in words:
            return tab
    return "execution"


def log_text(events: list[dict[str, Any]]) -> str:
    return "".join(str(e.get("msg", "")).rstrip("\n") + "\n" for e in events)


def full_log(ui: Ui, task_id: str) -> str:
    """The whole log, oldest first (paged by timestamp: a page ends with every line sharing its last one)."""
    lines: list[dict[str, Any]] = []
    start: int | None = None
    while True:
        query: dict[str, Any] = {"task": task_id, "batch_size": LOG_BATCH, "navigate_earlier": False}
        if start is not None:
            query["from_timestamp"] = start
        found = ui.api("events.get_task_log", **query)["events"]
        if not found:
            return log_text(lines)
        lines.extend(found)
        start = int(found[-1].get("timestamp") or 0)


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """The patch as (css class, line): files, hunks, additions and deletions told apart."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("diff --git", "+++ ", "--- ", "new file", "deleted file", "index ", "rename ")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = ""
        out.append((kind, line))
    return out


def _lines(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [
        line.strip() for line in str(value or "").splitlines() if line.strip() and not line.startswith("#")
    ]


def _canonical(line: str) -> str:
    found = _NAME.match(line)
    return re.sub(r"[-_.]+", "-", found[1]).lower() if found else line


def packages(requirements: dict[str, Any]) -> dict[str, Any]:
    """Asked vs installed: what the task asked for (org_pip once a launcher ran it, pip before) against
    what the launcher installed (pip, written back after the run)."""
    ran = "org_pip" in requirements
    asked = _lines(requirements.get("org_pip") if ran else requirements.get("pip"))
    asked += _lines(requirements.get("extra"))
    installed = _lines(requirements.get("pip")) if ran else []
    versions = {}
    for line in installed:
        name, _, version = line.partition("==")
        versions[_canonical(name)] = version.strip() or line
    rows = [{"asked": line, "installed": versions.get(_canonical(line), "")} for line in asked]
    return {"rows": rows, "asked": asked, "installed": installed, "ran": ran}


def download_href(uri: Any) -> str:
    """A link for a URI the browser can follow, else ''. A file of this server's file server (a URL whose
    path is under /files/, as files.relative reads it, whichever host and port the uploader knew the server
    by) becomes a path on this origin, which the browser reads with its session cookie; another http(s) URL
    stays as it is; anything else (s3://, file://, javascript:) is no link."""
    if not isinstance(uri, str) or not uri:
        return ""
    scheme = urlsplit(uri).scheme.lower()
    stored = files.relative(uri) if scheme in ("http", "https", "") else None
    if stored is not None:
        return files.PREFIX + quote(stored, safe="/")
    if scheme in ("http", "https") or (not scheme and uri.startswith("/") and not uri.startswith("//")):
        return uri
    return ""


def _fields(event: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: event.get(name) for name in names}
