"""Which server: CLEARML_API_HOST, then CLEARML_CONFIG_FILE / ~/clearml.conf, then the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearml_task import config
from clearml_task.errors import UserError

CONF = """
api {
    api_server: "http://api.example.com:8008"
    credentials {
        "access_key" = "CONFKEY"
        "secret_key" = "conf-secret"
    }
}
sdk { development { default_output_uri: "" } }
"""


def test_embedded_when_nothing_is_configured(tmp_path: Path) -> None:
    found = config.resolve({"CLEARML_TASK_HOME": str(tmp_path)})
    assert found.embedded and found.source == "embedded"
    assert found.home == tmp_path
    assert config.server_dir({"CLEARML_TASK_HOME": str(tmp_path)}) == tmp_path / "server"


def test_default_home_is_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    assert config.home({}) == Path(platformdirs.user_data_dir("clearml-task", appauthor=False))


@pytest.mark.parametrize("xdg", [None, "", "  ", "/tmp/xdg", "/tmp/xdg/", "relative", "~/data", " /tmp/x"])
def test_default_home_follows_xdg_data_home_as_platformdirs_does(
    monkeypatch: pytest.MonkeyPatch, xdg: str | None
) -> None:
    import platformdirs

    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    assert config.home({}) == Path(platformdirs.user_data_dir("clearml-task", appauthor=False))


def test_environment_wins_and_derives_the_web_server(isolated_env: Path) -> None:
    (isolated_env / "clearml.conf").write_text(CONF)
    env = {
        "CLEARML_API_HOST": "http://10.1.2.3:8008",
        "CLEARML_API_ACCESS_KEY": "K",
        "CLEARML_API_SECRET_KEY": "S",
    }
    found = config.resolve(env)
    assert (found.api_server, found.access_key, found.secret_key) == ("http://10.1.2.3:8008", "K", "S")
    assert found.web_server == "http://10.1.2.3:8080" and found.files_server == "http://10.1.2.3:8081"
    assert found.source == "environment"
    assert found.task_url("p1", "t1") == "http://10.1.2.3:8080/projects/p1/tasks/t1/output/log"


def test_clearml_conf_in_home(isolated_env: Path) -> None:
    (isolated_env / "clearml.conf").write_text(CONF)
    found = config.resolve({})
    assert found.api_server == "http://api.example.com:8008"
    assert (found.access_key, found.secret_key) == ("CONFKEY", "conf-secret")
    assert found.web_server == "http://app.example.com:8080"
    assert found.source.endswith("clearml.conf")


def test_env_keys_override_the_files_keys(isolated_env: Path) -> None:
    (isolated_env / "clearml.conf").write_text(CONF)
    found = config.resolve({"CLEARML_API_ACCESS_KEY": "ENVKEY", "CLEARML_API_SECRET_KEY": "env"})
    assert (found.api_server, found.access_key) == ("http://api.example.com:8008", "ENVKEY")


def test_clearml_config_file_overrides_home(tmp_path: Path, isolated_env: Path) -> None:
    (isolated_env / "clearml.conf").write_text(CONF)
    other = tmp_path / "other.conf"
    other.write_text(CONF.replace("api.example.com", "other.example.com"))
    found = config.resolve({"CLEARML_CONFIG_FILE": str(other)})
    assert found.api_server == "http://other.example.com:8008"


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        config.resolve({"CLEARML_CONFIG_FILE": str(tmp_path / "missing.conf")})
    with pytest.raises(UserError, match="no credentials"):
        config.resolve({"CLEARML_API_HOST": "http://localhost:8008"})
    broken = tmp_path / "broken.conf"
    broken.write_text("api { api_server: ")
    with pytest.raises(UserError, match="cannot read"):
        config.resolve({"CLEARML_CONFIG_FILE": str(broken)})


def test_a_conf_without_api_means_embedded(tmp_path: Path) -> None:
    conf = tmp_path / "sdk-only.conf"
    conf.write_text("sdk { aws { s3 { region: x } } }")
    assert config.resolve({"CLEARML_CONFIG_FILE": str(conf)}).embedded
