"""A Hydra app's config as its overrides address it: the primary config (`config_path` / `config_name` of
`@hydra.main`, read from the repository) and the simple entries of its defaults list (`- base`,
`- db: mysql`, `- optional db: mysql`, `- _self_`), flattened to dotted keys, so that `model.dpth=5` is
refused before anything is created. Hydra's `+key` / `++key` adds, `~key` deletes and its own `hydra.*` keys
are left alone; a config that cannot be read (not in the repository, interpolated, a defaults list this does
not follow) checks nothing."""

from __future__ import annotations

import difflib
import posixpath
from collections.abc import Callable, Mapping
from typing import Any

from clearml_task.arguments.model import Parser
from clearml_task.arguments.render import HYDRA_FLAGS, HYDRA_IGNORED
from clearml_task.errors import UserError

Reader = Callable[[str], "str | None"]  # a repository file (root-relative path) → its text, or None
_DEPTH = 8  # configs a defaults list may chain through


class _Unreadable(Exception):
    """The config cannot be followed here: nothing is checked."""


def check_overrides(parser: Parser, overrides: Mapping[str, str], read: Reader, script: str) -> None:
    """Refuse an override whose key the app's config does not have (with the close matches); `script` is the
    entry point's root-relative path. Nothing is checked when the config cannot be read."""
    config_name = parser.hydra_config.get("config_name")
    if not config_name:
        return
    directory = posixpath.normpath(
        posixpath.join(posixpath.dirname(script), parser.hydra_config.get("config_path", "."))
    )
    try:
        keys, lists = _keys(_load(read, directory, config_name, 0))
    except _Unreadable:
        return
    own = {option.dest for option in HYDRA_FLAGS} | set(HYDRA_IGNORED) | {"overrides"}
    for key in overrides:
        if key.startswith(("+", "~")) or key in own or key.split(".")[0].split("/")[0] == "hydra":
            continue
        parts = key.split(".")
        prefixes = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
        if key in keys or any(prefix in lists for prefix in prefixes[:-1]):
            continue
        file = posixpath.join(directory, _yaml_name(config_name))
        close = difflib.get_close_matches(key, sorted(keys), n=3, cutoff=0.8)
        suggestion = f"; did you mean {' or '.join(close)}?" if close else ""
        shown = ", ".join(sorted(keys)[:40])
        raise UserError(
            f"--args {key}: the Hydra config of {posixpath.basename(script)} ({file}) has no key "
            f"{key!r}{suggestion}",
            f"to add a key, write +{key}=VALUE; its keys: {shown}",
            exit_code=2,
        )


def _yaml_name(name: str) -> str:
    return name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"


def _load(read: Reader, directory: str, name: str, depth: int) -> dict[str, Any]:
    """A config file with its defaults list merged in (root-relative `directory`, `name` without .yaml)."""
    import yaml

    if depth > _DEPTH:
        raise _Unreadable
    text = read(posixpath.join(directory, _yaml_name(name)))
    if text is None:
        raise _Unreadable
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise _Unreadable from None
    if not isinstance(document, dict):
        raise _Unreadable
    config: dict[str, Any] = {}
    defaults = document.pop("defaults", None) or []
    if not isinstance(defaults, list):
        raise _Unreadable
    for entry in defaults:
        if entry == "_self_":
            continue
        if isinstance(entry, str):
            _merge(config, _load(read, directory, entry, depth + 1))
        elif isinstance(entry, dict) and len(entry) == 1:
            ((group, option),) = entry.items()
            group = str(group).removeprefix("optional ").strip()
            if group.startswith("override ") or "@" in group or "${" in group:
                continue  # overrides a default of Hydra's own, or a package this does not follow
            path = group.strip("/").replace("/", ".")
            node: dict[str, Any] | None = None  # a group with no option chosen: its keys are not known
            if isinstance(option, str) and option != "???":
                node = _load(read, posixpath.join(directory, group.strip("/")), option, depth + 1)
            _merge(config, _nested(path, node))
        else:
            raise _Unreadable
    _merge(config, document)
    return config


def _nested(path: str, node: Any) -> dict[str, Any]:
    out: Any = node
    for part in reversed(path.split(".")):
        out = {part: out}
    return dict(out)


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _keys(config: Mapping[str, Any], prefix: str = "") -> tuple[set[str], set[str]]:
    """Every dotted key of a config, and those whose value is a list or open (None, ???): their items or
    sub-keys are not checked."""
    keys: set[str] = set()
    open_: set[str] = set()
    for key, value in config.items():
        full = f"{prefix}{key}"
        keys.add(full)
        if isinstance(value, dict):
            inner, more = _keys(value, f"{full}.")
            keys |= inner
            open_ |= more
        elif value is None or value == "???" or isinstance(value, list):
            open_.add(full)
    return keys, open_
