"""The embedded server against a client on loopback that means harm: tokens, users, body limits, idle
connections, poisoned writes, catastrophic regexes and file modes."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from werkzeug.test import Client

from clearml_task.errors import UserError
from clearml_task.server import services, users
from clearml_task.server.app import DB_FILE, App
from clearml_task.server.auth import CREDENTIALS_FILE, MAX_EXPIRATION_SEC
from clearml_task.server.body import MAX_BODY_ENV, UNAUTHENTICATED_MAX_BODY
from clearml_task.server.endpoints import ENDPOINTS
from launcher.cli import main as launcher
from testing.servers import Raw
from testing.waitress_thread import serving

assert services  # importing it registers the endpoints


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def call(app: App, endpoint: str, token: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body or {}).encode()
    code, envelope = app.handle(f"/{endpoint}", data, authorization=f"Bearer {token}")
    return code, envelope


def login(app: App, access: str, secret: str, **body: Any) -> tuple[int, dict[str, Any]]:
    basic = Raw("inprocess", app=app, keys=(access, secret)).basic()
    return app.handle("/auth.login", json.dumps(body).encode(), authorization=basic)


def token_of(app: App, access: str, secret: str, **body: Any) -> str:
    code, envelope = login(app, access, secret, **body)
    assert code == 200, envelope
    token: str = envelope["data"]["token"]
    return token


def first_token(app: App) -> str:
    return token_of(app, app.keys.access_key, app.keys.secret_key)


# Every endpoint refuses callers without a valid token
@pytest.fixture(scope="module")
def revoked(tmp_path_factory: pytest.TempPathFactory) -> tuple[App, str]:
    """An app, and the token of a user removed since it logged in."""
    data_dir = tmp_path_factory.mktemp("revoked") / "server"
    app = App(data_dir, environ={})
    gone = users.add(data_dir, "gone")
    token = token_of(app, gone.access_key, gone.secret_key)
    assert call(app, "tasks.get_all", token)[0] == 200
    users.remove(data_dir, "gone")
    return app, token


AUTHORIZATIONS = {
    "no token": None,
    "bad token": "Bearer not.a.token",
    "basic keys": "Basic " + "QUJDOmRlZg==",  # only auth.login takes keys, and these are wrong
    "removed user": "<revoked>",
}


@pytest.mark.parametrize("case", sorted(AUTHORIZATIONS))
@pytest.mark.parametrize("endpoint", sorted(name for name, found in ENDPOINTS.items() if found.auth))
def test_every_endpoint_refuses_a_caller_without_a_valid_token(
    revoked: tuple[App, str], endpoint: str, case: str
) -> None:
    app, revoked_token = revoked
    authorization = AUTHORIZATIONS[case]
    if authorization == "<revoked>":
        authorization = f"Bearer {revoked_token}"
    code, envelope = app.handle(f"/{endpoint}", b"{}", authorization=authorization)
    assert code == 401, (endpoint, case, envelope["meta"])
    assert envelope["data"] == {}


def test_only_debug_ping_is_open() -> None:
    assert sorted(name for name, found in ENDPOINTS.items() if not found.auth) == ["debug.ping"]
    assert len(ENDPOINTS) > 45


# Tokens are bound to the secret, and refreshing them never extends the login
def test_rotating_the_secret_in_the_environment_revokes_tokens(tmp_path: Path) -> None:
    before = {"CLEARML_API_ACCESS_KEY": "ACCESS", "CLEARML_API_SECRET_KEY": "secret-one"}
    token = token_of(App(tmp_path, environ=before), "ACCESS", "secret-one")
    assert call(App(tmp_path, environ=before), "tasks.get_all", token)[0] == 200  # a restart keeps it
    after = App(tmp_path, environ={**before, "CLEARML_API_SECRET_KEY": "secret-two"})
    code, envelope = call(after, "tasks.get_all", token)
    assert (code, envelope["meta"]["result_subcode"]) == (401, 30)
    assert call(after, "tasks.get_all", token_of(after, "ACCESS", "secret-two"))[0] == 200


def test_rotating_the_stored_secret_revokes_tokens(tmp_path: Path) -> None:
    app = App(tmp_path, environ={})
    token = first_token(app)
    path = tmp_path / CREDENTIALS_FILE
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "secret_key": "a new secret"}))
    assert call(App(tmp_path, environ={}), "tasks.get_all", token)[0] == 401


def test_a_refreshed_token_never_outlives_the_original_login(tmp_path: Path) -> None:
    app = App(tmp_path, environ={})
    long_ago = int(time.time()) - MAX_EXPIRATION_SEC + 3600  # logged in almost a year ago
    old = app.tokens.issue(app.users.first, login_time=long_ago)
    assert jwt.decode(old, options={"verify_signature": False})["exp"] <= long_ago + MAX_EXPIRATION_SEC
    code, envelope = call(app, "auth.login", old, {"expiration_sec": MAX_EXPIRATION_SEC})
    assert code == 200
    fresh = jwt.decode(envelope["data"]["token"], options={"verify_signature": False})
    assert fresh["auth_time"] == long_ago
    assert fresh["exp"] <= long_ago + MAX_EXPIRATION_SEC
    assert fresh["exp"] - time.time() < 3700  # not another year


def test_a_login_with_keys_starts_a_new_chain(tmp_path: Path) -> None:
    app = App(tmp_path, environ={})
    claims = jwt.decode(
        first_token(
            app,
        ),
        options={"verify_signature": False},
    )
    assert abs(claims["auth_time"] - time.time()) < 60


# Users
def test_users_have_their_own_keys_identity_and_tasks(tmp_path: Path) -> None:
    app = App(tmp_path, environ={})
    alice = users.add(tmp_path, "alice")  # while the app runs: it rereads the users file
    token = token_of(app, alice.access_key, alice.secret_key)
    code, envelope = call(app, "users.get_current_user", token)
    assert code == 200
    assert (envelope["data"]["user"]["id"], envelope["data"]["user"]["name"]) == (alice.id, "alice")
    code, envelope = call(app, "tasks.create", token, {"name": "alice's task", "type": "training"})
    assert code == 200
    task = call(app, "tasks.get_by_id", token, {"task": envelope["data"]["id"]})[1]["data"]["task"]
    assert task["user"] == alice.id
    listed = call(app, "users.get_all", first_token(app))[1]["data"]["users"]
    assert [u["name"] for u in listed] == [users.FIRST_USER, "alice"]
    users.remove(tmp_path, "alice")
    assert call(app, "tasks.get_all", token)[0] == 401
    assert login(app, alice.access_key, alice.secret_key)[0] == 401
    assert call(app, "tasks.get_all", first_token(app))[0] == 200  # the first key pair keeps working


def test_users_file_is_private_and_names_are_unique(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        users.add(tmp_path, "bob")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / users.USERS_FILE).stat().st_mode) == 0o600
    with pytest.raises(UserError):
        users.add(tmp_path, "bob")
    with pytest.raises(UserError):
        users.remove(tmp_path, users.FIRST_USER)
    with pytest.raises(UserError):
        users.remove(tmp_path, "nobody")


def test_launcher_server_manages_users(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "server")
    assert launcher(["server", "--data-dir", data, "--add-user", "carol"]) == 0
    printed = capsys.readouterr().out
    assert "user carol" in printed and "secret_key" in printed
    assert launcher(["server", "--data-dir", data, "--list-users"]) == 0
    listed = capsys.readouterr().out
    assert "carol" in listed and users.FIRST_USER in listed
    assert launcher(["server", "--data-dir", data, "--remove-user", "carol"]) == 0
    assert launcher(["server", "--data-dir", data, "--remove-user", "carol"]) != 0
    assert [u.name for u in users.read(tmp_path / "server" / users.USERS_FILE)] == []


BROKEN_USERS = ["{not json", '{"users": 5}', '{"users": [{"name": "x"}]}', "[]",
                '{"users": [{"name": "x", "access_key": 5, "secret_key": "s"}]}', "\udc80"]  # fmt: skip


@pytest.mark.parametrize("broken", BROKEN_USERS)
def test_a_users_file_broken_while_the_server_runs_lets_in_only_its_own_key_pair(
    tmp_path: Path, broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = App(tmp_path, environ={})
    alice = users.add(tmp_path, "alice")
    token = token_of(app, alice.access_key, alice.secret_key)
    (tmp_path / users.USERS_FILE).write_text(broken, errors="surrogateescape")  # an edit gone wrong
    assert call(app, "tasks.get_all", token)[0] == 401  # no 500, and the edit may have meant to remove her
    assert login(app, alice.access_key, alice.secret_key)[0] == 401
    assert call(app, "tasks.get_all", first_token(app))[0] == 200
    said = capsys.readouterr().err
    assert f"{tmp_path / users.USERS_FILE}" in said and "only the server's own key pair" in said
    assert "Traceback" not in said
    (tmp_path / users.USERS_FILE).unlink()
    users.add(tmp_path, "alice")  # fixed: the users it holds are back
    fixed = users.read(tmp_path / users.USERS_FILE)[0]
    assert call(app, "tasks.get_all", token_of(app, fixed.access_key, fixed.secret_key))[0] == 200


@pytest.mark.parametrize("broken", BROKEN_USERS)
def test_a_server_over_a_broken_users_file_does_not_start_and_says_why(
    tmp_path: Path, broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "server"
    data.mkdir()
    (data / users.USERS_FILE).write_text(broken, errors="surrogateescape")
    assert launcher(["server", "--data-dir", str(data), "--port", "0"]) == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert said and f"{data / users.USERS_FILE}" in said[0] and "is not a users file" in said[0]
    assert "Traceback" not in "\n".join(said)


# File modes
def test_data_dir_and_database_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        app = App(tmp_path / "server", environ={})
        call(app, "tasks.create", first_token(app), {"name": "a task", "type": "training"})
    finally:
        os.umask(old)
    data_dir = tmp_path / "server"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", CREDENTIALS_FILE):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name


# Poisoned writes: refused with a 400 naming the field, and every read still answers
POISON = [
    ("workers.register", '{"worker": "w1", "timeout": ' + "1" + "0" * 400 + "}", "timeout"),
    ("workers.register", '{"worker": "w1", "timeout": 9223372036854775808}', "timeout"),
    ("workers.register", '{"worker": "w1", "timeout": 1e400}', "1e400"),
    ("projects.create", '{"name": "poisoned", "tags": [{"a": 1}]}', "tags"),
    ("projects.create", '{"name": "poisoned", "description": NaN}', "NaN"),
    ("queues.create", '{"name": "poisoned", "system_tags": [1, 2]}', "system_tags"),
    ("tasks.create", '{"name": "poisoned", "type": "training", "tags": "abc"}', "tags"),
    ("tasks.create", '{"name": "poisoned", "type": "training", "script": {"x": Infinity}}', "Infinity"),
    ("tasks.get_all", '{"page_size": 9223372036854775808}', "page_size"),
    ("tasks.get_all", '{"name": ["a", "b"]}', "name"),
    ("tasks.get_all", '{"id": [{"a": 1}]}', "id"),
    ("workers.status_report", '{"worker": "w1", "machine_stats": [1]}', "machine_stats"),
    ("events.add_batch", '{"task": "<task>", "type": "training_stats_scalar", "iter": "abc"}', "iter"),
    ("events.add_batch", '{"task": "<task>", "type": "log", "timestamp": 9223372036854775808}', "9223"),
    ("events.add_batch", '{"task": "<task>", "type": "training_stats_scalar", "value": [1]}', "value"),
    ("tasks.edit_hyper_params", '{"task": "<task>", "hyperparams": [{"section": {}, "name": "x"}]}', "hyper"),
    ("debug.ping", '{"a":' * 50_000 + "1" + "}" * 50_000, "nested"),
    ("projects.create", "[" * 100 + "]" * 100, "nested"),
]


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory) -> tuple[App, str, str]:
    app = App(tmp_path_factory.mktemp("poison") / "server", environ={})
    token = first_token(app)
    task = call(app, "tasks.create", token, {"name": "a task", "type": "training"})[1]["data"]["id"]
    event = {"task": task, "type": "training_stats_scalar", "metric": "m", "variant": "v", "iter": 1}
    assert call(app, "events.add_batch", token, {**event, "value": 1.0})[0] == 200
    assert call(app, "workers.register", token, {"worker": "w1", "tags": ["x"]})[0] == 200
    return app, token, task


def reads(task: str) -> list[tuple[str, dict[str, Any]]]:
    by_tags = {"tags": ["x", "-y"], "system_tags": ["__$all", "a"]}
    return [
        ("projects.get_all", by_tags),
        ("projects.get_all", {"name": "oison"}),
        ("tasks.get_all", by_tags),
        ("queues.get_all", by_tags),
        ("workers.get_all", {}),
        ("tasks.get_by_id", {"task": task}),
        ("events.get_task_log", {"task": task}),
        ("events.get_scalar_metrics_and_variants", {"task": task}),
        ("events.scalar_metrics_iter_histogram", {"task": task}),
        ("tasks.get_hyper_params", {"tasks": [task]}),
        ("users.get_all", {}),
    ]


@pytest.mark.parametrize(
    ("endpoint", "body", "named"), POISON, ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(POISON)]
)
def test_a_poisoned_write_is_refused_and_reads_still_answer(
    poisoned: tuple[App, str, str], endpoint: str, body: str, named: str
) -> None:
    app, token, task = poisoned
    code, envelope = call(app, endpoint, token, raw=body.replace("<task>", task).encode())
    assert 400 <= code < 500, envelope["meta"]
    assert named in envelope["meta"]["result_msg"], envelope["meta"]["result_msg"]
    for read, args in reads(task):
        code, envelope = call(app, read, token, args)
        assert code == 200, (read, envelope["meta"])
        assert json.loads(json.dumps(envelope["data"], allow_nan=False)) == envelope["data"]


# A catastrophic regex takes linear time
def test_a_catastrophic_name_regex_answers_at_once(poisoned: tuple[App, str, str]) -> None:
    app, token, _ = poisoned
    assert call(app, "projects.create", token, {"name": "a" * 28 + "!"})[0] == 200
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        code, envelope = call(app, "projects.get_all", token, {"name": "^(a+)+$"})
        timings.append(time.perf_counter() - started)
        assert (code, envelope["data"]["projects"]) == (200, [])
    # Python's backtracking engine took 9-17 s on this; RE2 takes microseconds (the rest is the call).
    assert min(timings) <= 0.1, timings
    found = call(app, "projects.get_all", token, {"name": "^a+!$"})[1]["data"]["projects"]
    assert [p["name"] for p in found] == ["a" * 28 + "!"]


def test_regex_features_re2_lacks_are_a_400(poisoned: tuple[App, str, str]) -> None:
    app, token, _ = poisoned
    for pattern in ("(a)\\1", "(?=a)", "x" * 2000):
        code, envelope = call(app, "tasks.get_all", token, {"name": pattern})
        assert (code, envelope["meta"]["result_subcode"]) == (400, 12), pattern


def test_a_name_regex_too_large_for_re2s_dfa_is_a_400(poisoned: tuple[App, str, str]) -> None:
    """`(a|aa){999}b` compiles to 5000 RE2 instructions: past its DFA's memory RE2 falls back to its NFA,
    which took ten minutes over an 8 MB name. Over 1000 instructions is refused; under it answers."""
    app, token, _ = poisoned
    code, envelope = call(app, "tasks.get_all", token, {"name": "(a|aa){999}b"})
    assert code == 400 and "too complex" in envelope["meta"]["result_msg"], envelope["meta"]
    assert call(app, "tasks.get_all", token, {"name": "(a|aa){100}b"})[0] == 200


NAMED = [
    ("tasks.create", {"name": "<name>", "type": "training"}),
    ("projects.create", {"name": "<name>"}),
    ("queues.create", {"name": "<name>"}),
    ("models.create", {"name": "<name>", "uri": "s3://bucket/model.pt"}),
    ("tasks.edit", {"task": "<task>", "name": "<name>"}),
    ("tasks.clone", {"task": "<task>", "new_task_name": "<name>"}),
]


@pytest.mark.parametrize(("endpoint", "body"), NAMED, ids=[endpoint for endpoint, _ in NAMED])
def test_a_name_is_at_most_1024_characters(
    poisoned: tuple[App, str, str], endpoint: str, body: dict[str, str]
) -> None:
    """A get_all's name regex reads every name it filters: an 8 MB name made one search take minutes.
    Names of tasks, projects, queues and models are at most 1024 characters."""
    app, token, task = poisoned

    def named(name: str) -> dict[str, str]:
        return {key: value.replace("<task>", task).replace("<name>", name) for key, value in body.items()}

    code, envelope = call(app, endpoint, token, named("n" * 1025))
    assert code == 400 and "1024" in envelope["meta"]["result_msg"], envelope["meta"]
    code, envelope = call(app, endpoint, token, named("m" * 1024))
    assert code == 200, envelope["meta"]


def test_name_matching_has_a_time_budget(
    poisoned: tuple[App, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the budget for matching names, the search is refused (400), not left to hold a thread."""
    from clearml_task.server import query

    app, token, _ = poisoned
    assert call(app, "projects.create", token, {"name": "budget"})[0] == 200
    monkeypatch.setattr(query, "MAX_SCAN_SECONDS", -1.0)  # spent before the first name
    code, envelope = call(app, "projects.get_all", token, {"name": "budget"})
    assert code == 400 and "took over" in envelope["meta"]["result_msg"], envelope["meta"]
    monkeypatch.undo()
    found = call(app, "projects.get_all", token, {"name": "^budget$"})[1]["data"]["projects"]
    assert [project["name"] for project in found] == ["budget"]


@pytest.mark.parametrize(
    ("endpoint", "answer"),
    [
        ("tasks.get_hyper_params", "params"),
        ("tasks.get_configurations", "configurations"),
        ("events.get_task_metrics", "metrics"),
        ("events.get_task_single_value_metrics", "tasks"),
    ],
)
def test_a_task_named_many_times_in_one_read_is_read_once(
    poisoned: tuple[App, str, str], endpoint: str, answer: str
) -> None:
    """A read over several tasks read each entry of its list: one task a thousand times (40 KB of request)
    read its events a thousand times, minutes over a task with many. Each task is read once."""
    app, token, task = poisoned
    code, envelope = call(app, endpoint, token, {"tasks": [task] * 1000})
    assert code == 200 and len(envelope["data"][answer]) == 1, envelope


def test_odd_paging_values_are_4xx_or_ignored(poisoned: tuple[App, str, str]) -> None:
    """A scroll_id of digits int() does not read (`²`, 5000 of them) answered 500; a negative batch_size was
    taken and cut the last events off the answer."""
    app, token, task = poisoned
    metrics = [{"task": task, "metric": "m"}]
    for scroll in ("²", "9" * 5000, "-1", ""):
        code, envelope = call(app, "events.debug_images", token, {"metrics": metrics, "scroll_id": scroll})
        assert code == 200, (scroll, envelope["meta"])
    code, envelope = call(app, "events.get_task_events", token, {"task": task, "batch_size": -3})
    assert code == 400 and "batch_size" in envelope["meta"]["result_msg"], envelope["meta"]


# Body limits
class Unreadable(io.RawIOBase):
    """A request body that must not be read."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


def wsgi(app: App, path: str, environ: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return Client(app).post(path, environ_overrides=environ, headers=headers or {})


def test_a_declared_body_past_the_limit_is_a_413_without_reading_it(tmp_path: Path) -> None:
    app = App(tmp_path, environ={})
    environ = {"wsgi.input": Unreadable(), "CONTENT_LENGTH": str(10**9)}
    response = wsgi(app, "/debug.ping", environ)
    assert response.status_code == 413
    envelope = response.get_json()
    assert envelope["meta"]["result_code"] == 413
    assert envelope["meta"]["endpoint"]["name"] == "debug.ping"
    response = wsgi(app, "/tasks.create", environ, bearer(first_token(app)))  # past 64 MB too
    assert response.status_code == 413


def test_unauthenticated_bodies_are_limited_to_a_few_kb(tmp_path: Path) -> None:
    app = App(tmp_path, environ={})
    client = Client(app)
    small = json.dumps({"pad": "x" * (UNAUTHENTICATED_MAX_BODY - 100)})
    assert client.post("/debug.ping", data=small).status_code == 200
    big = json.dumps({"pad": "x" * UNAUTHENTICATED_MAX_BODY})
    assert client.post("/debug.ping", data=big).status_code == 413
    assert client.post("/tasks.get_all", data=big, headers=bearer("forged")).status_code == 413
    assert client.post("/debug.ping", data=big, headers=bearer(first_token(app))).status_code == 200


def test_an_undeclared_body_is_read_only_to_the_limit(tmp_path: Path) -> None:
    app = App(tmp_path, environ={})
    chunked = io.BytesIO(b"[" + b" " * (10 * UNAUTHENTICATED_MAX_BODY) + b"]")
    environ = {"wsgi.input": chunked, "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
    assert wsgi(app, "/debug.ping", environ).status_code == 413
    assert chunked.tell() <= UNAUTHENTICATED_MAX_BODY + 1


def test_the_authenticated_limit_is_configurable(tmp_path: Path) -> None:
    assert App(tmp_path, environ={MAX_BODY_ENV: "2"}).max_body == 2 * 1024 * 1024
    assert App(tmp_path, environ={MAX_BODY_ENV: "2"}, max_body_mb=1).max_body == 1024 * 1024
    with pytest.raises(UserError):
        App(tmp_path, environ={MAX_BODY_ENV: "lots"})
    app = App(tmp_path, environ={}, max_body_mb=1)
    client, headers = Client(app), bearer(first_token(app))
    under = json.dumps({"pad": "x" * 1_000_000})
    over = json.dumps({"pad": "x" * 1_100_000})
    assert client.post("/debug.ping", data=under, headers=headers).status_code == 200
    assert client.post("/debug.ping", data=over, headers=headers).status_code == 413


def test_over_http_a_large_unauthenticated_body_is_a_413_envelope(tmp_path: Path) -> None:
    with serving(tmp_path / "server", max_body_mb=1) as (served, _):
        response = requests.post(f"{served.url}/debug.ping", data=b"x" * 100_000, timeout=30)
        assert response.status_code == 413
        assert response.json()["meta"]["result_code"] == 413
        response = requests.post(f"{served.url}/debug.ping", data=b"x" * 3_000_000, timeout=30)
        assert response.status_code == 413  # past the authenticated limit too
        assert requests.post(f"{served.url}/debug.ping", timeout=30).status_code == 200


# Idle connections
@pytest.fixture
def idle_server(tmp_path: Path) -> Iterator[str]:
    with serving(tmp_path / "server", channel_timeout=1, cleanup_interval=1) as (served, _):
        yield served.url


def test_idle_half_open_connections_neither_lock_others_out_nor_stay(idle_server: str) -> None:
    host, port = idle_server.removeprefix("http://").split(":")
    idle = []
    try:
        for _ in range(120):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(b"POST /debug.ping HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n")  # never finished
            idle.append(sock)
        started = time.monotonic()
        assert requests.post(f"{idle_server}/debug.ping", timeout=10).status_code == 200
        assert time.monotonic() - started < 5
        time.sleep(3)  # past channel_timeout and a cleanup
        closed = 0
        for sock in idle:
            sock.settimeout(5)
            try:
                closed += sock.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == len(idle)
    finally:
        for sock in idle:
            sock.close()
