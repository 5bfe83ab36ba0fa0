"""Arguments: `--args k=v` into hyperparams.Args at creation, and back into a command line at run time.

The run-time half here is the first cut, used by the launcher until the script's parser is read
statically: each Args entry becomes `--name value`; "true" a bare flag, "false" nothing, a Python list
literal several values.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

TRUE = {"true", "yes", "1"}
FALSE = {"false", "no", "0"}


def argv(args_section: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The command line for a task's hyperparams.Args."""
    out: list[str] = []
    for name, param in args_section.items():
        key = str(param.get("name") or name)
        if not key or key.startswith("_"):
            continue
        option = key if key.startswith("-") else f"--{key}"
        value = "" if param.get("value") is None else str(param.get("value"))
        if value.lower() in TRUE and (param.get("type") in ("bool", "boolean") or value.lower() == "true"):
            out.append(option)
        elif value.lower() == "false" or (
            value.lower() in FALSE and param.get("type") in ("bool", "boolean")
        ):
            continue
        else:
            out += [option, *_values(value)]
    return out


def _values(value: str) -> list[str]:
    if value.startswith("[") and value.endswith("]"):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return [value]
        if isinstance(parsed, list):
            return [str(v) for v in parsed]
    return [value]
