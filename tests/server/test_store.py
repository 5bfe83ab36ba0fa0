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
            {k: v for k, v in doc.items() if k in fields and k != "script"} for doc in whole
        ]
