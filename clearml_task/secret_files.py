"""Which untracked files look like secrets, by their name or place, or by a private key's first line in
their first bytes: they stay out of a task's patch unless the user says otherwise (`--include-secrets`).
Tracked files are the user's choice and travel as they are."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from pathlib import Path

# Matched against a file's name (lower-cased): keys, certificates, dotenv files, tool credentials.
NAME_PATTERNS = (
    ".env*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", ".netrc", "_netrc", ".pypirc", ".git-credentials", "credentials.json", "kubeconfig",
    "kubeconfig.*", "*.kubeconfig", ".npmrc", ".pgpass", ".htpasswd", "client_secret*.json",
    "service-account*.json", "service_account*.json", "secrets.yaml", "secrets.yml", "secrets.json",
    "*.tfvars", "*.keystore", "*.jks", "*.ppk", "deploy_key", "deploy_key.pub", ".vault_pass*",
    ".vault-password*",
)  # fmt: skip
SNIFFED_BYTES = 4096  # read of an untracked file to see whether it begins with a private key
# Matched against the end of its path: files whose name alone says nothing.
PATH_SUFFIXES = (".aws/credentials", ".kube/config", ".docker/config.json")


def looks_secret(path: str) -> bool:
    """A repository-relative path ("/"-separated) whose name or place says it holds a secret."""
    name = posixpath.basename(path).lower()
    if any(_matches(name, pattern) for pattern in NAME_PATTERNS):
        return True
    lowered = path.lower()
    return any(lowered == suffix or lowered.endswith(f"/{suffix}") for suffix in PATH_SUFFIXES)


def _matches(name: str, pattern: str) -> bool:
    """fnmatchcase(name, pattern), without compiling a regex for the patterns above: a `*` at one end only."""
    inner = pattern.strip("*")
    if "*" in inner or "?" in inner or "[" in inner or pattern.count("*") > 1:
        import fnmatch

        return fnmatch.fnmatchcase(name, pattern)
    if pattern.startswith("*"):
        return name.endswith(inner)
    if pattern.endswith("*"):
        return name.startswith(inner)
    return name == pattern


def holds_a_private_key(path: Path) -> bool:
    """The file begins with a private key: its first line is `-----BEGIN ... PRIVATE KEY-----` (or a PuTTY
    key's header). A file that only quotes one further down (a test, a parser) is not one."""
    head = _head(path)
    first = head.lstrip().split(b"\n", 1)[0]
    if first.startswith(b"PuTTY-User-Key-File-"):
        return True
    return first.startswith(b"-----BEGIN ") and first.rstrip().endswith(b"PRIVATE KEY-----")


def _head(path: Path) -> bytes:
    """The first bytes of a regular file, read without following a symlink and without waiting (a FIFO, a
    device, a link to one: b"")."""
    import os
    import stat

    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return b""
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        return os.read(descriptor, SNIFFED_BYTES)
    except OSError:
        return b""
    finally:
        os.close(descriptor)


def among(paths: Iterable[str], root: Path | None = None, requirements: Iterable[str] = ()) -> list[str]:
    """The paths that look like secrets, in order: by name or place, and (files under `root`) by content: a
    private key, or, in a requirements file given with --requirements (`requirements`), a URL with
    credentials (the task records its lines without them, so the file itself need not travel)."""
    given = set(requirements)
    return [
        path
        for path in paths
        if looks_secret(path)
        or (root is not None and holds_a_private_key(root / path))
        or (root is not None and path in given and _holds_credentials(root / path))
    ]


def _holds_credentials(path: Path) -> bool:
    """A URL in the file carries a password or token (what clearml_task.git.urls.scrub removes)."""
    from clearml_task.git.urls import scrub

    try:
        if path.is_symlink() or not path.is_file():  # a FIFO is never read
            return False
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return scrub(text) != text
