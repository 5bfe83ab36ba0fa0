"""The Session: ephemeral mode, HTTP mode from the environment, token refresh, retries, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearml_task.api import Client, Session
from clearml_task.config import ServerConfig, resolve
from clearml_task.errors import APICallError, UserError
from clearml_task.server.app import App
from clearml_task.server.serve import free_port
from testing.servers import ServerProcess, SilentServer, embedded_config, http_config


def test_ephemeral_mode_keeps_data_in_clearml_task_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEARML_TASK_HOME", str(tmp_path / "home"))
    first = Client()
    assert first.session.config.embedded
    task_id = first.create_task({"name": "persisted", "type": "training"})
    assert (tmp_path / "home" / "server" / "clearml.db").is_file()
    assert Client().get_task(task_id)["name"] == "persisted"  # a second session (process) sees it


def test_http_mode_from_the_environment(http_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = http_server.keys
    monkeypatch.setenv("CLEARML_API_HOST", http_server.url)
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", keys["access_key"])
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", keys["secret_key"])
    client = Client()
    assert client.session.where == http_server.url
    task_id = client.create_task({"name": "over http", "type": "training"})
    with App(http_server.data_dir).store.transaction(write=False) as tx:
        assert tx.get("tasks", task_id) is not None


def test_token_is_cached_and_refreshed_after_401(session: Session) -> None:
    session.call("queues.get_all")
    token = session.token()
    session.call("queues.get_all")
    assert session.token() == token  # cached
    session._token = "expired.or.revoked"
    assert "queues" in session.call("queues.get_all")  # went through: the 401 led to a new login
    assert session.token() != "expired.or.revoked"


def test_errors_name_the_endpoint_and_the_servers_message(session: Session) -> None:
    with pytest.raises(APICallError) as e:
        session.call("tasks.get_by_id", {"task": "0" * 32})
    assert "tasks.get_by_id" in str(e.value) and "Invalid task id" in str(e.value)
    assert (e.value.code, e.value.subcode) == (400, 101)


def test_wrong_credentials_are_a_clear_error_without_the_secret(
    http_server: ServerProcess, tmp_path: Path
) -> None:
    config = ServerConfig(http_server.url, None, None, "WRONG", "super-secret-value", "test config", tmp_path)
    with pytest.raises(UserError) as e:
        Session(config, retries=1).call("queues.get_all")
    assert "rejected the credentials from test config" in str(e.value)
    assert "super-secret-value" not in str(e.value)


def test_credentials_in_the_server_url_stay_out_of_messages(tmp_path: Path) -> None:
    port = free_port()
    retried: list[str] = []
    config = ServerConfig(f"http://someone:url-secret@127.0.0.1:{port}", None, None, "K", "S", "t", tmp_path)
    session = Session(config, retries=2, backoff=0.01, on_retry=retried.append)
    with pytest.raises(UserError) as e:
        session.call("queues.get_all")
    assert f"cannot reach the ClearML server at http://127.0.0.1:{port} " in str(e.value)
    assert retried and "url-secret" not in str(e.value) + "".join(retried)


def test_unreachable_server_is_retried_then_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    retried: list[str] = []
    config = ServerConfig(url, None, None, "K", "S", "test", tmp_path)
    session = Session(config, retries=3, backoff=0.01, on_retry=retried.append)
    with pytest.raises(UserError) as e:
        session.call("queues.get_all")
    assert f"cannot reach the ClearML server at {url}" in str(e.value)
    assert len(retried) == 2


def test_a_session_that_never_gives_up_gives_up_once_stopped(tmp_path: Path) -> None:
    """retries=None waits out any outage, but not once its `stop` is set (a daemon's SIGTERM): the call in
    progress gets TRIES_WHEN_STOPPING tries from then on, and the wait it was in is cut short."""
    from clearml_task.api import session as session_module

    url = f"http://127.0.0.1:{free_port()}"
    retried: list[str] = []
    session = Session(ServerConfig(url, None, None, "K", "S", "test", tmp_path), retries=None, backoff=60,
                      on_retry=retried.append)  # fmt: skip
    session.stop = threading.Event()
    threading.Timer(0.5, session.stop.set).start()
    started = time.monotonic()
    with pytest.raises(UserError) as e:
        session.call("queues.get_all")
    assert time.monotonic() - started < 10  # the first wait alone was 60 s
    assert f"cannot reach the ClearML server at {url}" in str(e.value)
    assert len(retried) == session_module.TRIES_WHEN_STOPPING  # a line after each try but the last


@pytest.fixture
def silent() -> Iterator[str]:
    server = SilentServer()
    yield server.url
    server.stop()


def test_a_server_that_does_not_answer_is_one_error_after_one_wait(silent: str, tmp_path: Path) -> None:
    """A person's command (a session with a number of tries) waits once for an answer, then says so: the
    server is there but stuck; trying again would hold the command for minutes."""
    retried: list[str] = []
    session = Session(ServerConfig(silent, None, None, "K", "S", "test", tmp_path), retries=6, backoff=0.01,
                      on_retry=retried.append)  # fmt: skip
    session.transport.timeout = 0.3  # type: ignore[attr-defined]
    with pytest.raises(UserError) as e:
        session.call("queues.get_all")
    assert e.value.message == f"the ClearML server at {silent} did not answer auth.login within 0.3s"
    assert retried == []


def test_a_patient_session_tries_a_silent_server_again(silent: str, tmp_path: Path) -> None:
    """What runs unattended with a number of tries (`clearml-launcher execute`, whose run's final status
    must get through; the cluster glue) tries again after a try that got no answer."""
    retried: list[str] = []
    session = Session(ServerConfig(silent, None, None, "K", "S", "test", tmp_path), retries=3, backoff=0.01,
                      on_retry=retried.append, patient=True)  # fmt: skip
    session.transport.timeout = 0.3  # type: ignore[attr-defined]
    with pytest.raises(UserError) as e:
        session.call("queues.get_all")
    assert f"cannot reach the ClearML server at {silent}" in e.value.message
    assert len(retried) == 2 and all("TimeoutError" in line for line in retried)


def test_a_session_that_never_gives_up_waits_for_a_silent_server_until_stopped(
    silent: str, tmp_path: Path
) -> None:
    """A daemon's session (retries=None) tries again after each unanswered wait; once stopped, an
    unanswered try is the last."""
    retried: list[str] = []
    session = Session(ServerConfig(silent, None, None, "K", "S", "test", tmp_path), retries=None,
                      backoff=0.01, on_retry=retried.append)  # fmt: skip
    session.transport.timeout = 0.3  # type: ignore[attr-defined]
    session.stop = threading.Event()
    threading.Timer(1.5, session.stop.set).start()
    with pytest.raises(UserError) as e:
        session.call("queues.get_all")
    assert "did not answer auth.login within 0.3s" in e.value.message
    assert len(retried) >= 2 and all("TimeoutError" in line for line in retried)


def test_a_session_that_is_stopped_waits_a_few_seconds_for_an_answer(silent: str, tmp_path: Path) -> None:
    """Once a daemon is leaving, a try waits STOPPING_TIMEOUT for an answer, not the patient 60 s."""
    from clearml_task.api import session as session_module

    session = Session(ServerConfig(silent, None, None, "K", "S", "test", tmp_path), retries=None,
                      on_retry=lambda _: None)  # fmt: skip
    session.stop = threading.Event()
    session.stop.set()
    with pytest.raises(UserError) as e:
        session.call("queues.get_all")
    assert e.value.message.endswith(f"did not answer auth.login within {session_module.STOPPING_TIMEOUT:g}s")


class Flaky:
    """A WSGI layer in front of the real app that answers `code` to the first `failures` requests:
    a stand-in for an overloaded proxy, not for our server."""

    def __init__(self, app: App, code: int, failures: int) -> None:
        self.app, self.code, self.failures = app, code, failures
        self.seen = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.seen += 1
        if self.seen <= self.failures:
            start_response(f"{self.code} Busy", [("Content-Type", "text/html")])
            return [b"<html>busy</html>"]
        return self.app(environ, start_response)


@pytest.fixture
def flaky_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Flaky]]:
    from werkzeug.serving import make_server

    code, failures = request.param
    flaky = Flaky(App(tmp_path / "flaky"), code, failures)
    server = make_server("127.0.0.1", 0, flaky, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", flaky
    server.shutdown()
    thread.join()


@pytest.mark.parametrize("flaky_server", [(429, 2), (502, 2), (503, 3), (504, 1)], indirect=True)
def test_busy_answers_are_retried_with_backoff(flaky_server: tuple[str, Flaky], tmp_path: Path) -> None:
    url, flaky = flaky_server
    keys = flaky.app.keys
    retried: list[str] = []
    config = ServerConfig(url, None, None, keys.access_key, keys.secret_key, "test", tmp_path)
    session = Session(config, retries=5, backoff=0.01, on_retry=retried.append)
    assert "queues" in session.call("queues.get_all")
    assert len(retried) == flaky.failures
    assert all(f"HTTP {flaky.code}" in line for line in retried)


@pytest.mark.parametrize("flaky_server", [(503, 100)], indirect=True)
def test_a_server_that_stays_busy_ends_in_an_error(flaky_server: tuple[str, Flaky], tmp_path: Path) -> None:
    url, flaky = flaky_server
    config = ServerConfig(
        url, None, None, flaky.app.keys.access_key, flaky.app.keys.secret_key, "t", tmp_path
    )
    with pytest.raises(UserError) as e:
        Session(config, retries=3, backoff=0.01, on_retry=lambda _: None).call("queues.get_all")
    assert "HTTP 503" in str(e.value)


def test_resolve_reads_a_served_config(
    http_server: ServerProcess, tmp_path: Path, isolated_env: Path
) -> None:
    """The `api { ... }` block `clearml-launcher server` prints is a working clearml.conf."""
    from clearml_task.server.serve import api_block

    keys = http_server.keys
    (isolated_env / "clearml.conf").write_text(
        api_block(http_server.url, keys["access_key"], keys["secret_key"])
    )
    found = resolve({})
    assert found.api_server == http_server.url
    assert "queues" in Session(found).call("queues.get_all")
    assert http_config(http_server, tmp_path).access_key == found.access_key
    assert embedded_config(tmp_path).embedded


def test_look_ahead_keeps_only_answers_that_name_the_queue_and_project(session: Session) -> None:
    """What clearml-task asks while git runs: an answer that names the queue (project) is used once by
    queue_id (project_id); one that does not is asked again, so what was created meanwhile is found."""
    other = Client(session)
    queue = other.queue_id("ahead-queue", create=True)
    client = Client(session)
    client.look_ahead("ahead-queue", "ahead-project")  # the project does not exist yet
    project = other.project_id("ahead-project")  # ... and is created meanwhile
    other.call("queues.delete", {"queue": queue, "force": True})
    assert client.queue_id("ahead-queue") == queue  # the answer from before
    assert client.project_id("ahead-project", create=False) == project  # asked again: found
    with pytest.raises(UserError, match="no queue named 'ahead-queue'"):
        client.queue_id("ahead-queue")  # used once: asked again


class Garbling:
    """Our app, except that one endpoint answers `body` (a server that is not quite ClearML's)."""

    def __init__(self, app: App, endpoint: str, body: bytes) -> None:
        self.app, self.endpoint, self.body = app, endpoint, body

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"].endswith(f"/{self.endpoint}"):
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("200 OK", [("Content-Type", "application/json")])
            return [self.body]
        return self.app(environ, start_response)


_OK = '{"meta": {"result_code": 200}, "data": %s}'


@pytest.mark.parametrize(
    ("endpoint", "body", "said"),
    [
        ("auth.login", '{"meta": "x", "data": "y"}', "is not a ClearML API answer"),
        ("auth.login", '{"meta": {"result_code": "abc"}}', "is not a ClearML API answer"),
        ("queues.get_all", _OK % '{"queues": "none"}', "has no list of objects in 'queues'"),
        ("queues.get_all", _OK % "{}", "has no 'queues'"),
        ("queues.get_all", _OK % '{"queues": [{"id": "q"}]}', "has no 'name'"),
        ("projects.get_all", _OK % '{"projects": [{"name": "demo"}]}', "has no 'id'"),
        ("tasks.create", _OK % '{"id": 5}', "has no id in 'id'"),
    ],
)  # fmt: skip
def test_a_server_answering_garbage_is_a_one_line_error(
    tmp_path: Path, endpoint: str, body: str, said: str
) -> None:
    from werkzeug.serving import make_server

    from testing.commands import assert_one_line_error, run
    from testing.repos import make_repo

    app = App(tmp_path / "srv")
    server = make_server("127.0.0.1", 0, Garbling(app, endpoint, body.encode()), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        script = make_repo(tmp_path / "repo", "quickstart").work / "train.py"
        env = {
            "CLEARML_API_HOST": f"http://127.0.0.1:{server.server_port}",
            "CLEARML_API_ACCESS_KEY": app.keys.access_key,
            "CLEARML_API_SECRET_KEY": app.keys.secret_key,
        }
        flags = ("--project", "demo", "--name", "garbage", "--script", str(script), "--queue", "default")
        said = f"answered {endpoint} with an answer that {said}"
        assert_one_line_error(run("clearml-task", *flags, env=env), 1, said)
    finally:
        server.shutdown()
        thread.join()
