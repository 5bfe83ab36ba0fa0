"""Fixtures the end-to-end tests share: ClearML's tools and one home for our launcher."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from testing.interop import Tools, ensure_tools


@pytest.fixture(scope="session")
def tools(request: pytest.FixtureRequest) -> Tools:
    """ClearML's clearml and clearml-agent, pinned, in a venv cached between sessions (progress is printed
    past pytest's capture: the first install takes a while)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(line, flush=True)

    return ensure_tools(say)


@pytest.fixture(scope="session")
def launcher_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CLEARML_TASK_HOME for our launcher in these tests, so that they share its env cache (with clearml
    from PyPI in it)."""
    return tmp_path_factory.mktemp("launcher-home")
