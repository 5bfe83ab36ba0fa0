"""clearml-launcher: flags -> the command's function; no logic of its own.

argparse rather than click/typer: ClearML's flags take several values per option (`--queue q1 q2`),
which click cannot express, and argparse keeps `--help` fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from clearml_task import __version__, console, vocabulary
from clearml_task.server.body import DEFAULT_MAX_BODY_MB, MAX_BODY_ENV, MAX_UPLOAD_ENV
from launcher.envcache import DEFAULT_SIZE

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
    server.add_argument("--port", type=port, default=8008, help="port (default 8008; 0 = any free port)")
    server.add_argument(
        "--data-dir", type=Path, help="database and keys (default: $CLEARML_TASK_HOME/server)"
    )
    server.add_argument("--threads", type=count, default=8, help="worker threads (default 8)")
    server.add_argument(
        "--max-wait", type=float, default=30.0, metavar="SECONDS",
        help="longest a daemon's queues.get_next_task may wait for a task (default 30; 0: daemons poll)",
    )  # fmt: skip
    server.add_argument(
        "--non-responsive-timeout", type=seconds, metavar="SECONDS",
        help="stop in_progress tasks nothing updated for this long (default 7200, as ClearML; 0: never; "
        "env CLEARML_TASK_NON_RESPONSIVE_TIMEOUT)",
    )  # fmt: skip
    server.add_argument(
        "--max-body-mb",
        type=count,
        help=f"largest API request body with a token, in MB (default ${MAX_BODY_ENV} or "
        f"{DEFAULT_MAX_BODY_MB})",
    )
    server.add_argument(
        "--max-upload-mb",
        type=at_least_zero,
        help=f"largest file upload with a token, in MB; 0: no limit, as ClearML's file server (default "
        f"${MAX_UPLOAD_ENV} or 0)",
    )
    users = server.add_mutually_exclusive_group()
    users.add_argument("--add-user", metavar="NAME", help="add a user with a new key pair, print it, exit")
    users.add_argument("--remove-user", metavar="NAME", help="remove a user (its tokens stop working), exit")
    users.add_argument("--list-users", action="store_true", help="list the users, exit")

    ui = sub.add_parser("ui", help="the web UI of the embedded server's data, on loopback")
    ui.add_argument("--port", type=port, default=8080, help="port (default 8080; 0 = any free port)")
    ui.add_argument("--data-dir", type=Path, help="database and keys (default: $CLEARML_TASK_HOME/server)")

    execute = sub.add_parser("execute", help="run one task now, in the foreground")
    execute.add_argument("--id", required=True, dest="task_id", type=task_id, help="the task's id")
    execute.add_argument(
        "--clone", action="store_true", help="run a clone of the task (the task stays as it is)"
    )
    execute.add_argument("--require-queue", action="store_true", help="only run the task if it is queued")
    execute.add_argument(
        "--docker", nargs="?", const="", metavar="IMAGE",
        help="run it in a container: the task's image, else IMAGE (a python3 in it is all it needs)",
    )  # fmt: skip
    _run_options(execute)

    daemon = sub.add_parser("daemon", help="run tasks from queues, one at a time")
    daemon.add_argument(
        "--queue", nargs="+", default=[], metavar="QUEUE", help="queues, highest priority first"
    )
    daemon.add_argument("--order-fairness", action="store_true", help="round-robin over the queues")
    daemon.add_argument(
        "--polling-interval", type=interval, help="seconds between polls (0.5 embedded, 1 remote)"
    )
    daemon.add_argument("--create-queue", action="store_true", help="create the queues that do not exist")
    daemon.add_argument(
        "--once", action="store_true", help="run the task queued now, if any (none: exit at once), then exit"
    )
    daemon.add_argument("--max-tasks", type=count, help="exit after this many tasks")
    daemon.add_argument("--foreground", action="store_true", help="print the tasks' output here too")
    daemon.add_argument("--detached", action="store_true", help="run in the background (pid and log file)")
    daemon.add_argument(
        "--stop", nargs="?", const="", metavar="WORKER_ID", help="stop this machine's daemon(s)"
    )
    daemon.add_argument("--status", action="store_true", help="list this machine's daemons")
    daemon.add_argument(
        "--docker", nargs="*", metavar="IMAGE [ARGS]",
        help="run tasks in containers: each task's image, else IMAGE; ARGS are engine options for every "
        "container (quote them: --docker 'python:3.11 --shm-size=1g')",
    )  # fmt: skip
    daemon.add_argument(
        "--services-mode", nargs="?", type=at_least_zero, const=0, metavar="N",
        help="run up to N tasks at once (no limit without N), each with its own work tree, log and abort",
    )  # fmt: skip
    _run_options(daemon)

    slurm = sub.add_parser("slurm", help="hand tasks from queues to Slurm, one batch job per task")
    _glue_options(slurm)
    slurm.add_argument(
        "--template-files", "--template", nargs="+", required=True, type=Path, metavar="FILE",
        help="sbatch templates, one per queue in the order of --queue (one template serves every queue)",
    )  # fmt: skip
    slurm.add_argument(
        "--singularity-mode", nargs="?", const="", metavar="DEFAULT_IMAGE",
        help="run the launcher in the job inside the task's image (else DEFAULT_IMAGE) with singularity exec",
    )  # fmt: skip

    k8s = sub.add_parser("k8s", help="hand tasks from queues to Kubernetes, one Job per task")
    _glue_options(k8s)
    k8s.add_argument("--template", required=True, type=Path, metavar="FILE", help="the Job template (YAML)")
    k8s.add_argument("--namespace", default="default", help="where the Jobs go (default: default)")

    abort = sub.add_parser("abort", help="stop a task (a running one is stopped by its worker)")
    abort.add_argument("task_id", type=task_id, help="the task's id")

    sub.add_parser("queues", help="list the queues and what waits in them")

    tasks = sub.add_parser("tasks", help="list tasks")
    tasks.add_argument("--status", nargs="*", choices=vocabulary.STATUSES, metavar="STATUS",
                       help=f"only these statuses ({', '.join(vocabulary.STATUSES)})")  # fmt: skip
    tasks.add_argument("--project", help="only this project (name)")
    tasks.add_argument("--queue", help="only the tasks waiting in this queue (name or id)")

    logs = sub.add_parser("logs", help="print a task's log")
    logs.add_argument("task_id", type=task_id, help="the task's id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the task ends")
    return parser


def _glue_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", nargs="+", required=True, metavar="QUEUE", help="queues to pull from")
    parser.add_argument("--polling-interval", type=interval, default=1.0, help="seconds between polls (1)")
    parser.add_argument(
        "--max-jobs", type=at_least_zero, default=0, help="at most this many jobs at once (no limit)"
    )
    parser.add_argument("--once", action="store_true", help="hand over what is queued now, wait, then exit")
    parser.add_argument(
        "--dry-run", type=Path, metavar="DIR", help="write each task's job into DIR, submit nothing"
    )


def _run_options(parser: argparse.ArgumentParser) -> None:
    gpus = parser.add_mutually_exclusive_group()
    gpus.add_argument("--gpus", type=gpu_list, help="GPUs for the task, e.g. 0,1 (CUDA_VISIBLE_DEVICES)")
    gpus.add_argument("--cpu-only", action="store_true", help="no GPUs for the task")
    parser.add_argument(
        "--container-engine", choices=("docker", "podman"),
        help="with --docker: the engine (default: docker when its daemon answers, else podman)",
    )  # fmt: skip
    parser.add_argument("--keep-workspace", action="store_true", help="keep the task's work tree afterwards")
    parser.add_argument(
        "--env-cache-size", default=DEFAULT_SIZE, metavar="SIZE",
        help="least recently used environments go once the cache is over this (default 20G; 0: no limit)",
    )  # fmt: skip
    parser.add_argument(
        "--grace", type=seconds, default=10.0, help="seconds from SIGTERM to SIGKILL on abort"
    )
    parser.add_argument(
        "--sdk-report-subprocess",
        action="store_true",
        help="the clearml SDK in the task reports from a subprocess (its Linux default; 5-11 s more at exit)",
    )


def port(text: str) -> int:
    """A TCP port: 0 (any free one) to 65535."""
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 to 65535; 0: any free port)")
    return value


def task_id(text: str) -> str:
    """A task id as a server gives them: letters and digits (ClearML's are 32 hex digits)."""
    if not text or len(text) > 128 or not text.isascii() or not text.isalnum():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a task id (letters and digits, as `tasks` lists them)"
        )
    return text


def count(text: str) -> int:
    """A whole number of at least 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def at_least_zero(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def seconds(text: str) -> float:
    """A duration in seconds: finite, not negative."""
    value = _float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds (0 or more)")
    return value


MIN_INTERVAL = 0.1  # seconds between polls; less is a busy loop


def interval(text: str) -> float:
    """Seconds between polls: at least MIN_INTERVAL (0 would ask the server without pause)."""
    value = _float(text)
    if not MIN_INTERVAL <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds, at least {MIN_INTERVAL}")
    return value


def gpu_list(text: str) -> str:
    """GPUs as CUDA_VISIBLE_DEVICES takes them: indexes or UUIDs, comma-separated (`0,1`, `GPU-…`)."""
    import re

    if text and not re.fullmatch(r"[A-Za-z0-9._/-]+(,[A-Za-z0-9._/-]+)*", text):  # "": no GPU
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of GPUs (indexes or UUIDs: 0,1)")
    return text


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from launcher import commands

    handler = getattr(commands, args.command)
    return console.run(PROG, lambda: handler(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
