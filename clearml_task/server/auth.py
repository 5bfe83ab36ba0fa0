"""Who may call: the server's key pair, and the HS256 JWT tokens auth.login hands out."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearml_task.server import errors
from clearml_task.vocabulary import API_VERSION, SERVER_VERSION

CREDENTIALS_FILE = "credentials.json"
DEFAULT_EXPIRATION_SEC = 30 * 24 * 3600
MAX_EXPIRATION_SEC = 365 * 24 * 3600
COMPANY_ID = "c0de0000c0de0000c0de0000c0de0000"


@dataclass(frozen=True)
class Keys:
    access_key: str
    secret_key: str
    jwt_secret: str
    generated: bool  # True when the key pair was generated (not given in the environment)
    fresh: bool = False  # True when this process generated it just now (first start)


def load_keys(data_dir: Path, environ: Mapping[str, str] = os.environ) -> Keys:
    """The key pair from CLEARML_API_ACCESS_KEY/SECRET_KEY, else the one kept in the data dir."""
    path = Path(data_dir) / CREDENTIALS_FILE
    fresh = _create(path) if not path.exists() else False
    stored: dict[str, str] = json.loads(path.read_text())
    access, secret = environ.get("CLEARML_API_ACCESS_KEY"), environ.get("CLEARML_API_SECRET_KEY")
    if access and secret:
        return Keys(access, secret, stored["jwt_secret"], generated=False)
    return Keys(stored["access_key"], stored["secret_key"], stored["jwt_secret"], generated=True, fresh=fresh)


def _create(path: Path) -> bool:
    """Write a new key pair (mode 0600); False if another process won the race to create it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = {
        "access_key": secrets.token_hex(10).upper(),
        "secret_key": secrets.token_urlsafe(36),
        "jwt_secret": secrets.token_hex(32),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys, f)
    try:
        os.link(tmp, path)  # atomic, and loses to a concurrent creator instead of overwriting it
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def identity(keys: Keys) -> dict[str, str]:
    user = hashlib.sha256(keys.access_key.encode()).hexdigest()[:32]
    return {
        "user": user,
        "user_name": "clearml-task",
        "company": COMPANY_ID,
        "company_name": "clearml-task",
        "role": "user",
    }


class Tokens:
    """Issues and verifies tokens; verified tokens are remembered until they expire."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self._verified: dict[str, dict[str, Any]] = {}

    def check_credentials(self, access_key: str, secret_key: str) -> None:
        ok = hmac.compare_digest(access_key.encode(), self.keys.access_key.encode())
        ok &= hmac.compare_digest(secret_key.encode(), self.keys.secret_key.encode())
        if not ok:
            raise errors.invalid_credentials()

    def issue(self, expiration_sec: int | None = None) -> str:
        import jwt

        seconds = (
            DEFAULT_EXPIRATION_SEC if not expiration_sec else min(int(expiration_sec), MAX_EXPIRATION_SEC)
        )
        issued = int(time.time())
        claims = {
            "identity": identity(self.keys),
            "env": "embedded",
            "api_version": API_VERSION,
            "server_version": SERVER_VERSION,
            "server_build": "",
            "feature_set": "basic",
            "auth_type": "Bearer",
            "session_id": secrets.token_hex(16),
            "iat": issued,
            "exp": issued + seconds,
        }
        return jwt.encode(claims, self.keys.jwt_secret, algorithm="HS256")

    def verify(self, token: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = claims
        if claims.get("exp") is not None and claims["exp"] < time.time():
            raise errors.invalid_token("invalid jwt token", reason="Signature has expired")
        return claims

    def _decode(self, token: str) -> dict[str, Any]:
        import jwt

        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.keys.jwt_secret, algorithms=["HS256"], options={"verify_exp": False}
            )
        except jwt.PyJWTError as e:
            raise errors.invalid_token("invalid jwt token", reason=str(e)) from None
        if claims.get("identity", {}).get("user") != identity(self.keys)["user"]:
            raise errors.invalid_token("invalid jwt token", reason="issued for other credentials")
        return claims
