"""The file server under `/files/` on the API's port: what ClearML's SDK uses as `files_server`.

- Upload: a multipart POST to `/files/<folder>/`; each file part is stored at `<folder>/<part name>`
  (the SDK names the part after the rest of the object's path).
- Download: GET (or HEAD) `/files/<path>`: the bytes as stored, never with a Content-Encoding (a `.gz` is
  `application/octet-stream`, as ClearML's file server sends it). Delete: DELETE `/files/<path>`.
- Every request needs a valid Bearer token, downloads too (the SDK sends it to its files_server; ClearML's
  own fileserver does the same when its auth is on). A logged-in browser's session cookie stands for it on
  GET and HEAD only (web/session.py: the web UI's images and download links); an upload or a deletion with
  the cookie alone is refused. Bodies have the API's size limit.
- Files live under `<data dir>/files`. A path with `..`, an empty or absolute segment, a NUL or a
  backslash is refused (the URL is percent-decoded first, so encoded forms are refused too), and so is a
  path through a symlink. An upload's path has at most MAX_DEPTH segments, and an upload of several
  files stores all of them or none (every part is checked before any is written).
- A deleted task's folder (`<project>/<task name>.<task id>`, the SDK's layout), but for the weights of
  models that still exist, and a deleted model's weights file (the exact file its URI names, when no other
  model names it) are removed once the deletion has committed (Call.stale), unless the call says
  `delete_external_artifacts: false`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from clearml_task.server import errors

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

    from clearml_task.server.app import App

PREFIX = "/files/"
FOLDER = "files"
# The most segments an uploaded file's path may have (a folder per segment but the last).
MAX_DEPTH = 256


def files_url(url: str) -> str:
    """The file server's URL on a server at `url` (the same port, under /files)."""
    return url.rstrip("/") + PREFIX.rstrip("/")


def root(data_dir: Path) -> Path:
    return data_dir / FOLDER


def is_files_path(path: str) -> bool:
    return path.startswith(PREFIX) or path == PREFIX.rstrip("/")


def _segments(relative: str) -> list[str]:
    """The path's segments, refusing anything that could leave the store."""
    if "\0" in relative or "\\" in relative or relative.startswith("/"):
        raise errors.bad_request("invalid file path", path=relative)
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise errors.bad_request("invalid file path", path=relative)
    return parts


def safe_path(store: Path, relative: str) -> Path:
    """The file `relative` names inside `store`; refused when any segment is unsafe or a symlink."""
    path = store
    for part in _segments(relative):
        path = path / part
        if path.is_symlink():
            raise errors.bad_request("invalid file path (a symlink)", path=relative)
    return path


def relative(uri: str | None) -> str | None:
    """The store path of a URL this server serves (`http(s)://<any host>/files/<path>`, or the path alone),
    or None for any other URL: another scheme (`s3://bucket/files/x` is the bucket's), a query, a fragment
    or parameters (not a URL the SDK uploads to)."""
    if not uri or not isinstance(uri, str):
        return None
    parsed = urlparse(uri)
    if parsed.scheme.lower() not in ("http", "https", "") or parsed.query or parsed.fragment or parsed.params:
        return None
    if not parsed.scheme and parsed.netloc:
        return None
    path = unquote(parsed.path)
    if not path.startswith(PREFIX):
        return None
    found = path[len(PREFIX) :]
    try:
        _segments(found)
    except errors.APIError:
        return None
    return found


TASK_FOLDER = re.compile(r".+\.[0-9a-f]{32}")  # `<task name>.<task id>`, as the SDK names a task's folder


def task_folder(task_id: str) -> str:
    """A glob of the folders the SDK stores a task's files in (`<project>/<task name>.<task id>`)."""
    import glob

    return f"**/*.{glob.escape(task_id)}"


def in_task_folder(path: str, task_id: str) -> bool:
    """Whether a store path lies in the task's own folder (`<project>/<task name>.<task id>/...`, the first
    task folder on its way): a file a task may remove with it; another task's file is never one, whatever
    the task's artifacts name."""
    for part in path.split("/")[:-1]:
        if TASK_FOLDER.fullmatch(part):
            return part.endswith(f".{task_id}")
    return False


def model_files(tx: Any) -> set[str]:
    """The store paths of the weights the models in the store name (files to keep while they exist)."""
    found = (relative(model.get("uri")) for model in tx.find_fields("models", ["uri"]))
    return {path for path in found if path is not None}


def unnamed_files(tx: Any, uris: Iterable[Any]) -> list[str]:
    """The store paths of those URIs that are this server's files and that no model in the store names:
    what may go with a deleted model or a reset task's output."""
    named = model_files(tx)
    found = (relative(uri) for uri in uris)
    return [path for path in found if path is not None and path not in named]


@dataclass
class Stale:
    """What a call made stale in the store, removed once its transaction has committed: `files`, exact
    store paths (a deleted model's weights; a regular file only, never a folder); `folders`, globs of a
    deleted task's folders; `kept`, store paths spared inside those folders (the weights of models that
    still exist)."""

    files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)


def remove(data_dir: Path, stale: Stale) -> None:
    """Remove what is stale inside the store (never through a symlink, never a kept file)."""
    store = root(data_dir)
    if not store.is_dir() or not (stale.files or stale.folders):
        return
    base = store.resolve()
    for relative_path in stale.files:
        try:
            path = safe_path(store, relative_path)
        except errors.APIError:
            continue
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            _remove_empty_parents(path.parent, store)
    kept = {store / path for path in stale.kept}
    for pattern in stale.folders:
        for found in sorted(store.glob(pattern), key=lambda p: len(p.parts), reverse=True):
            if found.is_symlink() or not found.is_dir() or not found.resolve().is_relative_to(base):
                continue  # a task's folder is a folder: a file of that name is someone else's
            if any(TASK_FOLDER.fullmatch(part) for part in found.relative_to(store).parts[:-1]):
                continue  # inside another task's folder: that task's file, whatever its name
            _remove_tree(found, kept)


def _remove_empty_parents(folder: Path, store: Path) -> None:
    """The folders a removed file leaves empty, up to the store (a deleted task's folder kept for a model's
    weights goes with the last of them); a folder something else holds stays."""
    while folder != store and folder.is_relative_to(store):
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone already)
            return
        folder = folder.parent


def _remove_tree(folder: Path, kept: set[Path]) -> None:
    """The folder and what it holds, but for the kept files (and the folders on their way)."""
    if not any(path.is_relative_to(folder) for path in kept):
        shutil.rmtree(folder, ignore_errors=True)
        return
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        here = Path(dirpath)
        for name in filenames:
            if here / name not in kept:
                (here / name).unlink(missing_ok=True)
        for name in dirnames:
            if (here / name).is_symlink():
                (here / name).unlink(missing_ok=True)
                continue
            with contextlib.suppress(OSError):  # not empty: it holds a kept file
                (here / name).rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


# What the file system answers a path a client made up (never this server's own fault): a 400.
PATH_ERRORS = frozenset(
    {errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EINVAL}
)


def serve(app: App, request: Request, authorization: str | None) -> Response:
    """Answer one request to the file server."""
    from werkzeug.exceptions import HTTPException

    try:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.missing_credentials("the file server takes Authorization: Bearer <token>")
        app.tokens.verify(token.strip())
        store = root(app.data_dir)
        folder = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else ""
        if request.method == "POST":
            return _json(200, {"uploaded": _upload(app, request, store, folder.rstrip("/"))})
        if not folder:
            raise errors.bad_request("name a file: /files/<path>")
        path = safe_path(store, folder)
        if request.method in ("GET", "HEAD"):
            if not path.is_file():
                return _json(404, {"error": "file not found", "path": folder})
            return _download(request, path)
        if request.method == "DELETE":
            if not path.is_file():
                return _json(404, {"error": "file not found", "path": folder})
            path.unlink()
            return _json(200, {"deleted": folder})
        raise errors.bad_request(f"method {request.method} is not supported by the file server")
    except errors.APIError as e:
        return _json(e.code, {"error": e.msg})
    except OSError as e:  # a path the file system refuses: too long, through a file, onto a folder
        if e.errno not in PATH_ERRORS:
            raise
        return _json(400, {"error": f"invalid file path ({os.strerror(e.errno)})"})
    except HTTPException as e:  # a Range the file cannot satisfy (416), or another header werkzeug refuses
        return _json(e.code or 400, {"error": e.description or e.name})


def _upload(app: App, request: Request, store: Path, folder: str) -> list[str]:
    """Store every file part, or none: every part's path is checked before any is written, each part is
    written to a temporary file beside its target, and the targets are replaced only once all are."""
    from werkzeug.exceptions import RequestEntityTooLarge

    request.max_content_length = app.max_upload
    try:
        parts = list(request.files.items(multi=True))
    except RequestEntityTooLarge:
        raise errors.body_too_large(limit=app.max_upload or 0, authenticated=True) from None
    if not parts:
        raise errors.bad_request("no file in the upload (a multipart POST with one part per file)")
    targets = [_target(store, folder, name) for name, _ in parts]
    names = {relative_path for relative_path, _ in targets}
    for relative_path, _ in targets:
        segments = relative_path.split("/")
        if any("/".join(segments[:i]) in names for i in range(1, len(segments))):
            raise errors.bad_request("invalid file path (a file of this upload)", path=relative_path)
    written: list[tuple[Path, Path]] = []
    try:
        for (relative_path, path), (_, part) in zip(targets, parts, strict=True):
            _make_folders(store, relative_path)
            safe_path(store, relative_path)  # a symlink made meanwhile is refused too
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            written.append((Path(name), path))
            with os.fdopen(handle, "wb") as out:
                shutil.copyfileobj(part.stream, out)
        for temporary, target in written:
            os.replace(temporary, target)
    except BaseException:
        for temporary, _ in written:
            temporary.unlink(missing_ok=True)
        raise
    return [relative_path for relative_path, _ in targets]


def _target(store: Path, folder: str, name: str) -> tuple[str, Path]:
    """The store path a part's name makes, and its file; refused when unsafe, too deep, or a folder."""
    name = name[1:] if name.startswith("/") else name  # the SDK's object names start with one
    relative_path = f"{folder}/{name}" if folder else name
    if relative_path.count("/") >= MAX_DEPTH:
        raise errors.bad_request(
            f"invalid file path (more than {MAX_DEPTH} segments)", path=relative_path[:200]
        )
    path = safe_path(store, relative_path)
    if path.is_dir():
        raise errors.bad_request("invalid file path (a folder)", path=relative_path)
    return relative_path, path


def _make_folders(store: Path, relative_path: str) -> None:
    """The folders on the way to a store path, made one by one (pathlib's `mkdir(parents=True)` recurses
    once per missing folder: a deep enough path is a RecursionError)."""
    store.mkdir(mode=0o700, exist_ok=True)
    path = store
    for part in relative_path.split("/")[:-1]:
        path = path / part
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        if not path.is_dir():
            raise errors.bad_request("invalid file path (through a file)", path=relative_path)


# Headers of every download: a logged-in browser reads files on the web UI's origin (web/session.py), and a
# file is whatever a task uploaded. Sandboxed, with no script, a hostile HTML or SVG file opened from a link
# runs nothing and reaches nothing of the UI's; its type is never sniffed; only the browser keeps a copy.
DOWNLOAD_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-cache",
}


def _download(request: Request, path: Path) -> Response:
    """The file, whole or the one byte range asked. A Range header that does not parse, or asks for several
    ranges (no multipart answer here), is ignored, as RFC 9110 lets a server do: the whole file, 200, not
    a 416 (which says a valid range lies past the file's end)."""
    from werkzeug.http import parse_range_header
    from werkzeug.utils import send_file

    environ = request.environ
    asked = environ.get("HTTP_RANGE")
    if asked is not None:
        parsed = parse_range_header(asked)
        if parsed is None or len(parsed.ranges) != 1:
            environ = {key: value for key, value in environ.items() if key != "HTTP_RANGE"}
    response = send_file(path, environ, mimetype=mimetype(path.name), as_attachment=False, conditional=True)
    response.headers.update(DOWNLOAD_HEADERS)
    return response


def mimetype(name: str) -> str:
    """A stored file's Content-Type, as ClearML's file server gives it: what its name's extension says, but
    `application/octet-stream` for a compressed name (`df.csv.gz`, `model.tar.gz`). The bytes go as stored,
    never with a Content-Encoding (which HTTP clients undo on the way: a `.gz` would arrive decompressed)."""
    import mimetypes

    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if guessed is None or encoding is not None:
        return "application/octet-stream"
    return guessed


def _json(code: int, body: dict[str, Any]) -> Response:
    from werkzeug.wrappers import Response

    return Response(json.dumps(body), status=code, content_type="application/json")
