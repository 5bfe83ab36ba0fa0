"""Hydra: a function decorated with `@hydra.main` takes `key=value` overrides; the decorator's literal
config_path and config_name are kept, for the overrides to be checked against the config
(arguments/hydra_config.py)."""

from __future__ import annotations

from clearml_task.arguments.model import Parser
from clearml_task.arguments.readers.source_index import SourceIndex


def read(index: SourceIndex) -> Parser | None:
    """A Hydra parser named after the `@hydra.main` function, or None."""
    for func in index.functions.values():
        for target, call in index.decorators(func):
            if index.qualified(target) == "hydra.main":
                parser = Parser(kind="hydra", name=func.name.value)
                for keyword in ("config_path", "config_name"):
                    expression = index.keyword(call, keyword)
                    value = index.literal(expression) if expression is not None else None
                    if isinstance(value, str):
                        parser.hydra_config[keyword] = value
                return parser
    return None
