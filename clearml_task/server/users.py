"""Who may call: named key pairs. The first user is the server's own key pair (credentials.json or the
CLEARML_API_* environment); `clearml-launcher server --add-user` adds more to users.json (mode 0600).

A running server rereads users.json when it changes, so a removed user's tokens stop working at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from clearml_task.errors import UserError

USERS_FILE = "users.json"
FIRST_USER = "clearml-task"  # the name of the server's own key pair


@dataclass(frozen=True)
class User:
    name: str
    access_key: str
    secret_key: str
    created: str = ""

    @property
    def id(self) -> str:
        return user_id(self.access_key)


def user_id(access_key: str) -> str:
    return hashlib.sha256(access_key.encode()).hexdigest()[:32]


def new_key_pair() -> tuple[str, str]:
    return secrets.token_hex(10).upper(), secrets.token_urlsafe(36)


class Users:
    """The users of one data dir: the first one given, the others read from users.json."""

    def __init__(self, data_dir: Path, first: User) -> None:
        self.path = Path(data_dir) / USERS_FILE
        self.first = first
        self._seen: tuple[int, int, int] | None = None
        self._added: list[User] = []

    def all(self) -> list[User]:
        """The users now. A users.json that cannot be read as one (an edit gone wrong) admits no one but
        the first user until it is fixed, said once on stderr: the server keeps answering, and a user
        the edit meant to remove is not let in."""
        try:
            st = self.path.stat()
            seen: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            seen = None
        if seen != self._seen:
            self._seen = seen
            try:
                self._added = read(self.path) if seen else []
            except UserError as e:
                self._added = []
                print(f"clearml-launcher server: {e.message}; until it is fixed only the server's own key "
                      "pair is accepted", file=sys.stderr, flush=True)  # fmt: skip
        return [self.first, *self._added]

    def check(self) -> None:
        """Raise the UserError of a users.json that cannot be read (at start: one line, no server)."""
        read(self.path)

    def by_id(self, wanted: str) -> User | None:
        return next((u for u in self.all() if u.id == wanted), None)


def read(path: Path) -> list[User]:
    """The users a users.json holds (none when there is no file); UserError if it is not one."""
    if not path.exists():
        return []
    not_one = f"{path} is not a users file"
    try:
        stored: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["users"]
        users = [User(**entry) for entry in stored]
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}", "fix its mode or remove it") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{not_one} ({e})", "fix it or remove it") from None
    if not all(isinstance(value, str) for user in users for value in asdict(user).values()):
        raise UserError(f"{not_one} (a user's fields are strings)", "fix it or remove it")
    return users


def _write(path: Path, users: list[User]) -> None:
    """Replace the users file atomically, mode 0600 whatever the umask."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"users": [asdict(u) for u in users]}, f, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def add(data_dir: Path, name: str, first: str = FIRST_USER) -> User:
    """A new user with a fresh key pair; names are unique."""
    name = name.strip()
    if not name:
        raise UserError("a user needs a name")
    path = Path(data_dir) / USERS_FILE
    users = read(path)
    if name == first or any(u.name == name for u in users):
        raise UserError(f"there is a user named {name!r} already", "pick another name")
    access, secret = new_key_pair()
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    user = User(name, access, secret, stamp)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, [*users, user])
    return user


def remove(data_dir: Path, name: str, first: str = FIRST_USER) -> None:
    """Remove a user (its key pair and tokens stop working); the server's own key pair stays."""
    if name == first:
        raise UserError(f"{name!r} is the server's own key pair", "rotate it in credentials.json instead")
    path = Path(data_dir) / USERS_FILE
    users = read(path)
    kept = [u for u in users if u.name != name]
    if len(kept) == len(users):
        raise UserError(f"there is no user named {name!r}", "--list-users shows them")
    _write(path, kept)
