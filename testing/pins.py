"""What a detected requirement line looks like on this machine: pinned to the installed version."""

from __future__ import annotations

from importlib import metadata

from packaging.version import Version


def expected(distribution: str) -> str:
    """The line for `distribution`: pinned to the installed version (public part), else just its name."""
    try:
        found = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return distribution
    return f"{found.metadata['Name']}=={Version(found.version).public}"
