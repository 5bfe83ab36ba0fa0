"""Git URLs: which are local paths, how to fetch from them, their repository name, and credentials —
the only place that removes them (from a URL, or from any text git printed)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# user:token@ (or a lone token) right after an http(s) scheme, anywhere in a text
_HTTP_CREDENTIALS = re.compile(r"(https?://)[^/\s@]+@")


def public_url(url: str) -> str:
    """The remote URL without credentials: user:token@ (or a lone token as user) never leaves."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=host))
    if parts.scheme and "@" in parts.netloc and ":" in parts.netloc.split("@", 1)[0]:
        user, host = parts.netloc.rsplit("@", 1)
        return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}@{host}"))
    return url


def scrub(text: str) -> str:
    """`text` (git's output, say) with the credentials of every http(s) URL in it removed."""
    return _HTTP_CREDENTIALS.sub(r"\1", text)


def is_local_path(url: str) -> bool:
    """A path on this machine, not a URL (scheme://...) nor scp-like (user@host:path / host:path)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        return False
    return not re.match(r"^[^/]+@[^/:]+:|^[^/:]+:[^/]", url)


def fetchable(url: str) -> str:
    """Local paths become file:// URLs, so shallow and filtered fetches work on them too."""
    return Path(url).resolve().as_uri() if is_local_path(url) else url


def repository_name(url: str) -> str:
    """The last part of the URL's path without `.git` ("proj" for git@host:org/proj.git), as it may appear
    in a file name; "repository" when nothing is left."""
    base = re.split(r"[/:]", public_url(url).rstrip("/"))[-1].removesuffix(".git")
    return re.sub(r"[^A-Za-z0-9._-]", "_", base).strip(".") or "repository"
