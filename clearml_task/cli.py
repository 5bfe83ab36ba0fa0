"""clearml-task: flags -> one Request -> create (and enqueue) -> the result; no logic of its own.

This first cut sends a script as it is (a standalone script); repository capture, injection,
requirements and the rest of ClearML's flags arrive with the issues that own them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from clearml_task import __version__, console

PROG = "clearml-task"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Create a ClearML task from a script and enqueue it."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--project", required=True, help="project name (created when missing)")
    parser.add_argument("--name", required=True, help="task name")
    parser.add_argument("--script", required=True, type=Path, help="the entry point script")
    parser.add_argument("--args", nargs="*", default=[], metavar="KEY=VALUE", help="arguments for the script")
    parser.add_argument("--queue", help="enqueue the task into this queue (name or id)")
    parser.add_argument("--task-type", default="training", help="ClearML task type (default: training)")
    parser.add_argument("--tags", nargs="*", default=[], help="task tags")
    parser.add_argument("--output", choices=("text", "json"), default="text", help="result format")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return console.run(PROG, lambda: _create(args), debug=args.debug)


def _create(args: argparse.Namespace) -> int:
    from clearml_task import document
    from clearml_task.api import Client

    request = document.Request(
        project=args.project,
        name=args.name,
        script=args.script,
        task_type=args.task_type,
        args=document.parse_args(args.args),
        tags=args.tags,
        queue=args.queue,
    )
    doc = document.standalone_script(request)
    client = Client()
    queue_id = client.queue_id(request.queue) if request.queue else None  # fail before creating anything
    project_id = client.project_id(request.project)
    task_id = client.create_task({**doc, "project": project_id})
    if queue_id:
        client.enqueue(task_id, queue_id)
    url = client.session.config.task_url(project_id, task_id)
    if args.output == "json":
        print(json.dumps({"id": task_id, "project": project_id, "queue": queue_id, "url": url}))
    else:
        print(f"created task {task_id} ({request.name}) in project {request.project}")
        if queue_id:
            print(f"enqueued into {request.queue}")
        if url:
            print(f"task page: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
