"""The environment cache keeps under its size: least recently used environments go, never one in use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clearml_task.errors import UserError
from launcher import envcache


def env(envs: Path, name: str, size: int, used: float) -> Path:
    path = envs / name
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "python").write_bytes(b"x" * size)
    marker = envs / f"{name}.used"
    marker.touch()
    os.utime(marker, (used, used))
    return path


def test_least_recently_used_go_first_and_one_in_use_stays(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    old, older, new = env(envs, "old", 1000, 200), env(envs, "older", 1000, 100), env(envs, "new", 1000, 300)
    said: list[str] = []
    with envcache.using(older):  # in use: it stays, although the oldest
        assert envcache.evict(envs, 2500, said.append) == ["old"]
    assert older.exists() and new.exists() and not old.exists() and said
    assert envcache.evict(envs, 1500, said.append) == ["new"]  # `using` marked `older` just now
    assert envcache.evict(envs, 0, said.append) == []


def test_sizes() -> None:
    assert envcache.parse_size("20G") == 20 * 1024**3
    assert envcache.parse_size("500m") == 500 * 1024**2
    assert envcache.parse_size("1.5KiB") == 1536
    assert envcache.parse_size("0") == 0
    with pytest.raises(UserError):
        envcache.parse_size("lots")
