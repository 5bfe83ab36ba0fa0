"""clearml-task: flags -> one Request -> prepare + submit -> the result; no logic of its own.

The flags are ClearML's clearml-task 2.1.12's, with the same names and meanings, plus --dry-run,
--output json, --max-patch-size and --debug. argparse rather than click: several flags take many values
(`--args a=1 b=2`), and it keeps `--help` fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from clearml_task import __version__, console, interrupts, vocabulary
from clearml_task.errors import UserError

TYPE_CHECKING = False  # as typing's, without importing typing for --help (mypy reads the name so too)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from clearml_task.request import Request

PROG = "clearml-task"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=_formatter,
        description="Create a ClearML task from a local checkout, a repository URL or a script, "
        "exactly as it is here (uncommitted changes included), and optionally enqueue it.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument(
        "--project", help="project name, nested as a/b/c (created when missing); optional with --base-task-id"
    )
    p.add_argument("--name", help="task name; required unless --base-task-id")
    p.add_argument("--tags", nargs="*", default=[], help="task tags")
    code = p.add_argument_group("code")
    code.add_argument(
        "--repo", help="repository URL (or path, recorded absolute) to run from, at --branch / --commit"
    )
    code.add_argument("--branch", help="with --repo: branch or tag (default: the remote's default branch)")
    code.add_argument(
        "--commit", help="with --repo: commit id (the branch recorded is one it is on, or none)"
    )
    code.add_argument(
        "--folder", help="a local checkout (default: the one around --script or the current dir)"
    )
    code.add_argument(
        "--script",
        help="entry point script (relative to the current dir, --folder, the repo, or --cwd in it)",
    )
    code.add_argument("--module", help="entry point module, run as `python -m MODULE` (instead of --script)")
    code.add_argument("--cwd", help="working directory, relative to the repository root (default: the root)")
    code.add_argument("--binary", help="interpreter (default: python3.X of this one, /bin/bash for .sh)")
    code.add_argument(
        "--args", nargs="*", default=[], metavar="KEY=VALUE", help="arguments for the script, each key once"
    )
    code.add_argument(
        "--skip-task-init", action="store_true", help="do not inject Task.init() into the script"
    )
    code.add_argument(
        "--skip-repo-detection", action="store_true", help="send the script alone, not its repo"
    )
    code.add_argument(
        "--max-patch-size", type=_megabytes, metavar="MB", help="largest patch of local changes (default 5)"
    )
    code.add_argument(
        "--include-secrets", action="store_true",
        help="send untracked files that look like secrets too (.env*, *.pem, *.key, id_rsa*, .netrc, "
        "credentials.json, ...); by default they stay out of the patch and are named",
    )  # fmt: skip
    env = p.add_argument_group("environment")
    env.add_argument("--requirements", help="requirements file for the task")
    env.add_argument("--packages", nargs="*", help="packages for the task, e.g. numpy 'torch>=2'")
    env.add_argument(
        "--force-no-requirements",
        action="store_true",
        help="install no requirements (not with --requirements / --packages)",
    )
    env.add_argument(
        "--skip-python-env-install", action="store_true", help="the agent installs no Python env"
    )
    env.add_argument("--docker", help="container image")
    env.add_argument("--docker_args", "--docker-args", dest="docker_args", help="container arguments")
    env.add_argument(
        "--docker_bash_setup_script", "--docker-bash-setup-script", dest="docker_bash_setup_script",
        help="bash run in the container first (a file, or the script itself)",
    )  # fmt: skip
    env.add_argument(
        "--output-uri",
        help="where the task stores its outputs: a URI (s3://, gs://, azure://, file://) or a local path "
        "(./out, /abs/out; recorded as file://)",
    )
    run = p.add_argument_group("task")
    run.add_argument("--task-type", help="ClearML task type (default: training)")
    run.add_argument("--queue", help="enqueue into this queue (name or id)")
    run.add_argument("--base-task-id", help="clone this task and override only what is given")
    out = p.add_argument_group("output")
    out.add_argument(
        "--dry-run",
        action="store_true",
        help="print the task that would be created, as YAML (JSON with --output json); contacts no server, "
        "except to read the base task with --base-task-id",
    )
    out.add_argument("--output", choices=("text", "json"), default="text", help="result format")
    out.add_argument(
        "--follow",
        action="store_true",
        help="with --queue: print the task's log until it ends (exit 0 if completed); while the task waits, "
        "stderr says whether a worker listens on the queue. With --output json, stdout stays JSON lines: "
        'the result, then {"log": LINE} per log line, then {"id": ID, "status": STATUS}',
    )
    out.add_argument("--debug", action="store_true", help="show tracebacks")
    for flag in NOT_SUPPORTED:  # ClearML's clearml-task has them: say so, not "unrecognized arguments"
        p.add_argument(flag, nargs="?", action=_NotSupported, help=argparse.SUPPRESS)
    return p


# Flags of ClearML's clearml-task this one does not have (pipelines, offline sessions).
NOT_SUPPORTED = (
    "--pipeline", "--pipeline-version", "--pipeline-dont-add-run-number", "--import-offline-session",
)  # fmt: skip


class _NotSupported(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: object,
        values: object,
        option_string: str | None = None,
    ) -> None:
        parser.error(f"{option_string} is a flag of ClearML's clearml-task that this one does not support; "
                     "use ClearML's own clearml-task for pipelines and offline sessions")  # fmt: skip


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's help formatter at the width it would find itself (COLUMNS, then the terminal's, then 80),
    found without the `shutil` it imports for that (with bz2 and lzma: ~3 ms of --help)."""
    import os

    try:
        width = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        width = 0
    if width <= 0:
        try:
            width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            width = 0
    return argparse.HelpFormatter(prog, width=(width or 80) - 2)


def _megabytes(value: str) -> int:
    try:
        size = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of megabytes") from None
    if size <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return int(size * 1024 * 1024)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return console.run(PROG, lambda: _run(args), debug=args.debug)


def _run(args: argparse.Namespace) -> int:
    from clearml_task import submit

    try:
        os.getcwd()  # every relative path given is read from here
    except FileNotFoundError:
        raise UserError(
            "the current directory no longer exists", "cd to an existing directory and run it again"
        ) from None
    request = _request(args)
    client_of = None if request.dry_run else submit.start_client(request)  # the server's side meanwhile
    prepared = submit.prepare(request)
    if request.dry_run:
        shown = prepared.document
        if request.base_task_id:
            from clearml_task.api import Client

            shown = submit.preview_clone(request, Client())
        _print_dry_run(request, shown, args.output)
        return 0
    assert client_of is not None
    client = client_of()
    # A task is made whole and named, or not at all: Ctrl-C waits until it is (a second one does not).
    with interrupts.Held(PROG, "the task is being created and enqueued; it is finished and shown"):
        result = submit.submit(request, prepared, client)
        if args.output == "json":
            import json

            source = prepared.source
            left_out = list(source.secrets_left_out) if source is not None else []
            shown = {"id": result.task_id, "project": result.project_id, "queue": result.queue_id,
                     "url": result.url, "left_out": left_out, "notes": list(prepared.notes)}  # fmt: skip
            print(json.dumps(shown))
            for line in [f"left out (looks like a secret): {path}" for path in left_out] + prepared.notes:
                print(f"{PROG}: {line}", file=sys.stderr)  # what the text summary says, for whoever reads
        else:
            from clearml_task import summary

            summary.show(request, result, embedded=client.session.config.embedded)
    if request.follow and result.queue_id and request.queue:
        from clearml_task.follow import follow

        return follow(client, result.task_id, result.queue_id, request.queue, as_json=args.output == "json")
    return 0


def _request(args: argparse.Namespace) -> Request:
    """The flags as a Request (making it checks them)."""
    from clearml_task.request import Request

    return Request(
        project=args.project, name=args.name, tags=args.tags, repo=args.repo, branch=args.branch,
        commit=args.commit, folder=args.folder, script=args.script, module=args.module, cwd=args.cwd,
        binary=args.binary, args=args.args, queue=args.queue, requirements=args.requirements,
        packages=args.packages, docker=args.docker, docker_args=args.docker_args,
        docker_bash_setup_script=args.docker_bash_setup_script, output_uri=args.output_uri,
        task_type=args.task_type, skip_task_init=args.skip_task_init, base_task_id=args.base_task_id,
        force_no_requirements=args.force_no_requirements, skip_repo_detection=args.skip_repo_detection,
        skip_python_env_install=args.skip_python_env_install, max_patch_size=args.max_patch_size,
        include_secrets=args.include_secrets, dry_run=args.dry_run, follow=args.follow,
    )  # fmt: skip


def _print_dry_run(request: Request, document: dict[str, Any], output: str) -> None:
    """The task that would be created (`document`, a new task's or a clone's), as YAML or JSON."""
    shaped = {"project": request.project, **document, "status": vocabulary.CREATED}
    if request.queue:
        shaped["execution"] = {"queue": request.queue}
    if output == "json":
        import json

        print(json.dumps(shaped, indent=2))
        return
    import yaml

    sys.stdout.write(yaml.safe_dump(shaped, sort_keys=False, allow_unicode=True, width=120))


if __name__ == "__main__":
    sys.exit(main())
