"""Whether a `--module` entry point can be imported where the task runs, checked before anything is created:
a module of the checkout (under the working dir, the root or src/), of the standard library, of a
distribution installed here, or of one the task's requirements name. A module under one of the checkout's
own packages must be in the checkout."""

from __future__ import annotations

import posixpath
import re
import sys
from collections.abc import Callable, Sequence

from clearml_task.errors import UserError
from clearml_task.requirements.files import name_of
from clearml_task.requirements.installed import Installed

Reader = Callable[[str], "str | None"]


def check_module(
    module: str, read: Reader, working_dir: str, site: Sequence[str] | None, requirements: Sequence[str]
) -> None:
    """A UserError when `module` (`pkg.main`, as given to --module) is nowhere it could be imported from."""
    name = module.split()[0] if module.split() else ""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise UserError(
            f"--module {module!r} is not a module name", "write it as package.module", exit_code=2
        )
    path = name.replace(".", "/")
    bases = list(dict.fromkeys((working_dir, ".", "src")))
    candidates = (f"{path}.py", f"{path}/__init__.py", f"{path}/__main__.py")
    if any(read(_join(base, candidate)) is not None for base in bases for candidate in candidates):
        return
    top = name.split(".")[0]
    own = next((base for base in bases if read(_join(base, f"{top}/")) is not None), None)
    if own is not None:
        raise UserError(
            f"--module {name}: the checkout's package {top} ({_join(own, top)}/) has no module {name}",
            "check the module's name and that the file is committed or not ignored by git",
        )
    if top in sys.stdlib_module_names or top in Installed.of(site).tops:
        return
    if _normal(top) in {_normal(name_of(line)) for line in requirements if name_of(line)}:
        return
    raise UserError(
        f"--module {name}: no module {name} in the checkout, and {top} is neither in the standard library "
        "nor installed here nor named in the task's requirements",
        "check the module's name, or list the package that provides it with --packages / --requirements",
    )


def _join(base: str, path: str) -> str:
    return path if base in ("", ".") else posixpath.join(base, path)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
