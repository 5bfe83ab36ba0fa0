"""The SQLite store: documents in ClearML's shape, one transaction per API call.

Every kind of document (project, task, queue, worker, model) lives in its own table as JSON text, with the
columns queries filter on copied out beside it. Write transactions start with BEGIN IMMEDIATE, so two
processes on one file serialise their read-modify-write cycles (this is what makes
queues.get_next_task hand each entry to exactly one caller).

A write to a VERSIONED kind (queues) also counts up that kind's row in `versions`, in the same transaction:
a cheap number every process can read, so that a call waiting for a queue to change (queues.get_next_task
with `wait`) sees an entry another process added. In this process, a commit that counted also wakes the
waiters at once (wait_for_change).

`revoked` holds the sessions logged out of the web UI (their tokens' `session_id`) until their tokens
expire: every token verification reads it, so a logout in one process holds in all of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, project TEXT, status TEXT NOT NULL, created TEXT, type TEXT,
    parent TEXT, tags TEXT, system_tags TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_project ON tasks (project);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE TABLE IF NOT EXISTS queues (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, name TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, type TEXT NOT NULL,
    timestamp INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_task ON events (task, type, timestamp, seq);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, project TEXT, task TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS models_task ON models (task);
CREATE TABLE IF NOT EXISTS versions (kind TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revoked (session TEXT PRIMARY KEY, expires INTEGER NOT NULL);
"""
# The kinds whose writes are counted in `versions` (what a waiting call can wait for).
VERSIONED = frozenset({"queues"})
# How often a waiting call reads the count again (another process's commit wakes nobody here).
RECHECK = 0.05
# A client may give an event a `seq` unique within its task (the launcher numbers its log lines): an event
# sent again with the same one (a retry of a batch whose answer was lost) is stored once.
EVENT_KEY = """
CREATE UNIQUE INDEX IF NOT EXISTS events_key ON events (task, key) WHERE key IS NOT NULL
"""

# SQLite's `->` (3.38) extracts JSON fields; older versions read whole documents (see Tx.find_fields).
EXTRACTS_FIELDS = sqlite3.sqlite_version_info >= (3, 38)
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Which document fields each table copies into its own columns (a task's are what listings filter and
# sort by, so a listing reads no document but the ones it answers with). Lists are kept as JSON text.
COLUMNS: dict[str, tuple[str, ...]] = {
    "projects": ("name",),
    "tasks": ("name", "project", "status", "created", "type", "parent", "tags", "system_tags"),
    "queues": ("name",),
    "workers": ("name",),
    "models": ("name", "project", "task"),
}
JSON_COLUMNS = frozenset({"tags", "system_tags"})


def _column(doc: dict[str, Any], name: str) -> Any:
    value = doc.get(name)
    if name in JSON_COLUMNS:
        return None if value is None else json.dumps(value)
    return value or ("" if name == "name" else None)


class Tx:
    """One open transaction: typed access to the documents."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.counted: set[str] = set()  # VERSIONED kinds this transaction wrote (counted once each)

    def _count(self, kind: str) -> None:
        if kind in VERSIONED and kind not in self.counted:
            self.counted.add(kind)
            self.conn.execute(
                "INSERT INTO versions (kind, n) VALUES (?, 1) ON CONFLICT (kind) DO UPDATE SET n = n + 1",
                (kind,),
            )

    def version(self, kind: str) -> int:
        """How many committed transactions have written `kind` (a VERSIONED one), by any process."""
        row = self.conn.execute("SELECT n FROM versions WHERE kind = ?", (kind,)).fetchone()
        return int(row[0]) if row else 0

    def get(self, kind: str, doc_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(f"SELECT doc FROM {kind} WHERE id = ?", (doc_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def require(self, kind: str, doc_id: str, missing: Callable[[], Exception]) -> dict[str, Any]:
        """The document, or the error `missing` makes (the service's not-found error) when there is none."""
        doc = self.get(kind, doc_id)
        if doc is None:
            raise missing()
        return doc

    def find(self, kind: str, where: str = "", params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        sql = f"SELECT doc FROM {kind}" + (f" WHERE {where}" if where else "") + " ORDER BY rowid"
        return [json.loads(row[0]) for row in self.conn.execute(sql, tuple(params))]

    def find_fields(
        self,
        kind: str,
        keys: Iterable[str],
        where: str = "",
        params: Iterable[Any] = (),
        *,
        columns: bool = False,
    ) -> list[dict[str, Any]]:
        """As find, with only these top-level keys of each document (those it has): SQLite extracts them,
        so a listing does not parse every document whole in Python (a task's patch can be megabytes). The
        keys are plain identifiers (FIELD_NAME), which lets them be spliced into JSON text. With columns,
        a key the table keeps as a column is read from it (no document read at all when every key is one),
        and a null there reads as a null field (for filtering and sorting, where the two are alike)."""
        keys = list(keys)
        selected, paths = [], []
        for key in keys:
            if columns and key in ("id", *COLUMNS[kind]):
                selected.append(f"json({key})" if key in JSON_COLUMNS else f"json_quote({key})")
            else:
                selected.append("doc -> ?")
                paths.append(f'$."{key}"')
        sql = (
            f"SELECT {', '.join(selected)} FROM {kind}"
            + (f" WHERE {where}" if where else "")
            + " ORDER BY rowid"
        )
        rows = self.conn.execute(sql, (*paths, *params))
        # One JSON object per row from the extracted texts (a missing field is NULL and left out).
        return [
            json.loads(
                "{" + ",".join(f'"{k}":{v}' for k, v in zip(keys, row, strict=True) if v is not None) + "}"
            )
            for row in rows
        ]

    def put(self, kind: str, doc: dict[str, Any]) -> None:
        """Insert or replace a document."""
        cols = COLUMNS[kind]
        values = [doc["id"], *(_column(doc, c) for c in cols), json.dumps(doc)]
        names = ", ".join(("id", *cols, "doc"))
        marks = ", ".join("?" * len(values))
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*cols, "doc"))
        self.conn.execute(
            f"INSERT INTO {kind} ({names}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}", values
        )
        self._count(kind)

    def delete(self, kind: str, doc_id: str) -> int:
        self._count(kind)
        return self.conn.execute(f"DELETE FROM {kind} WHERE id = ?", (doc_id,)).rowcount

    def name_taken(self, kind: str, name: str) -> bool:
        return self.conn.execute(f"SELECT 1 FROM {kind} WHERE name = ?", (name,)).fetchone() is not None

    # events ---------------------------------------------------------------------------------------
    def add_events(self, events: list[dict[str, Any]]) -> int:
        """Store events; one whose task and `seq` are stored already is left out. Returns how many went in."""
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO events (task, type, timestamp, doc, key) VALUES (?, ?, ?, ?, ?)",
            [(e["task"], e["type"], int(e["timestamp"]), json.dumps(e),
              None if e.get("seq") is None else str(e["seq"])) for e in events],
        )  # fmt: skip
        return self.conn.total_changes - before

    def events(
        self, task: str, type_: str, *, from_timestamp: int | None, limit: int, newest_first: bool
    ) -> list[dict[str, Any]]:
        """Up to `limit` events of one task and type, strictly past `from_timestamp` in the walking
        direction, plus every further event that shares the last one's timestamp."""
        op, order = ("<", "DESC") if newest_first else (">", "ASC")
        sql = "SELECT timestamp, doc FROM events WHERE task = ? AND type = ?"
        params: list[Any] = [task, type_]
        if from_timestamp is not None:
            sql += f" AND timestamp {op} ?"
            params.append(from_timestamp)
        rows = self.conn.execute(f"{sql} ORDER BY timestamp {order}, seq {order} LIMIT ?", [*params, limit])
        found = rows.fetchall()
        if len(found) == limit:
            boundary = found[-1][0]
            rest = self.conn.execute(
                f"SELECT timestamp, doc FROM events WHERE task = ? AND type = ? AND timestamp = ? "
                f"ORDER BY seq {order} LIMIT -1 OFFSET ?",
                (task, type_, boundary, sum(1 for ts, _ in found if ts == boundary)),
            )
            found.extend(rest.fetchall())
        return [json.loads(doc) for _, doc in found]

    def events_after(
        self,
        task: str,
        types: Iterable[str],
        *,
        after: tuple[int, int] | None,
        limit: int,
        newest_first: bool,
    ) -> list[tuple[int, int, dict[str, Any]]]:
        """Up to `limit` events of one task and these types as (timestamp, seq, event), oldest first (or
        newest), strictly past the position `after` (a (timestamp, seq) pair) in that direction: what pages
        through them with nothing skipped or repeated."""
        types = list(types)
        op, order = ("<", "DESC") if newest_first else (">", "ASC")
        marks = ", ".join("?" * len(types))
        sql = f"SELECT timestamp, seq, doc FROM events WHERE task = ? AND type IN ({marks})"
        params: list[Any] = [task, *types]
        if after is not None:
            sql += f" AND (timestamp, seq) {op} (?, ?)"
            params.extend(after)
        rows = self.conn.execute(f"{sql} ORDER BY timestamp {order}, seq {order} LIMIT ?", [*params, limit])
        return [(int(ts), int(seq), json.loads(doc)) for ts, seq, doc in rows]

    def events_stored_after(
        self, task: str, type_: str, *, after: int, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """Up to `limit` events of one task and type stored after the position `after` (their `seq`, which
        only grows), as (position, event) in the order they were stored, whatever their timestamps."""
        rows = self.conn.execute(
            "SELECT seq, doc FROM events WHERE task = ? AND type = ? AND seq > ? ORDER BY seq LIMIT ?",
            (task, type_, after, limit),
        )
        return [(int(seq), json.loads(doc)) for seq, doc in rows]

    def count_and_last(self, task: str, type_: str) -> tuple[int, int]:
        """How many events of one task and type there are, and the position (`seq`) of the one stored last
        (0 for none): one pass over them."""
        row = self.conn.execute(
            "SELECT COUNT(*), MAX(seq) FROM events WHERE task = ? AND type = ?", (task, type_)
        ).fetchone()
        return int(row[0]), int(row[1] or 0)

    def all_events(self, task: str, type_: str) -> list[dict[str, Any]]:
        """Every event of one task and type, oldest first."""
        rows = self.conn.execute(
            "SELECT doc FROM events WHERE task = ? AND type = ? ORDER BY timestamp, seq", (task, type_)
        )
        return [json.loads(row[0]) for row in rows]

    def count_events(self, task: str, type_: str) -> int:
        row = self.conn.execute("SELECT COUNT(*) FROM events WHERE task = ? AND type = ?", (task, type_))
        return int(row.fetchone()[0])

    def delete_events(self, task: str) -> int:
        return self.conn.execute("DELETE FROM events WHERE task = ?", (task,)).rowcount

    def forget_expired_revocations(self) -> None:
        """Drop the revoked sessions whose tokens have expired anyway (at start, and at each logout)."""
        self.conn.execute("DELETE FROM revoked WHERE expires < ?", (int(time.time()),))

    def revoke(self, session: str, expires: int) -> None:
        """Record a token's session as revoked until `expires` (when its token expires anyway); records
        past their time are dropped."""
        self.forget_expired_revocations()
        self.conn.execute(
            "INSERT INTO revoked (session, expires) VALUES (?, ?) "
            "ON CONFLICT (session) DO UPDATE SET expires = max(expires, excluded.expires)",
            (session, expires),
        )


def _add_columns(conn: sqlite3.Connection) -> None:
    """A data dir made before a table had all its COLUMNS gets them, filled from the documents."""
    for kind, columns in COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({kind})")}
        missing = [c for c in columns if c not in have]
        for column in missing:
            conn.execute(f"ALTER TABLE {kind} ADD COLUMN {column} TEXT")
        if missing:
            fill = ", ".join(f"{c} = json_extract(doc, '$.{c}')" for c in missing)
            conn.execute(f"UPDATE {kind} SET {fill}")


class Store:
    """A SQLite file shared by every thread and process that opens it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Created private whatever the umask; SQLite gives the -wal and -shm files the same mode. Only a
        # missing file is opened here: closing a descriptor drops this process's SQLite locks on the file.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._local = threading.local()
        self._changed = threading.Condition()  # notified after a commit that counted a VERSIONED kind
        with self.transaction(write=True) as tx:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    tx.conn.execute(statement)
            _add_columns(tx.conn)
            columns = {row[1] for row in tx.conn.execute("PRAGMA table_info(events)")}
            if "key" not in columns:  # a database from before events had keys
                tx.conn.execute("ALTER TABLE events ADD COLUMN key TEXT")
            tx.conn.execute(EVENT_KEY)
            tx.forget_expired_revocations()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{suffix}", 0o600)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Tx]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        tx = Tx(conn)
        try:
            yield tx
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if tx.counted:
            with self._changed:
                self._changed.notify_all()

    def wait_for_change(
        self, kind: str, seen: int, deadline: float, gone: Callable[[], bool] | None = None
    ) -> bool:
        """Wait until `kind`'s version is no longer `seen` (True), or until the monotonic `deadline` or the
        caller is `gone` (False). A commit in this process wakes the wait at once; one in another process
        is seen within RECHECK seconds."""
        tx = Tx(self._connection())
        with self._changed:  # held while reading: a commit's notify cannot slip in between read and wait
            while tx.version(kind) == seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (gone is not None and gone()):
                    return False
                self._changed.wait(min(remaining, RECHECK))
        return True

    def revoked(self, session: str) -> bool:
        """True when a token's session was revoked (logged out), by any process on this file. Read on every
        verification, never cached: another process may revoke it at any time."""
        found = self._connection().execute("SELECT 1 FROM revoked WHERE session = ?", (session,))
        return bool(found.fetchall())  # read to the end: no statement left holding a read snapshot

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
