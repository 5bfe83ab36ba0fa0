"""The web UI on the embedded server: server-rendered pages at ClearML's web-app paths.

Pages live beside the API on the same port: `/` (and `/login`, `/logout`), `/static/...`, `/projects/...`
and `/workers-and-queues/...`; every other path is the API's. The pages read and act through the same API
endpoints (`App.handle`) with the session's token, so the UI can do nothing the API would refuse.
"""

from __future__ import annotations

import re

_PAGE = re.compile(r"^/(?:|static/.*|projects(?:/.*)?|workers-and-queues(?:/.*)?)$")
_FORMS = ("/login", "/logout")


def is_page(path: str, method: str, authorization: str | None) -> bool:
    """True for the UI's requests: a browser's GET of a page or static file, or the login and logout
    forms. A request with an Authorization header, or a POST elsewhere, is an API call (an API client
    calling `/` gets the API's 400 envelope, as before)."""
    if path in _FORMS:
        return True
    return method in ("GET", "HEAD") and not authorization and bool(_PAGE.match(path))
