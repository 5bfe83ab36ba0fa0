"""What the task needs installed, decided offline (see decision.py for the order of precedence): the public
face of the package for clearml-task, and what the launcher reads the checkout's declared files through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clearml_task.requirements.decision import Decision, decide
from clearml_task.requirements.files import Given, Requirement, read_given
from clearml_task.requirements.readers import (
    Reader,
    directories_reader,
    directory_reader,
    included,
    mapping_reader,
    wanted,
)

if TYPE_CHECKING:
    from clearml_task.requirements.installed import project_python, sys_path_of

__all__ = [
    "Decision",
    "Given",
    "Reader",
    "Requirement",
    "decide",
    "directories_reader",
    "directory_reader",
    "included",
    "mapping_reader",
    "project_python",
    "read_given",
    "sys_path_of",
    "wanted",
]


def __getattr__(name: str) -> Any:
    """project_python and sys_path_of, imported when first asked for (only detection reads installed
    versions)."""
    if name in ("project_python", "sys_path_of"):
        from clearml_task.requirements import installed

        return getattr(installed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
