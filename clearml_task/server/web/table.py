"""The task table (`/projects/<id or *>/tasks`): filter by status and project, search, sort, page."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from clearml_task import vocabulary
from clearml_task.server import errors
from clearml_task.server import query as server_query
from clearml_task.server.web import render

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from clearml_task.server.web.calls import Ui

PAGE_SIZE = 50
STATUSES = (
    vocabulary.CREATED, vocabulary.QUEUED, vocabulary.IN_PROGRESS, vocabulary.STOPPED, vocabulary.FAILED,
    vocabulary.COMPLETED, vocabulary.CLOSED, vocabulary.PUBLISHED,
)  # fmt: skip
# Column -> the task field it sorts by.
SORTABLE = {
    "name": "name", "status": "status", "type": "type", "user": "user", "started": "started",
    "updated": "last_update", "created": "created",
}  # fmt: skip
FIELDS = [
    "id", "name", "status", "type", "project", "user", "started", "completed", "execution.queue", "tags",
]  # fmt: skip
_ID = re.compile(r"^[0-9a-f]{32}$")


def page(ui: Ui, project: str) -> Response:
    """One page of PAGE_SIZE tasks from tasks.get_all (only the fields the table shows): the status
    checkboxes, the search box (a name, case-insensitive, or a task id), the archived switch and the sort
    column arrive as query arguments and are kept in every link the page makes."""
    args = ui.request.args
    statuses = [s for s in args.getlist("status") if s in STATUSES]
    search = args.get("search", "").strip()
    sort = args.get("sort", "-created")
    if sort.lstrip("-") not in SORTABLE:
        sort = "-created"
    archived = args.get("archived") == "1"
    page_no = max(_int(args.get("page")), 0)
    query: dict[str, Any] = {
        "only_fields": FIELDS,
        "order_by": [("-" if sort.startswith("-") else "") + SORTABLE[sort.lstrip("-")], "-created"],
        "page": page_no,
        "page_size": PAGE_SIZE,
        "system_tags": ["archived"] if archived else ["-archived"],
    }
    if project != "*":
        query["project"] = [project]
    if statuses:
        query["status"] = statuses
    tasks, more, problem = _tasks(ui, query, search, by_user_name=sort.lstrip("-") == "user")
    projects = ui.projects()
    queue_names = {q["id"]: q["name"] for q in ui.queues()}
    rows = [
        {
            **task,
            "project_name": projects.get(render.text(task.get("project")), ""),
            "user_name": ui.user_name(task.get("user")),
            "queue_name": queue_names.get(
                render.text(render.mapping(task.get("execution")).get("queue")), ""
            ),
            "duration": render.duration(task),
            "link": f"/projects/{task.get('project') or '*'}/tasks/{task['id']}/execution",
        }
        for task in tasks
    ]
    state = {"status": statuses, "search": search, "sort": sort, "archived": "1" if archived else ""}

    def link(**changes: Any) -> str:
        merged = {**state, "page": page_no, **changes}
        pairs = [
            (k, v) for k, values in merged.items() for v in (values if isinstance(values, list) else [values])
        ]
        return f"?{urlencode([(k, v) for k, v in pairs if v not in ('', None, 0)])}"

    def sort_link(column: str) -> str:
        return link(sort=column if sort != column else f"-{column}", page=0)

    return render.page(
        ui, "table.html", title="Tasks", section="tasks", rows=rows, projects=projects, project=project,
        project_name="All projects" if project == "*" else projects.get(project, project),
        statuses=STATUSES, state=state, sort=sort, sort_link=sort_link, columns=SORTABLE,
        previous=link(page=page_no - 1) if page_no > 0 else "",
        next=link(page=page_no + 1) if more else "", problem=problem,
    )  # fmt: skip


def _tasks(
    ui: Ui, query: dict[str, Any], search: str, *, by_user_name: bool
) -> tuple[list[dict[str, Any]], bool, str]:
    """The page's tasks, whether a task follows them, and why none can be found ('' but for a search no
    task name can match). tasks.get_all pages them, unless the page must choose them itself (a search too
    long for a name pattern, the User column sorted by the names)."""
    if _ID.match(search):
        query["id"] = [search]
    elif search:
        pattern = "(?i)" + re.escape(search)
        if len(search) > vocabulary.MAX_NAME:
            return [], False, (f"No task can be found by {len(search)} characters: a task's name has at "
                               f"most {vocabulary.MAX_NAME}. Search for a part of it.")  # fmt: skip
        if _fits(pattern):
            query["name"] = pattern
        else:
            return (*_chosen(ui, query, by_user_name=by_user_name, name_has=search.casefold()), "")
    if by_user_name:
        return (*_chosen(ui, query, by_user_name=True, name_has=""), "")
    tasks = ui.api("tasks.get_all", **query)["tasks"]
    return tasks, len(tasks) == PAGE_SIZE and _more(ui, query), ""


def _fits(pattern: str) -> bool:
    """Whether the server takes `pattern` as a name filter (its length and RE2 program are bounded)."""
    try:
        server_query.name_filter(pattern)
    except errors.APIError:
        return False
    return True


def _chosen(ui: Ui, query: dict[str, Any], *, by_user_name: bool, name_has: str) -> tuple[list[Any], bool]:
    """The page chosen here from every task `query` filters (their ids, names and users, in its order):
    those whose name has `name_has` (case-insensitive; narrowed first by the server's search_text with as
    much of it as that takes), sorted by their users' names when asked (ties keep the query's order);
    then the page's own fields for those ids alone."""
    paging = ("page", "page_size")
    every = {**{k: v for k, v in query.items() if k not in paging}, "only_fields": ["id", "name", "user"]}
    if name_has:
        every["search_text"] = name_has[: server_query.MAX_PATTERN]
    found = [
        t for t in ui.api("tasks.get_all", **every)["tasks"] if name_has in str(t.get("name", "")).casefold()
    ]
    if by_user_name:
        found.sort(
            key=lambda t: ui.user_name(t.get("user")).casefold(), reverse=query["order_by"][0].startswith("-")
        )
    start = query["page"] * PAGE_SIZE
    ids = [t["id"] for t in found[start : start + PAGE_SIZE]]
    if not ids:
        return [], False
    fields = {k: v for k, v in query.items() if k not in paging}
    by_id = {t["id"]: t for t in ui.api("tasks.get_all", **{**fields, "id": ids})["tasks"]}
    return [by_id[i] for i in ids if i in by_id], len(found) > start + PAGE_SIZE


def _more(ui: Ui, query: dict[str, Any]) -> bool:
    """Whether a task follows the page `query` reads (a full page may be the last one): the one task at
    the next page's offset, by page_size 1, its id alone."""
    after = {**query, "only_fields": ["id"], "page": (query["page"] + 1) * PAGE_SIZE, "page_size": 1}
    return bool(ui.api("tasks.get_all", **after)["tasks"])


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
