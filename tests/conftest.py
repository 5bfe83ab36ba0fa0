"""Shared fixtures: the real server over loopback HTTP (a `clearml-launcher server` subprocess) and in
process, behind the same two interfaces, so every endpoint test runs against both."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearml_task.api import Client, Session
from clearml_task.server.app import App
from testing.servers import Raw, ServerProcess, embedded_config, http_config, start_server, stop_server


@pytest.fixture(scope="session")
def uv_downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uv cache for the run (as an operator's UV_CACHE_DIR): each wheel is downloaded once, not by every
    test whose task builds an environment (the clearml SDK alone is 24 packages)."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uv_downloads: Path) -> Path:
    """No test sees the developer's ~/clearml.conf, credentials, data dir or uv cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLEARML_TASK_HOME", str(tmp_path / "clearml-task-home"))
    monkeypatch.setenv("UV_CACHE_DIR", str(uv_downloads))
    for var in (
        "CLEARML_CONFIG_FILE",
        "CLEARML_API_HOST",
        "CLEARML_WEB_HOST",
        "CLEARML_FILES_HOST",
        "CLEARML_API_ACCESS_KEY",
        "CLEARML_API_SECRET_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    if sys.prefix != sys.base_prefix:  # run from a venv: as when it is activated (its packages are the pins)
        monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    return home


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("http") / "server")
    yield server
    stop_server(server)


@pytest.fixture(params=["inprocess", "http"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Session:
    """A Session on the embedded server, in process or over loopback HTTP."""
    if request.param == "http":
        return Session(http_config(request.getfixturevalue("http_server"), tmp_path), retries=2)
    return Session(embedded_config(tmp_path / "embedded"), retries=2)


@pytest.fixture
def client(session: Session) -> Client:
    return Client(session)


@pytest.fixture(params=["inprocess", "http"])
def raw(request: pytest.FixtureRequest, tmp_path: Path) -> Raw:
    if request.param == "http":
        server: ServerProcess = request.getfixturevalue("http_server")
        keys = server.keys
        return Raw("http", url=server.url, keys=(keys["access_key"], keys["secret_key"]))
    app = App(tmp_path / "raw-server")
    return Raw("inprocess", app=app, keys=(app.keys.access_key, app.keys.secret_key))
