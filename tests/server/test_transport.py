"""ClearML's transport rules, over loopback HTTP and in process (the `raw` fixture runs both)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from clearml_task.vocabulary import API_VERSION
from testing.servers import Raw, ServerProcess

META_KEYS = {
    "id",
    "trx",
    "endpoint",
    "result_code",
    "result_subcode",
    "result_msg",
    "error_stack",
    "error_data",
}


def test_envelope_has_clearml_meta(raw: Raw) -> None:
    code, envelope = raw.call("queues.get_all")
    assert code == 200
    meta = envelope["meta"]
    assert set(meta) == META_KEYS
    assert meta["result_code"] == 200 and meta["result_subcode"] == 0 and meta["result_msg"] == "OK"
    assert meta["endpoint"] == {
        "name": "queues.get_all",
        "requested_version": API_VERSION,
        "actual_version": API_VERSION,
    }
    assert len(meta["id"]) == 32
    assert isinstance(envelope["data"]["queues"], list)


@pytest.mark.parametrize(
    "path", ["/v2.5/queues.get_all", "/v2.14/queues.get_all", "/queues.get_all/", "/v2.34/queues.get_all"]
)
def test_versioned_and_unversioned_paths(raw: Raw, path: str) -> None:
    headers = {"Authorization": f"Bearer {raw.token()}"}
    code, envelope = raw.send(path, b"{}", headers=headers)
    assert code == 200, envelope
    if path.startswith("/v"):
        assert envelope["meta"]["endpoint"]["requested_version"] == path.split("/")[1][1:]


def test_get_with_json_body_is_the_same_as_post(raw: Raw) -> None:
    token = raw.token()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    _, created = raw.send("/queues.create", json.dumps({"name": "get-body-q"}).encode(), headers=headers)
    queue_id = created["data"]["id"]
    body = json.dumps({"queue": queue_id}).encode()
    code, got = raw.send("/queues.get_by_id", body, method="GET", headers=headers)
    assert code == 200
    assert got["data"]["queue"]["name"] == "get-body-q"


def test_query_args_are_merged_into_the_body(raw: Raw) -> None:
    headers = {"Authorization": f"Bearer {raw.token()}"}
    code, created = raw.send("/queues.create", b"", headers=headers, query="name=from-query-q")
    assert code == 200, created
    queue_id = created["data"]["id"]
    code, got = raw.send("/queues.get_by_id", b"", method="GET", headers=headers, query=f"queue={queue_id}")
    assert code == 200
    assert got["data"]["queue"]["name"] == "from-query-q"
    # A repeated query argument is a list; a body field still counts when the query adds others.
    code, listed = raw.send(
        "/queues.get_all",
        json.dumps({"only_fields": ["name"]}).encode(),
        method="GET",
        headers=headers,
        query=f"id={queue_id}&id=0123456789abcdef0123456789abcdef",
    )
    assert code == 200
    assert listed["data"]["queues"] == [{"name": "from-query-q"}]


def test_json_lines_body(raw: Raw) -> None:
    _, created = raw.call("tasks.create", {"name": "json-lines", "type": "training"})
    task_id = created["data"]["id"]
    lines = [{"type": "log", "task": task_id, "msg": f"line {i}", "timestamp": 1000 + i} for i in range(3)]
    body = "\n".join(json.dumps(line) for line in lines).encode()
    code, added = raw.call("events.add_batch", body, headers={"Content-Type": "application/json-lines"})
    assert code == 200, added
    assert added["data"]["added"] == 3
    # Without the content type, several lines are still read as json-lines.
    code, again = raw.call("events.add_batch", body, headers={"Content-Type": "application/json"})
    assert code == 200 and again["data"]["added"] == 3


def test_unknown_endpoint_is_a_400_envelope(raw: Raw) -> None:
    for path in ("/tasks.no_such_action", "/v2.14/nothing.here", "/not-an-endpoint", "/"):
        code, envelope = raw.send(path, b"{}", headers={"Authorization": f"Bearer {raw.token()}"})
        assert code == 400, path
        assert envelope["meta"]["result_code"] == 400
        assert "Unable to find endpoint" in envelope["meta"]["result_msg"]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2", b'"a string"', b"[1, 2, 3]", b"42", b"\xff\xfe\x00garbage", b'{"a": 1}\n{oops'],
)
def test_malformed_body_is_a_400_envelope(raw: Raw, body: bytes) -> None:
    code, envelope = raw.call("tasks.get_all", body)
    assert code == 400
    assert envelope["meta"]["result_code"] == 400
    assert envelope["meta"]["result_subcode"] == 0
    assert envelope["data"] == {}


@pytest.mark.parametrize(
    ("endpoint", "body", "subcode"),
    [
        ("tasks.create", {"type": "training"}, 11),  # no name
        ("tasks.create", {"name": "ok name", "type": "no-such-type"}, 12),
        ("tasks.create", {"name": "ok name", "type": "training", "tags": "not-a-list"}, 12),
        ("tasks.create", {"name": "ok name", "type": "training", "script": ["not", "an", "object"]}, 12),
        ("tasks.get_all", {"page_size": "many"}, 12),
        ("tasks.get_all", {"name": "(unclosed"}, 12),
        ("tasks.get_all", {"order_by": [5]}, 12),
        ("tasks.get_by_id", {"task": {"an": "object"}}, 12),
        ("queues.get_by_id", {}, 11),
    ],
)
def test_bad_fields_are_400_with_clearml_subcodes(raw: Raw, endpoint: str, body: dict, subcode: int) -> None:
    code, envelope = raw.call(endpoint, body)
    assert (code, envelope["meta"]["result_subcode"]) == (400, subcode), envelope["meta"]["result_msg"]


def test_other_methods_get_an_envelope_too(raw: Raw) -> None:
    code, envelope = raw.send("/debug.ping", b"", method="PUT")
    assert code == 400
    assert envelope["meta"]["result_code"] == 400


def test_ping_needs_no_token_and_echoes(raw: Raw) -> None:
    code, envelope = raw.send("/debug.ping", b'{"hello": "there"}')
    assert code == 200
    assert envelope["data"] == {"hello": "there", "msg": "ClearML server"}


def test_a_tls_handshake_gets_a_plain_answer_at_once(http_server: ServerProcess) -> None:
    """A client told https:// for this plain-HTTP server fails on its first read (a wrong protocol
    version), instead of waiting for a handshake that never comes (waitress alone waited for a request
    line: the client's whole timeout, 30 s for ours); the server goes on serving."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    address = urlsplit(http_server.url)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection((address.hostname, address.port), timeout=10) as plain,
        pytest.raises(ssl.SSLError, match="WRONG_VERSION_NUMBER"),
    ):
        context.wrap_socket(plain, server_hostname=address.hostname)
    with socket.create_connection((address.hostname, address.port), timeout=10) as plain:
        plain.sendall(b"\x16\x03\x01\x00\x05hello")
        answer = plain.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(
        b"this server speaks plain HTTP: use http://\r\n"
    )
    with urllib.request.urlopen(f"{http_server.url}/debug.ping", b"{}", timeout=10) as ping:
        assert ping.status == 200
