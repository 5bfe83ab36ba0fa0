"""A content-addressed cache of what is derived from file contents (e.g. the injected entry point), so
launching the same script again skips the parse. Keys hash the inputs and the code's version; entries are
small JSON files under $CLEARML_TASK_HOME/cache, written atomically; a damaged entry is recomputed.
The key includes the source of the module that computes the value, so a changed algorithm never reads
an old answer."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

Value = dict[str, Any]
_CODE: dict[tuple[Path, ...], Any] = {}  # the hash of the code's sources, read once per process


def memoized(
    kind: str, code: ModuleType | Sequence[Path], key: Sequence[str], compute: Callable[[], Value]
) -> Value:
    """compute(), or what it returned before for the same key and the same source of `code` (a module, or
    the files of the modules that compute the value)."""
    from clearml_task import config

    files = [Path(str(code.__file__))] if isinstance(code, ModuleType) else code
    hasher = _code_hash(tuple(files)).copy()
    for part in (kind, *key):
        hasher.update(b"\0" + part.encode("utf-8", "surrogateescape"))
    digest = hasher.hexdigest()
    path = config.home() / "cache" / kind / digest[:2] / f"{digest}.json"
    try:
        found = json.loads(path.read_text())
        if isinstance(found, dict):
            return found
    except (OSError, ValueError, RecursionError):  # missing, damaged, or nested past what json reads
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(value))
        os.replace(tmp, path)
    except (OSError, ValueError):  # ValueError: a value json does not write (an int of 5,000 digits)
        pass  # a read-only home only costs the next run the same work
    return value


def _code_hash(files: tuple[Path, ...]) -> Any:
    """sha256 over the sources of the code that computes a value (a hashlib object to copy)."""
    found = _CODE.get(files)
    if found is None:
        found = _CODE[files] = hashlib.sha256()
        for file in files:
            found.update(file.read_bytes())
    return found
