"""auth.*: log in with the key pair (HTTP Basic) and get a token."""

from __future__ import annotations

from typing import Any

from clearml_task.server.endpoints import Call, endpoint
from clearml_task.server.fields import Int


@endpoint("auth.login", write=False, fields={"expiration_sec": Int(0, 2**31)})
def login(call: Call) -> dict[str, Any]:
    user = call.tokens.user_of(call.identity)
    token = call.tokens.issue(
        user, call.integer("expiration_sec"), login_time=call.login_time, session=call.session or None
    )  # a token refreshed from another stays in its session: a logout of that session revokes it too
    return {"token": token}
