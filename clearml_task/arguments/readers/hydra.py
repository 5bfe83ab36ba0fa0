"""Hydra: a function decorated with `@hydra.main` takes `key=value` overrides; its config is not read."""

from __future__ import annotations

from clearml_task.arguments.model import Parser
from clearml_task.arguments.readers.source_index import SourceIndex


def read(index: SourceIndex) -> Parser | None:
    """A Hydra parser named after the `@hydra.main` function, or None."""
    for func in index.functions.values():
        for target, _ in index.decorators(func):
            if index.qualified(target) == "hydra.main":
                return Parser(kind="hydra", name=func.name.value)
    return None
