"""What the task needs installed, decided offline (see decision.py for the order of precedence): the public
face of the package for clearml-task, and what the launcher reads the checkout's declared files through."""

from __future__ import annotations

from clearml_task.requirements.decision import Decision, decide
from clearml_task.requirements.files import Given, Requirement, read_given
from clearml_task.requirements.installed import project_python, sys_path_of
from clearml_task.requirements.readers import Reader, directory_reader, included, mapping_reader, wanted

__all__ = [
    "Decision",
    "Given",
    "Reader",
    "Requirement",
    "decide",
    "directory_reader",
    "included",
    "mapping_reader",
    "project_python",
    "read_given",
    "sys_path_of",
    "wanted",
]
