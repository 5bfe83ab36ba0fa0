"""Which untracked files look like secrets: they stay out of a task's patch unless the user says otherwise
(`--include-secrets`). Tracked files are the user's choice and travel as they are."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

# Matched against a file's name (lower-cased): keys, certificates, dotenv files, tool credentials.
NAME_PATTERNS = (
    ".env*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", ".netrc", "_netrc", ".pypirc", ".git-credentials", "credentials.json", "kubeconfig",
    "kubeconfig.*", "*.kubeconfig",
)  # fmt: skip
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


def among(paths: Iterable[str]) -> list[str]:
    """The paths that look like secrets, in order."""
    return [path for path in paths if looks_secret(path)]
