"""server.*: what this server is."""

from __future__ import annotations

from typing import Any

from clearml_task.server.endpoints import Call, endpoint
from clearml_task.vocabulary import API_VERSION, SERVER_VERSION


@endpoint("server.info", write=False, fields={})
def info(call: Call) -> dict[str, Any]:
    return {"version": SERVER_VERSION, "build": "", "commit": "", "api_version": API_VERSION}
