"""Git URLs: which are local paths, which a task may name (the schemes git may use), how to fetch from
them, their repository name, and credentials — the only place that removes them (from a URL, or from any
text: git's output, requirement lines, index options)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# The transports git may use, for the GIT_ALLOW_PROTOCOL of every git we run: never `ext::` (which runs a
# command), `fd::` or another remote helper, for a task's repository or for a submodule it names.
ALLOWED_PROTOCOLS = ("https", "http", "ssh", "git", "file")
GIT_ALLOW_PROTOCOL = ":".join(ALLOWED_PROTOCOLS)

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_REMOTE_HELPER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")  # <transport>::<address>
# A scheme is at most 32 characters: each place in a text is tried against that many, not against the whole
# run of letters after it (a long one took time growing with its square).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s'\"<>`]+")
# Schemes where the user name is a login, not a secret (ssh://git@host): kept, its password dropped.
_LOGIN_SCHEMES = {"ssh", "git+ssh", "ssh+git"}
# Query parameters that carry credentials (GitLab's private_token, OAuth's access_token, signed URLs...).
_SECRET_PARAMETER = re.compile(
    r"(?i)^(private_token|access_token|refresh_token|id_token|auth_token|job_token|oauth_token|token|key|"
    r"api_key|apikey|access_key|secret|client_secret|password|passwd|pwd|sig|signature|x-amz-signature|"
    r"x-amz-credential|x-amz-security-token)$"
)


def public_url(url: str) -> str:
    """The URL without credentials: the user info of any scheme (ssh keeps its login name, never a password)
    and query parameters that carry tokens. Paths and scp-like addresses (git@host:org/repo) are kept."""
    match = _SCHEME.match(url)
    if not match:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed host ("http://[x"): drop whatever sits before an @ anyway
        return re.sub(r"^([^:]+://)[^/@]*@", r"\1", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        login = userinfo.split(":", 1)[0]
        netloc = f"{login}@{host}" if match[1].lower() in _LOGIN_SCHEMES and login else host
    query = "&".join(
        item for item in parts.query.split("&") if not _SECRET_PARAMETER.match(item.split("=", 1)[0])
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def scrub(text: str) -> str:
    """`text` (git's or uv's output, a requirement line) with the credentials of every URL in it removed."""
    return _URL_IN_TEXT.sub(lambda found: public_url(found[0]), text)


def is_local_path(url: str) -> bool:
    """A path on this machine, not a URL (scheme://...) nor scp-like (user@host:path / host:path)."""
    if _SCHEME.match(url):
        return False
    return not re.match(r"^[^/]+@[^/:]+:|^[^/:]+:[^/]", url)


def repository_problem(url: str) -> str:
    """Why git must not be handed `url` as a repository, or "" when it may: a value that git would read as
    an option, a remote helper (`ext::` runs a command), or a scheme git may not use here."""
    if not url:
        return "it is empty"
    if url.startswith("-"):
        return "it starts with '-', which git would read as an option"
    if any(ord(char) < 32 or ord(char) == 127 for char in url):
        return "it holds control characters"
    if _REMOTE_HELPER.match(url):
        return "it names a git remote helper (transport::address), which may run a command"
    scheme = _SCHEME.match(url)
    if scheme:
        if scheme[1].lower() not in ALLOWED_PROTOCOLS:
            allowed = ", ".join(ALLOWED_PROTOCOLS)
            return f"its scheme {scheme[1]}:// is not one the launcher lets git use ({allowed})"
        host = url[scheme.end() :].split("/", 1)[0].rsplit("@", 1)[-1]
        if host.startswith("-"):
            return "its host starts with '-', which ssh would read as an option"
        return ""
    if not is_local_path(url) and url.split(":", 1)[0].rsplit("@", 1)[-1].startswith("-"):
        return "its host starts with '-', which ssh would read as an option"
    return ""


def fetchable(url: str) -> str:
    """Local paths become file:// URLs, so shallow and filtered fetches work on them too."""
    return Path(url).resolve().as_uri() if is_local_path(url) else url


def repository_name(url: str) -> str:
    """The last part of the URL's path without `.git` ("proj" for git@host:org/proj.git), as it may appear
    in a file name; "repository" when nothing is left."""
    base = re.split(r"[/:]", public_url(url).split("?", 1)[0].rstrip("/"))[-1].removesuffix(".git")
    return re.sub(r"[^A-Za-z0-9._-]", "_", base).strip(".") or "repository"
