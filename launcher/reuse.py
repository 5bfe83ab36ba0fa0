"""A clean work tree kept for the daemon's next task of the same code, instead of a new checkout.

A daemon often runs tasks of one commit one after another (a sweep, retries, clones of one task). When a
task's code is the previous task's code again — the same repository URL, full commit id, recorded tree, and
the same patch (or none, or the same script written to the same place) (`Key`) — the work tree made for it by
a fresh checkout is recorded once it is verified (`snapshot`): every entry under it, its `.git` included
(config, hooks, index, HEAD, alternates), with its type, mode, owner, size, mtime, link count, extended
attributes and the digest of its content (a symlink's target). Only regular files, directories and symlinks
are recorded.

After the run, when the task ended and left no process running, the tree is recorded again. Only when nothing
differs — no file written (even with its size and mtime put back: the content is compared), touched, added,
removed, re-linked or re-moded, in the work tree or in its `.git` — is it kept, and the next task with the
same key takes it (renamed to its own work tree's path) instead of a checkout. No git command ever runs in a
kept tree: nothing the task could have left there (a hook, a config) is read by the launcher, and the tree the
next task gets is, byte for byte, the one its fresh checkout was. Anything else is removed as before. A tree
larger than MAX_ENTRIES or MAX_BYTES is not recorded (it would cost more to compare than the checkout it
spares), nor one with a special file (a fifo, a socket).

At most one tree is kept, under its run lock (held by the daemon: another daemon's sweep leaves it, and it is
swept once the daemon is gone, however it ended); the daemon removes it when it stops."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from clearml_task import locks

MAX_ENTRIES = 2000  # files, directories and symlinks, .git included
MAX_BYTES = 8 * 1024**2  # of file content
Record = tuple[tuple[Any, ...], ...]
FULL_COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")  # SHA-1, or SHA-256


@dataclass(frozen=True)
class Key:
    """What makes two tasks' checkouts the same tree: repository, commit, the recorded tree id, and what
    goes on top of the commit (the patch, or a script and where it is written), by its digest."""

    repository: str
    commit: str
    tree: str
    on_top: str


def key_of(repository: str, commit: str, tree: str, on_top: str) -> Key | None:
    """The key of a task's code, or None when its tree is not reused: no repository, or no full commit id
    recorded (a branch moves; a short id may name another commit after a fetch)."""
    if not repository or not FULL_COMMIT.fullmatch(commit.lower()):
        return None
    digest = hashlib.sha256(on_top.encode("utf-8", "surrogateescape")).hexdigest() if on_top else ""
    return Key(repository, commit.lower(), tree, digest)


@dataclass
class _Kept:
    key: Key
    path: Path
    record: Record
    lock: IO[bytes]


class Spares:
    """The daemon's kept work tree (one at most) and the records of the runs that may leave one. Shared by
    the daemon's runs (services mode: several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: _Kept | None = None
        self._runs: dict[Path, tuple[Key, Record]] = {}
        self._last: Key | None = None

    def take(self, key: Key, dest: Path) -> bool:
        """The kept tree moved to `dest` (which must not exist, or be an empty directory) when it has this
        key; False when there is none to take (the caller checks out as usual)."""
        with self._lock:
            kept = self._kept
            if kept is None or kept.key != key:
                return False
            self._kept, self._last = None, key
        try:
            os.rename(kept.path, dest)
        except OSError:
            _discard(kept)
            return False
        _release(kept)
        with self._lock:
            self._runs[dest] = (key, kept.record)
        return True

    def prepared(self, key: Key, dest: Path) -> None:
        """A fresh checkout for `key` at `dest` is ready to run: recorded when the previous task had the same
        key (tasks of one commit in a row), so that it may be kept after the run."""
        with self._lock:
            repeated, self._last = self._last == key, key
        if not repeated:
            return
        try:
            record = snapshot(dest)
        except OSError:
            return
        if record is not None:
            with self._lock:
                self._runs[dest] = (key, record)

    def keep(self, dest: Path, run_lock: Path, ended_cleanly: bool) -> bool:
        """After the run at `dest`: keep its tree for the next task when the run was recorded, ended leaving
        no process behind (`ended_cleanly`) and the tree is exactly as recorded. False: the caller removes
        it. The run lock (`run_lock`) is held from here on, until the tree is taken or removed."""
        with self._lock:
            entry = self._runs.pop(dest, None)
        if entry is None or not ended_cleanly:
            return False
        handle = locks.hold(run_lock)
        if handle is None:  # being swept
            return False
        key, record = entry
        try:
            same = snapshot(dest) == record
        except OSError:
            same = False
        if not same:
            handle.close()
            return False
        with self._lock:
            previous, self._kept = self._kept, _Kept(key, dest, record, handle)
        if previous is not None:
            _discard(previous)
        return True

    def close(self) -> None:
        """The kept tree removed (the daemon stops)."""
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is not None:
            _discard(kept)


def _lock_path(handle: IO[bytes]) -> Path:
    return Path(handle.name if isinstance(handle.name, str) else os.fsdecode(handle.name))


def _release(kept: _Kept) -> None:
    """The kept tree's old run lock gone (the tree moved to a run that holds its own)."""
    _lock_path(kept.lock).unlink(missing_ok=True)
    kept.lock.close()


def _discard(kept: _Kept) -> None:
    shutil.rmtree(kept.path, ignore_errors=True)
    _release(kept)


def snapshot(root: Path) -> Record | None:
    """Every entry under `root` (and root itself), sorted: relative path, type and mode, owner, size, mtime,
    link count, extended attributes, and the content's digest (a symlink's target). None when the tree
    holds more than MAX_ENTRIES entries or MAX_BYTES of content, or anything but files, directories and
    symlinks. Nothing is followed: symlinks are recorded, never read through."""
    base = os.fspath(root)
    entries: list[tuple[Any, ...]] = [_entry(base, "", os.lstat(base), b"")]
    pending, total = [""], 0
    while pending:
        relative = pending.pop()
        with os.scandir(os.path.join(base, relative) if relative else base) as listing:
            children = list(listing)
        for child in children:
            if len(entries) >= MAX_ENTRIES:
                return None
            path = f"{relative}/{child.name}" if relative else child.name
            info = child.stat(follow_symlinks=False)
            kind = stat.S_IFMT(info.st_mode)
            if kind == stat.S_IFDIR:
                content = b""
                pending.append(path)
            elif kind == stat.S_IFREG:
                total += info.st_size
                if total > MAX_BYTES:
                    return None
                content = _digest(child.path)
            elif kind == stat.S_IFLNK:
                content = os.fsencode(os.readlink(child.path))
            else:
                return None
            entries.append(_entry(child.path, path, info, content))
    return tuple(sorted(entries))


def _entry(path: str, relative: str, info: os.stat_result, content: bytes) -> tuple[Any, ...]:
    return (relative, info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_mtime_ns, info.st_nlink,
            _attributes(path), content)  # fmt: skip


def _digest(path: str) -> bytes:
    """The content's digest, read without following a symlink put in the file's place."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    digest = hashlib.blake2b()
    try:
        while chunk := os.read(descriptor, 1 << 16):
            digest.update(chunk)
    finally:
        os.close(descriptor)
    return digest.digest()


def _attributes(path: str) -> tuple[tuple[str, bytes], ...]:
    """Extended attributes and their values (none where the platform or file system has none)."""
    if not hasattr(os, "listxattr"):
        return ()
    try:
        names = os.listxattr(path, follow_symlinks=False)
        return tuple(sorted((name, os.getxattr(path, name, follow_symlinks=False)) for name in names))
    except OSError:
        return ()
