"""A Jupyter notebook as the script it runs as: its code cells in order, one after the other. IPython's
magics (`%time`, `%%bash`) and shell escapes (`!pip install`) are not Python: a notebook with any is refused,
naming the cell and line, at creation (clearml-task) and again at run time (the launcher, for a task made
elsewhere). Only the standard library's json reads it."""

from __future__ import annotations

import json
import re

from clearml_task.errors import UserError

_IPYTHON_LINE = re.compile(r"^\s*(%|!)")  # a line magic, a cell magic or a shell escape
HINT = (
    "replace the magics and shell commands with Python (subprocess, time), or export the notebook as a script"
)


def code_cells(text: str, name: str) -> list[str]:
    """The source of each code cell, in order. A file that is not a notebook (nbformat 4: JSON with
    `cells`) or a cell with an IPython magic or shell escape is a UserError naming it."""
    try:
        cells = json.loads(text).get("cells")
    except (ValueError, AttributeError):
        cells = None
    if not isinstance(cells, list):
        raise UserError(f"{name} is not a Jupyter notebook (JSON with a list of cells)")
    found: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source") or ""
        code = "".join(source) if isinstance(source, list) else str(source)
        for number, line in enumerate(code.splitlines(), 1):
            if _IPYTHON_LINE.match(line):
                what = "a shell command" if line.lstrip().startswith("!") else "an IPython magic"
                raise UserError(
                    f"{name} code cell {len(found) + 1} line {number} is {what}, which runs only in "
                    f"Jupyter: {line.strip()[:60]!r}",
                    HINT,
                )
        found.append(code)
    return found


def as_script(text: str, name: str) -> str:
    """The notebook's code cells as one Python script, each under a `# <name> code cell N` comment."""
    parts = [
        f"# {name} code cell {number}\n{code.rstrip()}\n"
        for number, code in enumerate(code_cells(text, name), 1)
    ]
    return f"# the code cells of {name}, in order\n" + "\n".join(parts)
