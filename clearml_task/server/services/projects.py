"""projects.*: create, look up and list projects."""

from __future__ import annotations

from typing import Any

from clearml_task.server import errors, query
from clearml_task.server.endpoints import Call, endpoint, new_id, now
from clearml_task.server.fields import FLAG, GET_ALL, ID, NAME, TAGS, TEXT
from clearml_task.server.store import Tx


def get(tx: Tx, project_id: str) -> dict[str, Any]:
    return tx.require("projects", project_id, lambda: errors.invalid_project_id(id=project_id))


PROJECT_FIELDS = {
    "name": NAME,
    "description": TEXT,
    "tags": TAGS,
    "system_tags": TAGS,
    "default_output_destination": TEXT,
}


def create(tx: Tx, call: Call, name: str, **fields: Any) -> str:
    """A project named `name`; the parents of a nested name (`a/b/c`) are created when missing."""
    parts = [part.strip() for part in name.split("/") if part.strip()]
    name = "/".join(parts)
    if not parts:
        raise errors.invalid_project_name(name=name)
    if len(parts[-1]) < 3:
        raise errors.validation_error("project name must be at least 3 characters long", name=name)
    if tx.name_taken("projects", name):
        raise errors.not_unique("a project with this name exists", name=name)
    path: list[str] = []
    for depth in range(1, len(parts)):
        ancestor = "/".join(parts[:depth])
        found = tx.find("projects", "name = ?", (ancestor,))
        path.append(str(found[0]["id"]) if found else create(tx, call, ancestor))
    stamp = now()
    doc = {
        "id": new_id(),
        "name": name,
        "basename": parts[-1],
        "parent": path[-1] if path else None,
        "path": path,
        "description": fields.get("description") or "",
        "created": stamp,
        "last_update": stamp,
        "tags": list(fields.get("tags") or []),
        "system_tags": list(fields.get("system_tags") or []),
        "default_output_destination": fields.get("default_output_destination"),
        "user": call.identity.get("user"),
        "company": call.identity.get("company"),
    }
    tx.put("projects", doc)
    return str(doc["id"])


@endpoint("projects.create", fields=PROJECT_FIELDS)
def create_endpoint(call: Call) -> dict[str, Any]:
    name = call.text("name", required=True) or ""
    fields = {
        k: call.data.get(k) for k in ("description", "tags", "system_tags", "default_output_destination")
    }
    return {"id": create(call.tx, call, name, **fields)}


@endpoint("projects.get_by_id", write=False, fields={"project": ID})
def get_by_id(call: Call) -> dict[str, Any]:
    return {"project": get(call.tx, call.id("project"))}


def with_subprojects(tx: Tx, ids: list[str]) -> list[str]:
    """These projects and every project under them (`include_subprojects`)."""
    wanted = set(ids)
    under = [doc["id"] for doc in tx.find("projects") if wanted & set(doc.get("path") or [])]
    return [*ids, *under]


@endpoint(
    "projects.get_all",
    write=False,
    fields={**GET_ALL, "basename": TEXT, "description": TEXT, "shallow_search": FLAG},
    closed=True,
)
def get_all(call: Call) -> dict[str, Any]:
    """Besides the shared filters: `basename` and `description` regexes (as `name`'s) and `shallow_search`
    (top-level projects only)."""
    shared, _ = query.filters(call, "projects")
    patterns = [(key, query.name_filter(call.text(key), key)) for key in ("basename", "description")]
    top_only = call.flag("shallow_search")

    def keep(doc: dict[str, Any]) -> bool:
        return all(p is None or p.search(str(doc.get(key) or "")) for key, p in patterns) and not (
            top_only and doc.get("parent")
        )

    return {"projects": query.select(call, call.tx.find("projects"), query.both(keep, shared))}


@endpoint("projects.update", fields={"project": ID, **PROJECT_FIELDS})
def update(call: Call) -> dict[str, Any]:
    project = get(call.tx, call.id("project"))
    name = call.new_name("projects", project["name"])
    fields: dict[str, Any] = {"name": name, "basename": name.rpartition("/")[2]} if name else {}
    for key in ("description", "default_output_destination"):
        if key in call.data:
            fields[key] = call.text(key)
    fields.update(call.given_items("tags", "system_tags"))
    if fields:
        project.update(fields, last_update=now())
        call.tx.put("projects", project)
    return {"updated": 1 if fields else 0, "fields": fields}


@endpoint("projects.delete", fields={"project": ID, "force": FLAG})
def delete(call: Call) -> dict[str, Any]:
    project_id = call.id("project")
    get(call.tx, project_id)
    tasks = call.tx.find("tasks", "project = ?", (project_id,))
    if tasks and not call.flag("force"):
        raise errors.validation_error(f"project has {len(tasks)} tasks; pass force to delete it anyway")
    return {"deleted": call.tx.delete("projects", project_id), "disassociated_tasks": len(tasks)}
