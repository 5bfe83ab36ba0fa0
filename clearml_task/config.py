"""Which server: CLEARML_API_HOST, else CLEARML_CONFIG_FILE or ~/clearml.conf, else the embedded default.

The embedded default keeps its SQLite file and keys under $CLEARML_TASK_HOME (default: the platform's
user data dir); `clearml-launcher server` serves that same directory over HTTP.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from clearml_task.errors import UserError
from clearml_task.git.urls import public_url
from clearml_task.records import record

DEFAULT_CONFIG = "~/clearml.conf"


@record(frozen=True)
class ServerConfig:
    api_server: str | None  # None: the embedded server, in process
    web_server: str | None
    files_server: str | None
    access_key: str | None
    secret_key: str | None
    source: str  # where this came from, for messages: "environment", a file path, or "embedded"
    home: Path  # the data dir of the embedded server

    @property
    def embedded(self) -> bool:
        return self.api_server is None

    @property
    def server_dir(self) -> Path:
        """Where the embedded server keeps its database and keys."""
        return self.home / "server"

    def task_url(self, project_id: str | None, task_id: str) -> str | None:
        if not self.web_server:
            return None
        return f"{self.web_server.rstrip('/')}/projects/{project_id or '*'}/tasks/{task_id}/output/log"


def home(environ: Mapping[str, str] = os.environ) -> Path:
    given = environ.get("CLEARML_TASK_HOME")
    if given:
        return Path(given).expanduser()
    if sys.platform == "linux" and "ANDROID_DATA" not in os.environ:
        # platformdirs' answer on Linux, without its import (~15 ms): an absolute $XDG_DATA_HOME, else
        # ~/.local/share
        xdg = os.environ.get("XDG_DATA_HOME", "")
        return Path(xdg if os.path.isabs(xdg) else os.path.expanduser("~/.local/share"), "clearml-task")
    import platformdirs

    return Path(platformdirs.user_data_dir("clearml-task", appauthor=False))


def server_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the embedded server keeps its database and keys (without reading any clearml.conf)."""
    return _embedded(home(environ)).server_dir


def _embedded(data: Path) -> ServerConfig:
    return ServerConfig(None, None, None, None, None, "embedded", data)


def resolve(environ: Mapping[str, str] = os.environ) -> ServerConfig:
    data = home(environ)
    env_host = environ.get("CLEARML_API_HOST")
    conf_path = Path(environ.get("CLEARML_CONFIG_FILE") or DEFAULT_CONFIG).expanduser()
    if environ.get("CLEARML_CONFIG_FILE") and not conf_path.is_file():
        raise UserError(
            f"CLEARML_CONFIG_FILE points to {conf_path}, which does not exist",
            "fix the path or unset CLEARML_CONFIG_FILE",
        )
    conf = _read_conf(conf_path) if conf_path.is_file() else {}
    api_server = env_host or conf.get("api_server")
    if not api_server:
        return _embedded(data)
    access = environ.get("CLEARML_API_ACCESS_KEY") or conf.get("access_key")
    secret = environ.get("CLEARML_API_SECRET_KEY") or conf.get("secret_key")
    source = "environment" if env_host else str(conf_path)
    problem = _url_problem(api_server)
    if problem:
        setting = "CLEARML_API_HOST" if env_host else f"api.api_server in {conf_path}"
        raise UserError(
            f"{setting} {public_url(api_server)!r} {problem}",
            "give the server's URL, such as http://localhost:8008 or https://api.clear.ml",
        )
    if not access or not secret:
        raise UserError(
            f"no credentials for the ClearML server {public_url(api_server)} (from {source})",
            "set CLEARML_API_ACCESS_KEY and CLEARML_API_SECRET_KEY, or api.credentials in clearml.conf",
        )
    web = environ.get("CLEARML_WEB_HOST") or conf.get("web_server") or _derive(api_server, "8080", "app.")
    files = (
        environ.get("CLEARML_FILES_HOST") or conf.get("files_server") or _derive(api_server, "8081", "files.")
    )
    return ServerConfig(api_server.rstrip("/"), web, files, access, secret, source, data)


def _url_problem(url: str) -> str:
    """What keeps `url` from being a server's address ("" when nothing does)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- read for its check: a port that is not a number or out of range
    except ValueError as e:
        return f"is not a valid URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http:// or https:// URL"
    return ""


def _derive(api_server: str, port: str, prefix: str) -> str:
    """ClearML's rule: the web (files) server is the API host with :8008 -> :8080 (:8081), api. -> app.
    (Credentials in the API host's URL are not carried over: the web address is printed.)"""
    url = re.sub(r":8008\b", f":{port}", public_url(api_server))
    return re.sub(r"//api\.", f"//{prefix}", url)


def _read_conf(path: Path) -> dict[str, str]:
    from pyhocon import ConfigFactory
    from pyhocon.exceptions import ConfigException
    from pyparsing import ParseBaseException

    try:
        tree = ConfigFactory.parse_file(str(path), resolve=True)
    except (ConfigException, ParseBaseException, OSError) as e:
        raise UserError(f"cannot read {path}: {e}", "fix the file's HOCON syntax") from None
    api = tree.get_config("api", None) if "api" in tree else None
    if api is None:
        return {}
    out = {}
    for key in ("api_server", "web_server", "files_server"):
        value = api.get_string(key, None)
        if value:
            out[key] = value
    credentials = api.get_config("credentials", None) if "credentials" in api else None
    if credentials is not None:
        for key in ("access_key", "secret_key"):
            value = credentials.get_string(key, None)
            if value:
                out[key] = value
    return out
