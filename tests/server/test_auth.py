"""Authentication: keys, HS256 JWT tokens with the claims ClearML's clients read, Bearer everywhere."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
import pytest

from clearml_task.server.app import App
from clearml_task.server.auth import CREDENTIALS_FILE
from testing.servers import Raw


def test_login_gives_a_jwt_with_the_claims_clients_read(raw: Raw) -> None:
    token = raw.token()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    major, minor = (int(x) for x in claims["api_version"].split("."))
    assert (major, minor) >= (2, 14)
    assert claims["feature_set"] == "basic"
    assert claims["server_version"]
    assert set(claims["identity"]) >= {"user", "company", "user_name", "company_name"}
    assert claims["exp"] > time.time() + 24 * 3600  # default: 30 days


def test_login_honours_expiration_sec(raw: Raw) -> None:
    claims = jwt.decode(raw.token(expiration_sec=120), options={"verify_signature": False})
    assert 100 < claims["exp"] - time.time() <= 121


def test_no_token_is_401_20(raw: Raw) -> None:
    code, envelope = raw.send("/tasks.get_all", b"{}")
    assert (code, envelope["meta"]["result_subcode"]) == (401, 20)


def test_garbage_token_is_401_30(raw: Raw) -> None:
    code, envelope = raw.send("/tasks.get_all", b"{}", headers={"Authorization": "Bearer not.a.token"})
    assert (code, envelope["meta"]["result_subcode"]) == (401, 30)


def test_token_signed_with_another_secret_is_401_30(raw: Raw) -> None:
    real = jwt.decode(raw.token(), options={"verify_signature": False})
    forged = jwt.encode(real, "another secret of at least thirty-two bytes", algorithm="HS256")
    code, envelope = raw.send("/tasks.get_all", b"{}", headers={"Authorization": f"Bearer {forged}"})
    assert (code, envelope["meta"]["result_subcode"]) == (401, 30)


def test_expired_token_is_401_30(raw: Raw) -> None:
    token = raw.token(expiration_sec=1)
    code, _ = raw.send("/tasks.get_all", b"{}", headers={"Authorization": f"Bearer {token}"})
    assert code == 200
    time.sleep(2.1)
    code, envelope = raw.send("/tasks.get_all", b"{}", headers={"Authorization": f"Bearer {token}"})
    assert (code, envelope["meta"]["result_subcode"]) == (401, 30)
    assert "expired" in envelope["meta"]["result_msg"]


@pytest.mark.parametrize(("access", "secret"), [("WRONGKEY", None), (None, "wrong-secret")])
def test_wrong_keys_are_401_22(raw: Raw, access: str | None, secret: str | None) -> None:
    code, envelope = raw.send("/auth.login", b"{}", headers={"Authorization": raw.basic(access, secret)})
    assert (code, envelope["meta"]["result_subcode"]) == (401, 22)
    assert "token" not in envelope["data"]


def test_malformed_basic_is_401_21(raw: Raw) -> None:
    code, envelope = raw.send("/auth.login", b"{}", headers={"Authorization": "Basic %%%not-base64"})
    assert (code, envelope["meta"]["result_subcode"]) == (401, 21)


def test_basic_auth_only_logs_in(raw: Raw) -> None:
    code, envelope = raw.send("/tasks.get_all", b"{}", headers={"Authorization": raw.basic()})
    assert (code, envelope["meta"]["result_subcode"]) == (401, 10)


def test_every_endpoint_but_login_and_ping_needs_a_token(raw: Raw) -> None:
    from clearml_task.server.endpoints import ENDPOINTS

    assert len(ENDPOINTS) > 40
    for name in ENDPOINTS:
        code, envelope = raw.send(f"/{name}", b"{}")
        if name == "debug.ping":
            assert code == 200
        else:
            assert (code, envelope["meta"]["result_subcode"]) == (401, 20), name


def test_generated_keys_are_kept_private(tmp_path: Path) -> None:
    app = App(tmp_path)
    path = tmp_path / CREDENTIALS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["access_key"] == app.keys.access_key
    assert app.keys.fresh
    again = App(tmp_path).keys  # kept across restarts
    assert (again.access_key, again.secret_key, again.jwt_secret) == (
        app.keys.access_key,
        app.keys.secret_key,
        app.keys.jwt_secret,
    )
    assert not again.fresh


def test_keys_from_the_environment_win(tmp_path: Path) -> None:
    env = {"CLEARML_API_ACCESS_KEY": "ENVACCESS", "CLEARML_API_SECRET_KEY": "env-secret"}
    app = App(tmp_path, environ=env)
    raw = Raw("inprocess", app=app, keys=("ENVACCESS", "env-secret"))
    assert raw.token()
    code, _ = raw.send("/auth.login", b"{}", headers={"Authorization": raw.basic("ENVACCESS", "wrong")})
    assert code == 401
    assert not app.keys.generated
