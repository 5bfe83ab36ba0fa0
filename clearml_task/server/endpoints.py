"""What an endpoint is: the registry the services fill, and the Call each handler receives."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from clearml_task.server import errors, files
from clearml_task.server.fields import Kind
from clearml_task.vocabulary import FALSE_WORDS, TRUE_WORDS

if TYPE_CHECKING:
    from clearml_task.server.auth import Tokens
    from clearml_task.server.store import Tx

Handler = Callable[["Call"], dict[str, Any]]
# The longest a call may wait for something to change (queues.get_next_task's `wait`), in seconds.
MAX_WAIT = 30


@dataclass(frozen=True)
class Endpoint:
    name: str
    handler: Handler
    write: bool
    auth: bool
    batch: bool  # accepts a JSON list / json-lines body, handed over as data["requests"]
    fields: Mapping[str, Kind]  # what the handler reads, checked before it runs
    closed: bool = False  # any other field is a 400 (get_all: an ignored filter would match everything)
    paths: bool = False  # with closed: dotted field paths (`metadata.<key>.value`) are filters too


ENDPOINTS: dict[str, Endpoint] = {}


def endpoint(
    name: str,
    *,
    write: bool = True,
    auth: bool = True,
    batch: bool = False,
    fields: Mapping[str, Kind] | None = None,
    closed: bool = False,
    paths: bool = False,
) -> Callable[[Handler], Handler]:
    """Register a handler as `<service>.<action>`; write=False runs it in a read transaction; `fields`
    declares the kind of each request field the handler reads (fields.py); `closed` refuses any other
    field (but dotted paths, with `paths`)."""

    def register(handler: Handler) -> Handler:
        ENDPOINTS[name] = Endpoint(name, handler, write, auth, batch, dict(fields or {}), closed, paths)
        return handler

    return register


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class Call:
    """One API call: its request body, its transaction and who makes it."""

    endpoint: str
    data: dict[str, Any]
    tx: Tx
    tokens: Tokens
    identity: dict[str, Any] = field(default_factory=dict)
    login_time: int | None = None  # when the caller's token chain began (None: logged in with keys)
    session: str = ""  # the session of the caller's token chain (a refreshed token keeps it)
    # What the call made stale in the file store (a deleted model's weights, a deleted task's folder):
    # removed once the transaction has committed.
    stale: files.Stale = field(default_factory=files.Stale)
    # Set by a handler that found nothing yet and may wait (wait_for): the kind it waits for, that kind's
    # version as the handler saw it, and the seconds the caller allows.
    waits: tuple[str, int, float] | None = None
    max_wait: float = MAX_WAIT  # the app's cap on a wait (0: this server does not wait)

    def wait_for(self, kind: str, seconds: float) -> None:
        """Nothing yet: the app runs the handler again, in a new transaction, each time `kind` changes
        (store.VERSIONED), until `seconds` (capped at the app's max_wait) have passed since the call came."""
        if seconds > 0 and self.max_wait > 0:
            self.waits = (kind, self.tx.version(kind), seconds)

    def required(self, name: str) -> Any:
        value = self.data.get(name)
        if value is None or value == "":
            raise errors.missing_field(field=name)
        return value

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.required(name) if required else self.data.get(name, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise errors.validation_error(f"{name} must be a string")
        return value

    def id(self, name: str) -> str:
        """A required id field (a list of one id is accepted too, as the clients sometimes send)."""
        value = self.required(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            raise errors.validation_error(f"{name} must be an id string")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name, default)
        if isinstance(value, bool):
            return value
        if value == "":  # `?force=` in a query string
            return False
        if isinstance(value, str) and value.lower() in TRUE_WORDS | FALSE_WORDS:
            return value.lower() in TRUE_WORDS
        if isinstance(value, int):
            return bool(value)
        if value is None:
            return default
        raise errors.validation_error(f"{name} must be a boolean")

    def number(self, name: str, default: float = 0.0) -> float:
        """A numeric field its declared kind has checked (a number, or its decimal text)."""
        value = self.data.get(name)
        return default if value is None else float(value)

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.data.get(name, default)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise errors.validation_error(f"{name} must be an integer") from None

    def merged_by(
        self, name: str, key: str, current: Mapping[str, Any] | None, replace: str
    ) -> dict[str, Any]:
        """The objects given in `name` merged by their `key` into `current` (or replacing it when the flag
        `replace` is set); a call that gives none is a missing field."""
        given = self.items(name)
        if not given:
            raise errors.missing_field(field=name)
        merged = {} if self.flag(replace) else dict(current or {})
        merged.update((item[key], item) for item in given)
        return merged

    def items(self, name: str) -> list[Any] | None:
        """A list field; a single value is taken as a list of one."""
        value = self.data.get(name)
        if value is None:
            return None
        return value if isinstance(value, list) else [value]

    def task_list(self, name: str = "tasks") -> list[Any]:
        """The tasks of a read over several tasks, each once, in order: a list that names one task a
        thousand times reads it once, not a thousand times."""
        return list(dict.fromkeys(self.items(name) or []))

    def given_items(self, *names: str) -> dict[str, list[Any]]:
        """Those of these list fields (as `items` reads them) that the call gives a value."""
        given = {name: self.items(name) for name in names}
        return {name: value for name, value in given.items() if value is not None}

    def new_name(self, kind: str, current: str) -> str | None:
        """The `name` field when it renames the document; a name another one has is refused."""
        name = self.text("name")
        if not name or name == current:
            return None
        if self.tx.name_taken(kind, name):
            raise errors.not_unique(f"another of the {kind} has this name", name=name)
        return name

    def mapping(self, name: str) -> dict[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise errors.validation_error(f"{name} must be an object")
        return value
