"""debug.*: health."""

from __future__ import annotations

from typing import Any

from clearml_task.server.endpoints import Call, endpoint


@endpoint("debug.ping", write=False, auth=False, fields={})
def ping(call: Call) -> dict[str, Any]:
    return {**call.data, "msg": "ClearML server"}
