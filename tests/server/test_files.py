"""The file server under /files: uploads as ClearML's SDK sends them, downloads, its auth, the paths it
refuses, its size limit and the files removed with their task or model. In process (the WSGI app) and
over loopback HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

from clearml_task.server.app import App
from clearml_task.server.files import root
from testing.servers import ServerProcess, start_server, stop_server

PAYLOAD = bytes(range(256)) * 40


class Files:
    """Requests to one server, in process (werkzeug's test client) or over HTTP (raw paths kept)."""

    def __init__(self, data_dir: Path, url: str | None, keys: dict[str, str], app: App | None = None) -> None:
        self.data_dir, self.url, self.keys, self.app = data_dir, url, keys, app

    def send(self, method: str, path: str, *, token: bool = True, **kw: Any) -> tuple[int, bytes]:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {self.token()}"
        if self.app is not None:
            from werkzeug.test import Client

            response = Client(self.app).open(path, method=method, headers=headers, **kw)
            return response.status_code, response.get_data()
        if "files" in kw or "data" in kw:
            answer = requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kw)
            return answer.status_code, answer.content
        connection = http.client.HTTPConnection(urlparse(self.url).netloc, timeout=30)
        connection.request(method, path, headers=headers)  # the path as written: no normalising
        raw = connection.getresponse()
        return raw.status, raw.read()

    def api(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        status, data = self.send("POST", f"/{endpoint}", data=json.dumps(body), headers=_json())
        assert status == 200, data
        result: dict[str, Any] = json.loads(data)["data"]
        return result

    def token(self) -> str:
        pair = base64.b64encode(f"{self.keys['access_key']}:{self.keys['secret_key']}".encode()).decode()
        headers = {"Authorization": f"Basic {pair}", **_json()}
        if self.app is not None:
            code, envelope = self.app.handle("/auth.login", b"{}", authorization=headers["Authorization"])
        else:
            answer = requests.post(f"{self.url}/auth.login", data=b"{}", headers=headers, timeout=30)
            code, envelope = answer.status_code, answer.json()
        assert code == 200, envelope
        token: str = envelope["data"]["token"]
        return token

    def upload(self, folder: str, name: str, payload: bytes = PAYLOAD, **kw: Any) -> tuple[int, bytes]:
        if self.app is not None:
            from io import BytesIO

            return self.send("POST", folder, data={name: (BytesIO(payload), name)}, **kw)
        return self.send("POST", folder, files={name: (name, payload)}, **kw)

    def upload_many(self, folder: str, *names: str) -> tuple[int, bytes]:
        """One POST with a file part per name."""
        if self.app is not None:
            from io import BytesIO

            return self.send("POST", folder, data={name: (BytesIO(PAYLOAD), name) for name in names})
        return self.send("POST", folder, files=[(name, (name, PAYLOAD)) for name in names])


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


@pytest.fixture(params=["inprocess", "http"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> Files:
    if request.param == "inprocess":
        app = App(tmp_path / "server")
        return Files(
            app.data_dir, None, {"access_key": app.keys.access_key, "secret_key": app.keys.secret_key}, app
        )
    server: ServerProcess = request.getfixturevalue("http_server")
    return Files(server.data_dir, server.url, server.keys)


def test_upload_as_the_sdk_does_then_download_byte_exact(files: Files) -> None:
    status, body = files.upload("/files", "/proj/t.1/artifacts/a/a.bin")
    assert status == 200 and json.loads(body) == {"uploaded": ["proj/t.1/artifacts/a/a.bin"]}
    assert files.send("GET", "/files/proj/t.1/artifacts/a/a.bin") == (200, PAYLOAD)
    assert files.upload("/files/proj/", "t.1/b.bin")[0] == 200
    assert files.send("GET", "/files/proj/t.1/b.bin") == (200, PAYLOAD)
    assert files.send("DELETE", "/files/proj/t.1/b.bin")[0] == 200
    assert files.send("GET", "/files/proj/t.1/b.bin")[0] == 404


def test_every_request_needs_a_valid_token(files: Files) -> None:
    files.upload("/files", "auth/x.bin")
    assert files.send("GET", "/files/auth/x.bin", token=False)[0] == 401
    assert (
        files.send("GET", "/files/auth/x.bin", token=False, headers={"Authorization": "Bearer junk"})[0]
        == 401
    )
    assert files.upload("/files", "auth/y.bin", token=False)[0] == 401
    assert files.send("DELETE", "/files/auth/x.bin", token=False)[0] == 401
    assert files.send("GET", "/files/auth/x.bin")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/files/../clearml.db",
        "/files/a/%2e%2e/%2e%2e/clearml.db",
        "/files/a/%00x",
        "/files//etc/passwd",
        "/files/a/..%5c..%5cx",
        "/files/./x",
    ],
)
def test_download_paths_that_leave_the_store_are_refused(files: Files, path: str) -> None:
    status, _ = files.send("GET", path)
    assert status in (400, 404)
    assert status == 400 or files.app is None  # over HTTP a client or proxy may normalise `..` away first


@pytest.mark.parametrize("name", ["../escape.bin", "a/../../escape.bin", "//abs.bin", "a/./x", "a/\0/x"])
def test_upload_names_that_leave_the_store_are_refused(files: Files, name: str) -> None:
    assert files.upload("/files", name)[0] == 400
    assert not (files.data_dir / "escape.bin").exists()


def test_a_symlink_in_the_store_is_not_followed(files: Files, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    store = root(files.data_dir)
    store.mkdir(exist_ok=True)
    link = store / f"link-{os.getpid()}-{id(files)}"
    link.symlink_to(outside)
    assert files.send("GET", f"/files/{link.name}/secret")[0] == 400
    assert files.upload("/files", f"{link.name}/planted")[0] == 400
    assert not (outside / "planted").exists()


def test_files_of_a_deleted_task_and_model_are_removed(files: Files) -> None:
    task_id = files.api("tasks.create", {"name": "with files", "type": "training"})["id"]
    files.upload("/files", f"proj/with files.{task_id}/artifacts/a/a.bin")
    files.upload("/files", "proj/other.task/keep.bin")
    files.api("tasks.delete", {"task": task_id})
    assert files.send("GET", f"/files/proj/with%20files.{task_id}/artifacts/a/a.bin")[0] == 404
    assert files.send("GET", "/files/proj/other.task/keep.bin")[0] == 200
    files.upload("/files", "models/w.bin")
    model_id = files.api("models.create", {"name": "m", "uri": "http://host:1/files/models/w.bin"})["id"]
    files.api("models.delete", {"model": model_id})
    assert files.send("GET", "/files/models/w.bin")[0] == 404


def test_a_deleted_models_uri_removes_that_one_file_and_nothing_else(files: Files) -> None:
    """The URI is a name, never a pattern: `*` or a folder removes nothing, `[12]` only its own file."""
    base = f"u{uuid.uuid4().hex}"  # the HTTP server's store is shared with other tests
    for name in ("keep/a.bin", "keep/b.bin", "gl/ckpt1.pt", "gl/ckpt2.pt", "gl/ckpt[12].pt"):
        files.upload("/files", f"{base}/{name}")

    def delete_model_of(path: str, **body: Any) -> None:
        uri = f"http://anyhost:1/files/{path}"
        model_id = files.api("models.create", {"name": f"m {uuid.uuid4().hex}", "uri": uri})["id"]
        files.api("models.delete", {"model": model_id, **body})

    for path in ("*", f"{base}/*", f"{base}/keep", f"{base}/keep/*.bin", f"{base}/gl/ckpt%5B12%5D.pt"):
        delete_model_of(path)
    store = root(files.data_dir) / base
    left = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    assert left == ["gl/ckpt1.pt", "gl/ckpt2.pt", "keep/a.bin", "keep/b.bin"]
    delete_model_of(f"{base}/keep/a.bin", delete_external_artifacts=False)
    assert files.send("GET", f"/files/{base}/keep/a.bin") == (200, PAYLOAD)
    # a URL of another scheme, or with a query, fragment or parameters, is not one of this server's files
    for uri in (f"s3://bucket/files/{base}/keep/a.bin", f"file:///files/{base}/keep/a.bin",
                f"http://x/files/{base}/keep/a.bin?a=b", f"http://x/files/{base}/keep/a.bin#f",
                f"http://x/files/{base}/keep/a.bin;p", f"//x/files/{base}/keep/a.bin"):  # fmt: skip
        model_id = files.api("models.create", {"name": f"m {uuid.uuid4().hex}", "uri": uri})["id"]
        files.api("models.delete", {"model": model_id})
        assert files.send("GET", f"/files/{base}/keep/a.bin") == (200, PAYLOAD), uri


def test_weights_two_models_name_stay_until_the_last_of_them_is_deleted(files: Files) -> None:
    files.upload("/files", "shared/w.bin")
    uri = "http://host:1/files/shared/w.bin"
    first, second = (files.api("models.create", {"name": name, "uri": uri})["id"] for name in ("a", "b"))
    files.api("models.delete", {"model": first})
    assert files.send("GET", "/files/shared/w.bin") == (200, PAYLOAD)
    files.api("models.delete", {"model": second})
    assert files.send("GET", "/files/shared/w.bin")[0] == 404


def test_a_deleted_tasks_folder_keeps_the_weights_of_models_that_still_exist(files: Files) -> None:
    """The SDK uploads a task's output model into the task's folder; a model another task uses outlives
    the task that made it, and its weights with it."""
    task_id = files.api("tasks.create", {"name": "maker", "type": "training"})["id"]
    folder = f"proj/maker.{task_id}"
    for name in ("models/w.bin", "models/sub/gone.bin", "artifacts/a/a.bin"):
        files.upload("/files", f"{folder}/{name}")
    uri = f"http://host:1/files/proj/maker.{task_id}/models/w.bin"
    model_id = files.api("models.create", {"name": "kept", "uri": uri, "task": task_id})["id"]
    user = files.api("tasks.create", {"name": "user", "type": "training"})["id"]
    files.api("tasks.add_or_update_model", {"task": user, "name": "w", "model": model_id, "type": "input"})
    files.api("tasks.delete", {"task": task_id})
    quoted = f"/files/proj/maker.{task_id}"
    assert files.send("GET", f"{quoted}/models/w.bin") == (200, PAYLOAD)
    assert files.send("GET", f"{quoted}/artifacts/a/a.bin")[0] == 404
    assert files.send("GET", f"{quoted}/models/sub/gone.bin")[0] == 404
    assert not (root(files.data_dir) / folder / "artifacts").exists()
    files.api("models.delete", {"model": model_id})
    assert files.send("GET", f"{quoted}/models/w.bin")[0] == 404
    assert not (root(files.data_dir) / folder).exists()  # the last file of the task's folder took it along


def test_a_deleted_task_removes_its_folders_only(files: Files) -> None:
    """`<task name>.<id>` folders: not a file of that name, nor a folder of that name in another task's."""
    task_id = files.api("tasks.create", {"name": "gone", "type": "training"})["id"]
    other = uuid.uuid4().hex
    kept = f"p/kept.{other}/artifacts"
    names = (f"p/gone.{task_id}/a.bin", f"p/unrelated/file.{task_id}", f"{kept}/summary.{task_id}/x.bin",
             f"{kept}/s.{task_id}")  # fmt: skip
    for name in names:
        files.upload("/files", name)
    files.api("tasks.delete", {"task": task_id})
    assert [files.send("GET", f"/files/{name}")[0] for name in names] == [404, 200, 200, 200]


@pytest.mark.parametrize("delete_files", [True, False])
def test_a_reset_task_keeps_its_input_artifacts_drops_its_output(files: Files, delete_files: bool) -> None:
    """As ClearML's server: a reset task keeps what it takes in, not what its last run made (the web UI
    says its output is deleted); the output's files go too, unless delete_external_artifacts is false."""
    task_id = files.api("tasks.create", {"name": "reset", "type": "training"})["id"]
    base = f"p/reset.{task_id}/artifacts"
    for name in ("made.bin", "taken.bin"):
        files.upload("/files", f"{base}/{name}")
    url = f"http://host:1/files/{base}"
    artifacts = [{"key": "made", "type": "custom", "mode": "output", "uri": f"{url}/made.bin"},
                 {"key": "taken", "type": "custom", "mode": "input", "uri": f"{url}/taken.bin"}]  # fmt: skip
    files.api("tasks.add_or_update_artifacts", {"task": task_id, "artifacts": artifacts, "force": True})
    files.api("tasks.reset", {"task": task_id, "force": True, "delete_external_artifacts": delete_files})
    task = files.api("tasks.get_by_id", {"task": task_id})["task"]
    assert [a["key"] for a in task["execution"]["artifacts"]] == ["taken"]
    assert files.send("GET", f"/files/{base}/made.bin")[0] == (404 if delete_files else 200)
    assert files.send("GET", f"/files/{base}/taken.bin") == (200, PAYLOAD)


def test_a_task_deleted_without_its_external_artifacts_keeps_its_folder(files: Files) -> None:
    task_id = files.api("tasks.create", {"name": "kept files", "type": "training"})["id"]
    files.upload("/files", f"proj/kept.{task_id}/artifacts/a/a.bin")
    files.api("tasks.delete", {"task": task_id, "delete_external_artifacts": False})
    assert files.send("GET", f"/files/proj/kept.{task_id}/artifacts/a/a.bin") == (200, PAYLOAD)


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_server(tmp_path / "small", "--max-upload-mb", "1")
    yield server
    stop_server(server)


def test_uploads_past_the_upload_limit_are_refused(small_server: ServerProcess) -> None:
    files = Files(small_server.data_dir, small_server.url, small_server.keys)
    assert files.upload("/files", "big.bin", b"x" * (2 * 1024 * 1024))[0] == 413
    assert files.upload("/files", "small.bin", b"x" * 1024)[0] == 200
    assert not (root(small_server.data_dir) / "big.bin").exists()


def test_uploads_have_no_limit_by_default_whatever_the_api_bodies_limit(tmp_path: Path) -> None:
    """A model's weights are often past the API's body limit (64 MB by default: a 100 MB checkpoint was a
    413): as ClearML's file server, uploads have no limit unless `--max-upload-mb` sets one. An API call
    past its own limit is still refused."""
    server = start_server(tmp_path / "api-limited", "--max-body-mb", "1")
    try:
        files = Files(server.data_dir, server.url, server.keys)
        weights = bytes(range(256)) * (12 * 1024)  # 3 MB
        assert files.upload("/files", "proj/model.bin", weights)[0] == 200
        assert files.send("GET", "/files/proj/model.bin") == (200, weights)
        pad = json.dumps({"pad": "x" * (2 * 1024 * 1024)})
        assert files.send("POST", "/debug.ping", data=pad, headers=_json())[0] == 413
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    "path", ["/files/" + "a" * 300, "/files/" + "a/" * 2500 + "x", "/files/up/" + "b" * 256 + "/c"]
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_a_path_too_long_for_the_file_system_is_a_400(files: Files, path: str, method: str) -> None:
    files.upload("/files", "up/a.bin")
    assert files.send(method, path)[0] == 400


def test_uploads_the_file_system_refuses_are_a_400(files: Files) -> None:
    """Through a file, onto a folder, or a name too long: the caller's mistake, never a 500."""
    assert files.upload("/files/up", "a/b.bin")[0] == 200
    assert files.upload("/files/up/a/b.bin", "c.bin")[0] == 400  # b.bin is a file, not a folder
    assert files.upload("/files/up", "a")[0] == 400  # a is a folder
    assert files.upload("/files/up", "n" * 300)[0] == 400
    assert files.send("GET", "/files/up/a/b.bin") == (200, PAYLOAD)
    assert not [p.name for p in (root(files.data_dir) / "up").rglob(".upload-*")]


@pytest.mark.parametrize(
    ("byte_range", "answer"),
    [("bytes=abc", 200), ("bytes=5-1", 200), ("garbage", 200), ("bytes=0-1,3-4,6-7", 200),
     (f"bytes={len(PAYLOAD) + 10}-", 416)],
)  # fmt: skip
def test_a_range_that_does_not_parse_is_ignored_one_past_the_end_is_a_416(
    files: Files, byte_range: str, answer: int
) -> None:
    """A Range that does not parse (or asks for several ranges) is ignored, the whole file sent (RFC 9110);
    only a valid one past the file's end is a 416."""
    files.upload("/files", "ranged.bin")
    status, body = files.send("GET", "/files/ranged.bin", headers={"Range": byte_range})
    assert status == answer and (body == PAYLOAD or answer == 416)
    assert files.send("GET", "/files/ranged.bin", headers={"Range": "bytes=0-9"}) == (206, PAYLOAD[:10])


def test_a_path_deeper_than_the_limit_is_a_400_without_a_traceback(
    files: Files, http_server: ServerProcess
) -> None:
    """Two thousand folders deep: refused before any is made (pathlib's mkdir(parents=True) recursed once
    per folder into a RecursionError, a 500 with a traceback of megabytes in the server's log)."""
    logged = http_server.log.stat().st_size
    deep = "/".join(["d"] * 2000)
    status, body = files.upload("/files/t/up", deep)
    assert status == 400 and b"segments" in body, body[:300]
    assert not (root(files.data_dir) / "t" / "up" / "d").exists()
    assert http_server.log.stat().st_size - logged < 10_000
    # A hundred folders deep is stored.
    limit = "/".join(["e"] * 100)
    assert files.upload("/files/t", limit)[0] == 200
    assert files.send("GET", f"/files/t/{limit}") == (200, PAYLOAD)


@pytest.mark.parametrize("bad", ["../bad", "a/../../bad", "ok1.txt/under", "folder", "d/" * 300 + "x"])
def test_an_upload_of_several_files_stores_all_or_none(files: Files, bad: str) -> None:
    folder = f"t{uuid.uuid4().hex}"  # the HTTP server is shared by the tests
    assert files.upload(f"/files/{folder}", "folder/x.bin")[0] == 200
    status, _ = files.upload_many(f"/files/{folder}", "ok1.txt", "sub/ok2.txt", bad)
    assert status == 400
    assert not (root(files.data_dir) / folder / "ok1.txt").exists()
    assert not (root(files.data_dir) / folder / "sub" / "ok2.txt").exists()
    assert not [p.name for p in root(files.data_dir).rglob(".upload-*")]
    status, body = files.upload_many(f"/files/{folder}", "ok1.txt", "sub/ok2.txt")
    assert status == 200 and json.loads(body) == {"uploaded": [f"{folder}/ok1.txt", f"{folder}/sub/ok2.txt"]}


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("df.csv.gz", "application/octet-stream"),
        ("model.tar.gz", "application/octet-stream"),
        ("a.txt.bz2", "application/octet-stream"),
        ("table.csv", "text/csv"),
    ],
)
def test_a_compressed_file_downloads_as_stored_without_content_encoding(
    files: Files, name: str, content_type: str
) -> None:
    """HTTP clients undo a Content-Encoding: a `df.csv.gz` artifact would reach pandas decompressed, a
    `.tar.gz` model with another md5. As ClearML's file server: octet-stream, no encoding, as stored."""
    import gzip
    import urllib.request

    stored = gzip.compress(b"a,b\n1,2\n" * 100) if name.endswith(".gz") else b"a,b\n1,2\n"
    path = f"z{uuid.uuid4().hex}/{name}"
    assert files.upload("/files", path, stored)[0] == 200
    headers = {"Authorization": f"Bearer {files.token()}"}
    if files.app is not None:
        from werkzeug.test import Client

        response = Client(files.app).get(f"/files/{path}", headers=headers)
        got, answer_headers = response.get_data(), response.headers
    else:
        answer = requests.get(f"{files.url}/files/{path}", headers=headers, timeout=30)
        got, answer_headers = answer.content, answer.headers  # requests decodes a Content-Encoding
        request = urllib.request.Request(f"{files.url}/files/{path}", headers=headers)
        with urllib.request.urlopen(request, timeout=30) as opened:
            assert opened.read() == stored
    assert got == stored
    assert "Content-Encoding" not in answer_headers
    assert answer_headers["Content-Type"].split(";")[0] == content_type


@pytest.mark.parametrize("then", ["reset", "delete"])
def test_a_clone_reset_or_deleted_leaves_its_sources_files(files: Files, then: str) -> None:
    """As ClearML's clone: the clone takes the source's input artifacts, not its output; and a task's reset
    or deletion removes files of its own folder only, never the source's, even when an artifact of the
    clone names them."""
    source = files.api("tasks.create", {"name": "source", "type": "training"})["id"]
    base = f"p/source.{source}/artifacts"
    for name in ("made.bin", "taken.bin"):
        files.upload("/files", f"{base}/{name}")
    url = f"http://host:1/files/{base}"
    artifacts = [{"key": "made", "type": "custom", "mode": "output", "uri": f"{url}/made.bin"},
                 {"key": "taken", "type": "custom", "mode": "input", "uri": f"{url}/taken.bin"},
                 {"key": "nomode", "type": "custom", "uri": f"{url}/made.bin"}]  # fmt: skip
    files.api("tasks.add_or_update_artifacts", {"task": source, "artifacts": artifacts, "force": True})
    clone = files.api("tasks.clone", {"task": source})["id"]
    cloned = files.api("tasks.get_by_id", {"task": clone})["task"]
    assert [a["key"] for a in cloned["execution"]["artifacts"]] == ["taken"]
    # an output artifact of the clone naming the source's file (as an older clone carried it over)
    made = [{"key": "made", "type": "custom", "mode": "output", "uri": f"{url}/made.bin"}]
    files.api("tasks.add_or_update_artifacts", {"task": clone, "artifacts": made, "force": True})
    files.api(f"tasks.{then}", {"task": clone, "force": True})
    assert files.send("GET", f"/files/{base}/made.bin") == (200, PAYLOAD)
    assert files.send("GET", f"/files/{base}/taken.bin") == (200, PAYLOAD)
