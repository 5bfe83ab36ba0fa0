"""API errors with ClearML's HTTP codes and subcodes (the clients branch on them).

Messages follow ClearML's style: "<Default message> (<detail>): key=value, ...".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class APIError(Exception):
    def __init__(self, code: int, subcode: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.subcode = subcode
        self.msg = msg


ErrorFactory = Callable[..., APIError]


def _error(code: int, subcode: int, default_msg: str) -> ErrorFactory:
    def make(detail: str = "", **data: Any) -> APIError:
        text = f"{default_msg} ({detail})" if detail else default_msg
        if data:
            text += ": " + ", ".join(f"{k}={v}" for k, v in data.items())
        return APIError(code, subcode, text)

    return make


# 400 bad request
bad_request = _error(400, 0, "Bad request")
unknown_endpoint = _error(400, 0, "Unable to find endpoint")
missing_field = _error(400, 11, "Missing required fields")
validation_error = _error(400, 12, "Validation error")
empty_batch = _error(400, 17, "Batch request contains no items")
invalid_task_id = _error(400, 101, "Invalid task id")
invalid_task_status = _error(400, 110, "Invalid task status")
events_not_added = _error(400, 131, "Events not added")
invalid_project_id = _error(400, 401, "Invalid project id")
invalid_project_name = _error(400, 407, "Invalid project name")
invalid_model_id = _error(400, 201, "Invalid model id")
invalid_queue_id = _error(400, 701, "Invalid queue id")
queue_not_empty = _error(400, 702, "Queue is not empty")
task_not_queued = _error(400, 703, "Invalid queue id or task not in queue")
task_already_queued = _error(400, 706, "Task already exists in queue")
no_default_queue = _error(400, 707, "No queue is tagged as the default queue for this company")
multiple_default_queues = _error(400, 708, "More than one queue is tagged as the default queue")
invalid_worker_id = _error(400, 1001, "Invalid worker id")
not_unique = _error(400, 801, "Value combination already exists (unique field already contains this value)")

# 413 payload too large (checked before the body is read)
body_too_large = _error(413, 0, "Request body too large")

# 401 unauthorized
bad_auth_type = _error(401, 10, "Bad auth type")
missing_credentials = _error(401, 20, "Unauthorized (missing credentials)")
bad_credentials = _error(401, 21, "Unauthorized (malformed credentials)")
invalid_credentials = _error(401, 22, "Unauthorized (invalid credentials)")
invalid_token = _error(401, 30, "Invalid token")
