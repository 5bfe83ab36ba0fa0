"""Test groups that need an engine (podman, Slurm): skipped with the reason and the install line on a
machine without it, and a failure under CI=true, where .ci/run has installed what they need."""

from __future__ import annotations

import os

import pytest


def require(missing: str | None) -> None:
    """Skip (or, under CI=true, fail) the test when `missing` says why its engine is not here."""
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {missing}", pytrace=False)
    pytest.skip(missing)
