"""users.*: who the caller is, and who else may call (the key pairs of users.py), in ClearML's shape."""

from __future__ import annotations

from typing import Any

from clearml_task.server.auth import COMPANY_ID
from clearml_task.server.endpoints import Call, endpoint
from clearml_task.server.fields import MATCHING
from clearml_task.server.users import User


def _doc(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "given_name": user.name,
        "family_name": "",
        "company": {"id": COMPANY_ID, "name": "clearml-task"},
        "role": "user",
        "created": user.created or None,
    }


@endpoint("users.get_current_user", write=False, fields={})
def get_current_user(call: Call) -> dict[str, Any]:
    return {"user": _doc(call.tokens.user_of(call.identity)), "getting_started": {}, "settings": {}}


@endpoint("users.get_all", write=False, fields={"id": MATCHING, "name": MATCHING})
def get_all(call: Call) -> dict[str, Any]:
    ids, names = call.items("id"), call.items("name")
    found = [
        _doc(u)
        for u in call.tokens.users.all()
        if (ids is None or u.id in ids) and (names is None or u.name in names)
    ]
    return {"users": found}
