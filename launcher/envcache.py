"""The environment cache's size: least recently used environments go once the cache is over its limit.

A run holds a shared lock on `envs/<name>.inuse` while it uses its environment, and touches
`envs/<name>.used`; eviction takes both that lock and the build lock (`envs/<name>.lock`) exclusively without
waiting, so an environment being built or used is never removed. (The in-use lock is not the build lock: a
second run finding the environment cached must not wait for the first to end.) An environment's size is
measured once (its files never change after it is built) and kept in `envs/<name>.size`.
Shared locks need flock: on Windows nothing is evicted."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from clearml_task.errors import UserError

DEFAULT_SIZE = "20G"
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """`20G`, `500M`, `1.5T`, `1048576` → bytes; `0` means no limit."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not found:
        raise UserError(f"--env-cache-size {text!r} is not a size", "e.g. 20G, 500M or 0 (no limit)",
                        exit_code=2)  # fmt: skip
    return int(float(found[1]) * _UNITS[found[2].upper()])


@contextmanager
def using(env: Path) -> Iterator[None]:
    """Mark `env` (a cached environment's directory) used now, and in use while the block runs."""
    lock = env.with_name(env.name + ".inuse")
    env.with_name(env.name + ".used").touch()
    if sys.platform == "win32":
        yield
        return
    import fcntl

    with lock.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def evict(envs: Path, limit: int, say: Callable[[str], None]) -> list[str]:
    """Remove least recently used environments until the cache holds at most `limit` bytes (0: no limit);
    an environment in use or being built stays. Returns the names removed."""
    if limit <= 0 or sys.platform == "win32" or not envs.is_dir():
        return []
    import fcntl

    found = [(last_used(env), env) for env in envs.iterdir() if env.is_dir() and (env / "bin").exists()]
    sizes = {env: size_of(env) for _, env in found}
    total = sum(sizes.values())
    removed = []
    for _, env in sorted(found, key=lambda pair: pair[0]):
        if total <= limit:
            break
        with (
            env.with_name(env.name + ".lock").open("a+b") as build,
            env.with_name(env.name + ".inuse").open("a+b") as used,
        ):
            try:
                fcntl.flock(build.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(used.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being built, or in use
            shutil.rmtree(env, ignore_errors=True)
            for suffix in (".used", ".size"):
                env.with_name(env.name + suffix).unlink(missing_ok=True)
        total -= sizes[env]
        removed.append(env.name)
    if removed:
        say(f"environment cache: removed {len(removed)} least recently used environment(s) "
            f"to stay under {limit / 1024**3:.1f} GiB")  # fmt: skip
    return removed


def last_used(env: Path) -> float:
    marker = env.with_name(env.name + ".used")
    try:
        return marker.stat().st_mtime
    except OSError:
        return env.stat().st_mtime


def size_of(env: Path) -> int:
    """Bytes the environment takes (measured once, then read from beside it)."""
    record = env.with_name(env.name + ".size")
    try:
        return int(record.read_text())
    except (OSError, ValueError):
        pass
    total = 0
    for folder, _, names in os.walk(env):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    record.write_text(str(total))
    return total
