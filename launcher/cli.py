"""clearml-launcher: flags -> the command's function; no logic of its own.

argparse rather than click/typer: ClearML's flags take several values per option (`--queue q1 q2`),
which click cannot express, and argparse keeps `--help` fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from clearml_task import __version__, console

PROG = "clearml-launcher"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Reproduce and run ClearML tasks; serve the server."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    server = sub.add_parser("server", help="serve the embedded ClearML-API server over HTTP")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    server.add_argument("--port", type=int, default=8008, help="port (default 8008; 0 = any free port)")
    server.add_argument(
        "--data-dir", type=Path, help="database and keys (default: $CLEARML_TASK_HOME/server)"
    )
    server.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")

    sub.add_parser("queues", help="list the queues and what waits in them")

    tasks = sub.add_parser("tasks", help="list tasks")
    tasks.add_argument("--status", nargs="*", help="only these statuses")
    tasks.add_argument("--project", help="only this project (name)")

    logs = sub.add_parser("logs", help="print a task's log")
    logs.add_argument("task_id", help="the task's id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from launcher import commands

    handler = getattr(commands, args.command)
    return console.run(PROG, lambda: handler(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
