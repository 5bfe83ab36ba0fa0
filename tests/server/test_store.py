"""The store's listing columns: what a task listing filters and sorts by is kept beside the document, and a
data dir made before those columns existed gets them filled on open."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from clearml_task.server.app import DB_FILE, App
from clearml_task.server.auth import first_user

OLD_TASKS = """CREATE TABLE tasks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, project TEXT, status TEXT NOT NULL, doc TEXT NOT NULL)"""


def listed(app: App, **query: object) -> list[dict[str, object]]:
    code, envelope = app.handle(
        "/tasks.get_all",
        json.dumps(query).encode(),
        authorization=f"Bearer {app.tokens.issue(first_user(app.keys))}",
    )
    assert code == 200, envelope
    tasks: list[dict[str, object]] = envelope["data"]["tasks"]
    return tasks


def test_an_older_data_dir_gets_the_listing_columns(tmp_path: Path) -> None:
    data = tmp_path / "server"
    data.mkdir()
    with sqlite3.connect(data / DB_FILE) as conn:
        conn.execute(OLD_TASKS)
        for n, (created, tags) in enumerate(
            [("2026-01-02", ["archived"]), ("2026-01-03", []), ("2026-01-01", [])]
        ):
            doc = {"id": f"t{n}", "name": f"task {n}", "status": "created", "created": created,
                   "type": "training", "system_tags": tags, "tags": ["x"], "project": None}  # fmt: skip
            conn.execute(
                "INSERT INTO tasks VALUES (?, ?, ?, ?, ?)",
                (doc["id"], doc["name"], None, "created", json.dumps(doc)),
            )
    app = App(data)
    with sqlite3.connect(data / DB_FILE) as conn:
        row = conn.execute("SELECT created, type, system_tags FROM tasks WHERE id = 't0'").fetchone()
    assert row == ("2026-01-02", "training", '["archived"]')
    page = listed(
        app, only_fields=["name"], order_by=["-created"], page=0, page_size=2, system_tags=["-archived"]
    )
    assert page == [{"name": "task 1"}, {"name": "task 2"}]
    assert listed(app, only_fields=["id", "project"], id=["t2"]) == [{"id": "t2", "project": None}]


def test_paged_listings_answer_as_whole_documents_do(tmp_path: Path) -> None:
    app = App(tmp_path / "server")
    token = f"Bearer {app.tokens.issue(first_user(app.keys))}"
    for n in range(7):
        body = {"name": f"task {n}", "type": "testing" if n % 2 else "training", "tags": [f"t{n % 3}"]}
        app.handle("/tasks.create", json.dumps(body).encode(), authorization=token)
    for query in (
        {"order_by": ["-name"], "page": 1, "page_size": 3},
        {"order_by": ["type", "-created"], "page": 0, "page_size": 4, "type": ["testing"]},
        {"order_by": ["name"], "page": 0, "page_size": 5, "tags": ["t1", "t2"], "name": "task [1-5]"},
    ):
        whole = listed(app, **query)
        fields = ["id", "name", "type", "tags", "started", "script.binary"]
        assert listed(app, **query, only_fields=fields) == [
            # as MongoDB: `script.binary` of a script without one gives the script object, empty
            {**{k: v for k, v in doc.items() if k in fields and k != "script"}, "script": {}}
            for doc in whole
        ]


def test_paged_listings_in_sql_answer_as_whole_documents_do(tmp_path: Path) -> None:
    """The pages the web UI's table asks for (order by a column, status, archived or not, tags) are chosen
    in SQL: the same tasks in the same order as the whole documents give, ties and nulls included."""
    app = App(tmp_path / "server")
    token = f"Bearer {app.tokens.issue(first_user(app.keys))}"
    created = app.handle("/projects.create", b'{"name": "ppp"}', authorization=token)[1]
    project = created["data"]["id"]
    system = [[], ["archived"], ["hidden"], ["not archived", "hidden-ish"], ["archived", "x"], []]
    for n in range(18):
        body = {
            "name": f"task {n % 5}", "type": ("testing", "training", "inference")[n % 3],
            "tags": [f"t{n % 4}"] if n % 6 else [], "system_tags": system[n % 6],
            **({"project": project} if n % 2 else {}),
        }  # fmt: skip
        code, envelope = app.handle("/tasks.create", json.dumps(body).encode(), authorization=token)
        assert code == 200, envelope
        if n % 4 == 1:
            enqueue = {"task": envelope["data"]["id"], "queue_name": "q"}
            app.handle("/tasks.enqueue", json.dumps(enqueue).encode(), authorization=token)
    fields = ["id", "name", "status", "type", "project", "tags", "system_tags"]
    queries = [
        {"order_by": ["-created"], "page": 0, "page_size": 5, "system_tags": ["-archived"]},
        {"order_by": ["name", "-created"], "page": 1, "page_size": 4},
        {"order_by": ["-name"], "page": 0, "page_size": 50, "system_tags": ["archived"]},
        {"order_by": ["status", "type"], "page": 2, "page_size": 3, "status": ["queued", "created"]},
        {"order_by": ["-type"], "page": 0, "page_size": 6, "project": [project], "tags": ["t1", "-t2"]},
        {"order_by": ["project"], "page": 0, "page_size": 20, "tags": ["-t3"], "search_hidden": True},
        {"order_by": ["-project", "name"], "page": 0, "page_size": 20},
        {"order_by": ["id"], "page": 9, "page_size": 5},
        {"order_by": ["-created"], "page": 0, "page_size": 4, "tags": ["__$all", "t1"]},  # not in SQL
        {"page": 0, "page_size": 7},
        {"order_by": ["-created"], "page": 1, "page_size": 2, "name": "(?i)TASK [13]"},
        {"order_by": ["status"], "page": 0, "page_size": 9, "name": "4$", "system_tags": ["-archived"]},
    ]
    for query in queries:
        whole = listed(app, **query)
        assert listed(app, **query, only_fields=fields) == [
            {k: v for k, v in doc.items() if k in fields} for doc in whole
        ], query
    assert len(listed(app, page=0, page_size=50)) == 15  # the hidden ones left out
