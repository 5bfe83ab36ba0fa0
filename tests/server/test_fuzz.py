"""Property-based fuzzing of every endpoint: generated bodies (random JSON, and the type-confusion shapes
that used to break the server: huge integers, 1e400, NaN/Infinity, lists and objects where strings are
expected, deep nesting) never get a 5xx, and every read still answers afterwards.

Most bodies go through the WSGI app in process (werkzeug's test client); a smaller share over real
loopback HTTP (waitress, as `clearml-launcher server` runs it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from clearml_task.server import services  # registers the endpoints
from clearml_task.server.app import App
from clearml_task.server.endpoints import ENDPOINTS
from clearml_task.server.fields import Id
from clearml_task.server.services.events import EVENT_FIELDS
from testing.waitress_thread import serving

assert services
# In process: MUTATION_EXAMPLES bodies per endpoint, each a valid call with fields made wrong, plus
# WHOLE_EXAMPLES random bodies sent to each of the ~50 endpoints; over HTTP, HTTP_EXAMPLES x ~50 more.
MUTATION_EXAMPLES = 100
WHOLE_EXAMPLES = 90
HTTP_EXAMPLES = 30
# A generated `wait` (queues.get_next_task) waits this long at most, not up to 30 s.
SHORT_WAIT = 0.02
PLACEHOLDERS = ("<task>", "<project>", "<queue>", "<worker>")
BY_TAGS = {"tags": ["x", "-y"], "system_tags": ["__$all", "z"], "order_by": ["-name", "tags"], "page_size": 2}
READS = (
    ("projects.get_all", BY_TAGS),
    ("tasks.get_all", BY_TAGS),
    ("queues.get_all", BY_TAGS),
    ("workers.get_all", {}),
    ("users.get_all", {}),
    ("users.get_current_user", {}),
    ("queues.get_default", {}),
    ("server.info", {}),
)
TASK_READS = (
    "tasks.get_by_id",
    "events.get_task_log",
    "events.get_scalar_metrics_and_variants",
    "events.scalar_metrics_iter_histogram",
)
# Raw texts JSON cannot express from Python values, or that a parser may choke on.
RAW_BODIES = (
    "[" * 50_000 + "]" * 50_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    '{"timeout": 1e400}',
    '{"task": "<task>", "value": -1e400}',
    '{"name": NaN}',
    '{"page_size": Infinity}',
    '{"iter": -Infinity}',
    '{"timeout": ' + "9" * 5000 + "}",
    '{"page": 18446744073709551616}',
    "NaN",
    "1e400",
    "{",
    '"just a string"',
    "\ufeff{}",
    '{"a": "\\ud800"}',
)

FIELD_NAMES = sorted(
    {name for found in ENDPOINTS.values() for name in found.fields}
    | {"id", "task", "type", "iter", "value", "metric", "variant", "timestamp", "msg", "requests"}
)
HUGE_INTS = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**400, -(10**30)])
WORDS = st.sampled_from(
    ["training", "created", "queued", "default", "x", "-y", "z", "__$all", "true", "0", "^(a+)+$", "(a)\\1"]
) | st.text(alphabet="abcxyz _-/.", min_size=3, max_size=10)
IDS = st.sampled_from(PLACEHOLDERS)
# What a client would send: words, ids, small numbers, lists of words, flat objects.
PLAUSIBLE = st.one_of(
    WORDS,
    IDS,
    st.integers(min_value=-5, max_value=100),
    st.booleans(),
    st.lists(WORDS | IDS, max_size=3),
    st.dictionaries(WORDS, WORDS | st.integers(0, 9), max_size=3),
)
# A \udXXX escape alone in a JSON string: not text (SQLite, RE2 and UTF-8 refuse it); hypothesis's text()
# never draws one.
LONE_SURROGATES = st.sampled_from(["\udc80", "a\ud800b", "\udfff" * 3])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    IDS,
    LONE_SURROGATES,
)
# What breaks servers: huge numbers, NaN/Infinity, lists and objects where strings are expected.
CONFUSING = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)
# The shapes that used to get through: a value of the wrong type with a near-right look.
CONFUSERS = st.sampled_from(
    [[{"a": 1}], [["x"]], [1, "x"], [None], {"a": "b"}, {}, [], "", True, 2**63, 10**400, -(2**64), 1e308]
)
NON_FINITE = st.sampled_from([float("nan"), float("inf"), -float("inf")])
VALUES = st.one_of(PLAUSIBLE, CONFUSERS, NON_FINITE, CONFUSING)
# Each field present or not, plausible or confusing: a valid name beside poisoned tags is common.
OBJECTS = st.fixed_dictionaries({}, optional={name: VALUES for name in FIELD_NAMES})
BODIES = st.one_of(
    OBJECTS.map(lambda body: json.dumps(body, allow_nan=True)),
    st.lists(OBJECTS, max_size=2).map(lambda body: json.dumps(body, allow_nan=True)),
    st.sampled_from(RAW_BODIES),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
FUZZ = settings(
    max_examples=WHOLE_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Target:
    """The app in process, with a token and one document of each kind for the bodies to refer to."""

    def __init__(self, data_dir: Path) -> None:
        self.app = App(data_dir, environ={}, max_wait=SHORT_WAIT)
        self.client = Client(self.app)
        self.auth = {"Authorization": f"Bearer {self.app.tokens.issue(self.app.users.first)}"}
        self.sent = 0
        self.fuzzed = 0  # generated bodies (the rest are seeding and reads)
        self.ids: dict[str, str] = {}
        self.reseed()

    def post(self, endpoint: str, text: str) -> tuple[int, dict[str, Any]]:
        response = self.client.post(
            f"/{endpoint}", data=text.encode("utf-8", "surrogatepass"), headers=self.auth
        )
        self.sent += 1
        return response.status_code, response.get_json()

    def ok(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        code, envelope = self.post(endpoint, json.dumps(body))
        assert code == 200, (endpoint, envelope["meta"])
        data: dict[str, Any] = envelope["data"]
        return data

    def reseed(self) -> None:
        """Fresh documents to aim at (the fuzzing deletes some of them)."""
        count = self.sent
        self.ids["<project>"] = self.ok("projects.create", {"name": f"fuzz project {count}"})["id"]
        self.ids["<queue>"] = self.ok("queues.create", {"name": f"fuzz queue {count}"})["id"]
        task = self.ok("tasks.create", {"name": f"fuzz task {count}", "type": "training"})["id"]
        self.ids["<task>"] = task
        self.ids["<worker>"] = f"fuzz-worker-{count}"
        self.ok("workers.register", {"worker": self.ids["<worker>"], "queues": [self.ids["<queue>"]]})
        event = {"task": task, "type": "training_stats_scalar", "metric": "m", "variant": "v", "iter": 1}
        self.ok("events.add_batch", {**event, "value": 0.5})

    def fill(self, text: str) -> str:
        text = text.replace("<unique>", f"fuzz {self.sent}")
        for placeholder, real in self.ids.items():
            text = text.replace(placeholder, real)
        return text

    def reads_answer(self) -> None:
        """Whatever was written, every read still answers 200 (or a 4xx for a deleted document)."""
        for endpoint, body in READS:
            code, envelope = self.post(endpoint, json.dumps(body))
            assert code == 200, (endpoint, envelope["meta"])
        for endpoint in TASK_READS:
            code, envelope = self.post(endpoint, json.dumps({"task": self.ids["<task>"]}))
            assert code < 500, (endpoint, envelope["meta"])


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    return Target(tmp_path_factory.mktemp("fuzz") / "server")


def minimal(endpoint: str) -> dict[str, Any]:
    """A valid call: the ids the endpoint reads, a fresh name and a task type."""
    if endpoint == "events.add_batch":
        return {"task": "<task>", "type": "training_stats_scalar", "metric": "m", "variant": "v", "value": 1}
    body: dict[str, Any] = {}
    for name, kind in ENDPOINTS[endpoint].fields.items():
        if isinstance(kind, Id):
            body[name] = f"<{name}>" if f"<{name}>" in PLACEHOLDERS else "<task>"
    if "name" in ENDPOINTS[endpoint].fields and endpoint.endswith(".create"):
        body["name"] = "<unique>"
    if endpoint == "tasks.create":
        body["type"] = "training"
    return body


def mutable_fields(endpoint: str) -> st.SearchStrategy[str]:
    """The fields the endpoint declares, or any field some endpoint reads (one it might read unchecked)."""
    declared = EVENT_FIELDS if endpoint == "events.add_batch" else ENDPOINTS[endpoint].fields
    return st.sampled_from(sorted(declared) or FIELD_NAMES) | st.sampled_from(FIELD_NAMES)


WRITES = sorted(name for name, found in ENDPOINTS.items() if found.write)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_no_wrong_field_gets_a_5xx_or_breaks_a_read(target: Target, endpoint: str) -> None:
    """Valid calls with one to three fields made wrong (or plausible): never a 5xx, and after each
    write that was accepted, every read still answers."""

    @settings(FUZZ, max_examples=MUTATION_EXAMPLES)
    @given(keys=st.lists(mutable_fields(endpoint), min_size=1, max_size=3), data=st.data())
    def fuzz(keys: list[str], data: st.DataObject) -> None:
        body = minimal(endpoint)
        for key in keys:
            body[key] = data.draw(VALUES)
        text = json.dumps(body, allow_nan=True)
        code, envelope = target.post(endpoint, target.fill(text))
        target.fuzzed += 1
        assert code < 500, (endpoint, text[:300], envelope["meta"]["result_msg"])
        if code == 200 and endpoint in WRITES:
            target.reads_answer()

    fuzz()
    target.reseed()


def test_a_lone_surrogate_is_a_400_on_every_endpoint(target: Target) -> None:
    """A lone surrogate in any field, or in a key, is refused with a 400 that names where it was (ids, names
    and name filters reached SQLite or RE2 and answered 500; other fields were stored and broke the web
    UI's task table)."""
    for endpoint in sorted(ENDPOINTS):
        for body in ({"id": "x\udc80"}, {"name": "\ud800"}, {"tags": ["ok", "\udfff"]}, {"\udc80": 1}):
            text = json.dumps({**body, "task": "<task>"} if "task" not in body else body)
            code, envelope = target.post(endpoint, target.fill(text))
            message = envelope["meta"]["result_msg"]
            assert code == 400 and "lone surrogate" in message, (endpoint, body, code, message)


def test_no_body_gets_a_5xx(target: Target) -> None:
    """Random bodies (raw texts too: deep nesting, 1e400, NaN, bad UTF-8) go to every endpoint."""
    names = sorted(ENDPOINTS)

    @FUZZ
    @given(text=BODIES)
    def fuzz(text: str) -> None:
        filled = target.fill(text)
        for endpoint in names:
            code, envelope = target.post(endpoint, filled)
            target.fuzzed += 1
            assert code < 500, (endpoint, text[:300], envelope["meta"]["result_msg"])
            assert envelope["meta"]["result_code"] == code
        target.reads_answer()
        target.reseed()

    fuzz()
    assert len(names) > 45
    assert target.fuzzed >= 10_000, target.fuzzed


@pytest.fixture(scope="module")
def loopback(target: Target) -> Iterator[str]:
    with serving(target.app.data_dir, max_wait=SHORT_WAIT) as (served, _):
        yield served.url


def test_no_body_gets_a_5xx_over_http(target: Target, loopback: str) -> None:
    names = sorted(ENDPOINTS)
    session = requests.Session()

    @settings(FUZZ, max_examples=HTTP_EXAMPLES)
    @given(text=BODIES)
    def fuzz(text: str) -> None:
        body = target.fill(text).encode("utf-8", "surrogatepass")
        for endpoint in names:
            response = session.post(f"{loopback}/{endpoint}", data=body, headers=target.auth, timeout=30)
            assert response.status_code < 500, (endpoint, text[:300], response.text[:300])
            assert response.json()["meta"]["result_code"] == response.status_code

    fuzz()
    assert session.post(f"{loopback}/debug.ping", timeout=30).status_code == 200
