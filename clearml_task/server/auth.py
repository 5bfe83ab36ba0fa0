"""The server's key pair, and the HS256 JWT tokens auth.login hands out to its users (users.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearml_task.errors import UserError
from clearml_task.server import errors
from clearml_task.server.users import FIRST_USER, User, Users
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
    try:
        stored: dict[str, str] = json.loads(path.read_text())
        access, secret = environ.get("CLEARML_API_ACCESS_KEY"), environ.get("CLEARML_API_SECRET_KEY")
        if access and secret:
            return Keys(access, secret, str(stored["jwt_secret"]), generated=False)
        kept = (str(stored["access_key"]), str(stored["secret_key"]), str(stored["jwt_secret"]))
    except (ValueError, KeyError, TypeError) as e:  # not JSON, not an object, a key missing
        raise UserError(
            f"{path} is not a credentials file ({type(e).__name__}: {e})",
            "fix it, or remove it to have a new key pair made (clients then need the new keys)",
        ) from None
    return Keys(*kept, generated=True, fresh=fresh)


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


def first_user(keys: Keys) -> User:
    """The server's own key pair, as the first user."""
    return User(FIRST_USER, keys.access_key, keys.secret_key)


def identity(user: User) -> dict[str, str]:
    return {
        "user": user.id,
        "user_name": user.name,
        "company": COMPANY_ID,
        "company_name": "clearml-task",
        "role": "user",
    }


class Tokens:
    """Issues and verifies tokens. A token is signed with a key derived from the server's jwt_secret and
    its user's secret key: rotating either, or removing the user, invalidates the user's tokens.
    Verified tokens are remembered until they expire (the user is still looked up on every call)."""

    def __init__(
        self, keys: Keys, users: Users, revoked: Callable[[str], bool] = lambda session: False
    ) -> None:
        """`revoked`: whether a token's `session_id` was revoked (a web UI session logged out)."""
        self.keys = keys
        self.users = users
        self.revoked = revoked
        self._verified: dict[str, tuple[dict[str, Any], str]] = {}

    def check_credentials(self, access_key: str, secret_key: str) -> User:
        found = None
        for user in self.users.all():  # every pair is compared, in constant time each
            ok = hmac.compare_digest(access_key.encode(), user.access_key.encode())
            ok &= hmac.compare_digest(secret_key.encode(), user.secret_key.encode())
            if ok:
                found = user
        if found is None:
            raise errors.invalid_credentials()
        return found

    def _signing_key(self, user: User) -> str:
        return hmac.new(self.keys.jwt_secret.encode(), user.secret_key.encode(), hashlib.sha256).hexdigest()

    def issue(
        self, user: User, expiration_sec: int | None = None, *, login_time: int | None = None,
        session: str | None = None,
    ) -> str:  # fmt: skip
        """A token for `user`. A token refreshed from another (login_time = when that chain of tokens
        began, `session` its session) never outlives MAX_EXPIRATION_SEC past the original login, and keeps
        the session (a new one otherwise)."""
        import jwt

        seconds = DEFAULT_EXPIRATION_SEC if not expiration_sec else min(expiration_sec, MAX_EXPIRATION_SEC)
        issued = int(time.time())
        since = issued if login_time is None else login_time
        claims = {
            "identity": identity(user),
            "env": "embedded",
            "api_version": API_VERSION,
            "server_version": SERVER_VERSION,
            "server_build": "",
            "feature_set": "basic",
            "auth_type": "Bearer",
            "session_id": session or secrets.token_hex(16),
            "iat": issued,
            "auth_time": since,
            "exp": min(issued + seconds, since + MAX_EXPIRATION_SEC),
        }
        return jwt.encode(claims, self._signing_key(user), algorithm="HS256")

    def verify(self, token: str) -> dict[str, Any]:
        cached = self._verified.get(token)
        if cached is None:
            claims = self._decode(token)
            if len(self._verified) > 10_000:
                self._verified.clear()
            user = self.users.by_id(claims["identity"]["user"])
            cached = self._verified[token] = (claims, user.secret_key if user else "")
        claims, secret = cached
        user = self.users.by_id(claims["identity"]["user"])
        if user is None or not hmac.compare_digest(user.secret_key.encode(), secret.encode()):
            raise errors.invalid_token(
                "invalid jwt token", reason="its user's key pair was removed or changed"
            )
        if claims.get("exp") is not None and claims["exp"] < time.time():
            raise errors.invalid_token("invalid jwt token", reason="Signature has expired")
        if self.revoked(str(claims.get("session_id", ""))):
            raise errors.invalid_token("invalid jwt token", reason="its session was logged out")
        return claims

    def user_of(self, caller: dict[str, Any]) -> User:
        """The user an identity (as `Call.identity` holds it) belongs to."""
        user = self.users.by_id(str(caller.get("user")))
        if user is None:
            raise errors.invalid_token("invalid jwt token", reason="its user's key pair was removed")
        return user

    def _decode(self, token: str) -> dict[str, Any]:
        import jwt

        try:
            unverified = jwt.decode(token, options={"verify_signature": False}).get("identity")
            user = self.users.by_id(str(unverified.get("user"))) if isinstance(unverified, dict) else None
            if user is None:
                raise errors.invalid_token("invalid jwt token", reason="issued for unknown credentials")
            claims: dict[str, Any] = jwt.decode(
                token, self._signing_key(user), algorithms=["HS256"], options={"verify_exp": False}
            )
        except jwt.PyJWTError as e:
            raise errors.invalid_token("invalid jwt token", reason=str(e)) from None
        return claims
