"""The variables of ClearML's glue templates (Slurm batch scripts, Kubernetes Job manifests) and their values.

`${CLEARML_QUEUE_NAME}`, `${CLEARML_QUEUE_ID}`, `${CLEARML_WORKER_ID}`, `${CLEARML_TASK.id}`,
`${CLEARML_TASK.name}`, `${CLEARML_TASK.project.id}`, `${CLEARML_TASK.hyperparams.properties.<key>.value}`,
each with an optional default (`${CLEARML_TASK.name:job}`), and the commands `${CLEARML_PRE_SETUP}`,
`${CLEARML_AGENT_EXECUTE}` and `${CLEARML_POST_SETUP}`.

Values that come from a task are hostile: a batch script gets each one quoted as one word (control characters
become spaces, so no value can end an `#SBATCH` line; on `#SBATCH` lines as sbatch reads them, elsewhere as
bash does), a manifest gets them as plain strings in the parsed
document, never as YAML text. The three commands are the launcher's own and are inserted as they are.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clearml_task.errors import UserError

VARIABLE = re.compile(r"\$\{(CLEARML_[A-Z_]+(?:\.[^}:]+)?)(?::([^}]*))?\}")
PROPERTY = re.compile(r"CLEARML_TASK\.hyperparams\.properties\.(.+)\.value")
PLAIN = ("CLEARML_QUEUE_NAME", "CLEARML_QUEUE_ID", "CLEARML_WORKER_ID", "CLEARML_TASK.id",
         "CLEARML_TASK.name", "CLEARML_TASK.project.id")  # fmt: skip
COMMANDS = ("CLEARML_PRE_SETUP", "CLEARML_AGENT_EXECUTE", "CLEARML_POST_SETUP")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class MissingValue(Exception):
    """The task has no value for a variable the template uses without a default."""


@dataclass(frozen=True)
class Context:
    """What a template is rendered with: the queue, the worker, the task and the three commands."""

    queue_name: str
    queue_id: str
    worker: str
    task: Mapping[str, Any]
    commands: Mapping[str, str]  # CLEARML_PRE_SETUP, CLEARML_AGENT_EXECUTE, CLEARML_POST_SETUP

    def value(self, name: str) -> str | None:
        """The variable's value from the task (None when the task has none)."""
        simple = {
            "CLEARML_QUEUE_NAME": self.queue_name,
            "CLEARML_QUEUE_ID": self.queue_id,
            "CLEARML_WORKER_ID": self.worker,
            "CLEARML_TASK.id": self.task.get("id"),
            "CLEARML_TASK.name": self.task.get("name"),
            "CLEARML_TASK.project.id": self.task.get("project"),
        }
        if name in simple:
            found = simple[name]
            return None if found in (None, "") else str(found)
        key = PROPERTY.fullmatch(name)
        if key is None:
            return None
        properties = (self.task.get("hyperparams") or {}).get("properties") or {}
        value = (properties.get(key.group(1)) or {}).get("value")
        return None if value in (None, "") else str(value)


def check(text: str, where: str) -> None:
    """Refuse a template that uses a variable this launcher does not know, or one inside quotes on an
    `#SBATCH` line, where its own quotes would undo those of the template (at start, not per task)."""
    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip(" \t").startswith("#SBATCH") and (quoted := _quoted_variable(line)):
            raise UserError(
                f"{where}, line {number}: ${{{quoted}}} is inside quotes on an #SBATCH line",
                "write the variable as a word of its own (its value is quoted for you)",
            )
    for match in VARIABLE.finditer(text):
        name = match.group(1)
        if name not in PLAIN and name not in COMMANDS and not PROPERTY.fullmatch(name):
            raise UserError(
                f"{where}: unknown variable ${{{name}}}",
                f"known: {', '.join(f'${{{n}}}' for n in (*PLAIN, *COMMANDS))} and "
                "${CLEARML_TASK.hyperparams.properties.<key>.value}",
            )


def _quoted_variable(line: str) -> str | None:
    """The first variable of a comment line that sbatch's reader would see inside quotes (it honours a
    backslash anywhere, and ' and " as quotes), or None."""
    quote, escaped = "", False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote and char == quote:
            quote = ""
        elif not quote and char in "'\"":
            quote = char
        elif quote and (found := VARIABLE.match(line, index)):
            return found.group(1)
    return None


def substitute(text: str, context: Context, quote: Callable[[str], str]) -> str:
    """Every variable in `text` replaced: commands as they are, values through `quote`."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in COMMANDS:
            return context.commands.get(name, "")
        value = context.value(name)
        if value is None:
            if default is None:
                raise MissingValue(f"the template uses ${{{name}}} and the task has no value for it "
                                   f"(give a default: ${{{name}:value}})")  # fmt: skip
            value = default
        return quote(value)

    return VARIABLE.sub(replace, text)


def shell_script(text: str, context: Context) -> str:
    """A batch script: every value one word, on its line. A comment line (`#SBATCH ...`, which bash never
    reads) gets the quoting of sbatch's own reader, where a backslash escapes even inside quotes: a value
    shell-quoted there (`a\\'" --output=/x`) could add options of its own. Every other line: bash's."""
    lines = text.split("\n")  # as bash and sbatch split it (not at \f, \x85 or U+2028)
    return "\n".join(
        substitute(line, context, sbatch_word if line.lstrip(" \t").startswith("#") else shell_word)
        for line in lines
    )


def shell_word(value: str) -> str:
    """One bash word, literally the value (control characters become spaces)."""
    return shlex.quote(CONTROL.sub(" ", value))


def sbatch_word(value: str) -> str:
    """One argument of an `#SBATCH` line, literally the value: in double quotes, with the backslashes and
    double quotes in it escaped by a backslash, which sbatch's reader honours inside quotes too (it ends an
    unquoted argument at white space even after a backslash, so quotes it must be)."""
    return '"' + re.sub(r'([\\"])', r"\\\1", CONTROL.sub(" ", value)) + '"'


def document(node: Any, context: Context) -> Any:
    """A parsed manifest: variables inside string scalars replaced by plain text (a string stays a string)."""
    if isinstance(node, dict):
        return {key: document(value, context) for key, value in node.items()}
    if isinstance(node, list):
        return [document(item, context) for item in node]
    if isinstance(node, str):
        return substitute(node, context, lambda value: value)
    return node
