"""The pages' reads and writes: API calls through `App.handle` with the session's token (never around it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from clearml_task.server.app import App


class PageError(Exception):
    """An API call a page made was refused: the page says why, with the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# API subcodes that mean "no such document": the page answers 404.
_NOT_FOUND_SUBCODES = {101, 401, 701}


@dataclass
class Ui:
    """One page request: the app, the request, the session's token and CSRF token, and its API calls."""

    app: App
    request: Request
    token: str
    csrf: str
    identity: dict[str, Any] = field(default_factory=dict)
    _user_names: dict[str, str] | None = field(default=None, init=False, repr=False)

    def api(self, endpoint: str, **data: Any) -> dict[str, Any]:
        code, envelope = self.app.handle(
            f"/{endpoint}", json.dumps(data).encode(), authorization=f"Bearer {self.token}"
        )
        if code != 200:
            meta = envelope["meta"]
            status = 404 if meta["result_subcode"] in _NOT_FOUND_SUBCODES else code
            raise PageError(status, f"{endpoint}: {meta['result_msg']}")
        result: dict[str, Any] = envelope["data"]
        return result

    def projects(self) -> dict[str, str]:
        """Project id -> name, for every project."""
        found = self.api("projects.get_all", only_fields=["id", "name"], order_by=["name"])
        return {p["id"]: p["name"] for p in found["projects"]}

    def queues(self) -> list[dict[str, Any]]:
        return list(self.api("queues.get_all", order_by=["name"])["queues"])

    def user_name(self, user: str | None) -> str:
        """A task's user (an id) as the name users.get_all gives it, read once a page; an id no user has
        any longer (removed from users.json) is shown short."""
        if not user:
            return ""
        if self._user_names is None:
            found = self.api("users.get_all")["users"]
            self._user_names = {str(u["id"]): str(u.get("name") or u["id"]) for u in found}
        return self._user_names.get(user) or user[:8]
