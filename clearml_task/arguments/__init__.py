"""Arguments: `--args k=v` into hyperparams.Args at creation, and back into a command line at run time.

The entry point's parser is read statically with libcst, never by running the script (`read_parser`,
readers/): argparse (groups, mutually exclusive groups, parents, subparsers), click, typer and Hydra. At
creation `parse_overrides` reads the pairs and `check_and_record` checks them against the parser and
records every option in hyperparams.Args (record.py), so a clone can be edited in any ClearML UI. At run
time the launcher reads the parser again from the reproduced file (`read_parser_file`) and `command_line`
turns the Args back into the argv the script's own parser accepts (render.py): only what differs from the
defaults, with the right option string and action.

Value forms are those the clearml SDK (2.1) records for argparse options (values.py), so both sides read
each other's tasks: lists as a Python list literal (`[3, 4]`), booleans `True` / `False` (read back in any
case, also 1/0, yes/no and on/off), and None as an empty value (the SDK records None as ""; "None" is read
back the same). What cannot be read literally (a default from `os.environ`, a custom type) is reported as
unknown and never guessed: an option whose default is unknown is recorded only when it is given, and
passed only then.

Subcommand options are addressed as `sub.option`; the subcommand that runs is recorded under the
subparsers' dest (or `command`). For a script whose parser cannot be read, every Args entry is passed as
`--name value` (the first cut).

Args recorded by ClearML's own tools are read too: plain dests for subcommand options, `command/option`
and click.Command entries for click groups, Hydra's own options and `overrides` list. When the script calls
Task.init, the clearml SDK sets the argparse defaults from the same Args before parsing; the command line
then agrees with it, except for what accumulates (append, extend), which is left to the SDK; a count is
passed on the command line, since the SDK reads it back as a list: the injected Task.init leaves the
script's count options out of its argparse binding (`counted_dests`). Where the SDK is not installed in the
task's environment, the launcher passes everything on the command line (`sdk_binds_args` off).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clearml_task.arguments.model import UNKNOWN, CommandLine, Option, Parser, counted_dests
from clearml_task.arguments.readers import read_parser, read_parser_cached, read_parser_file
from clearml_task.arguments.record import (
    check_and_record,
    check_clone_overrides,
    merge_overrides,
    parse_overrides,
)

if TYPE_CHECKING:
    from clearml_task.arguments.hydra_config import check_overrides as check_hydra_overrides
    from clearml_task.arguments.render import command_line

__all__ = [
    "UNKNOWN",
    "CommandLine",
    "Option",
    "Parser",
    "check_and_record",
    "check_clone_overrides",
    "check_hydra_overrides",
    "command_line",
    "counted_dests",
    "merge_overrides",
    "parse_overrides",
    "read_parser",
    "read_parser_cached",
    "read_parser_file",
]


def __getattr__(name: str) -> Any:
    """command_line (the launcher's) and check_hydra_overrides (a Hydra app's), imported when first asked
    for: creating a task for another script needs neither."""
    if name == "command_line":
        from clearml_task.arguments.render import command_line

        return command_line
    if name == "check_hydra_overrides":
        from clearml_task.arguments.hydra_config import check_overrides

        return check_overrides
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
