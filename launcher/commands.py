"""The bodies of clearml-launcher's subcommands (one function each, named after the subcommand)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from clearml_task import config, console, vocabulary
from clearml_task.errors import UserError

if TYPE_CHECKING:
    from launcher.execute import Settings


def server(args: argparse.Namespace) -> int:
    from clearml_task.server.auth import CREDENTIALS_FILE
    from clearml_task.server.serve import api_block, create_server
    from clearml_task.server.watchdog import Watchdog

    data_dir = args.data_dir or config.server_dir()
    httpd, served = create_server(data_dir, args.host, args.port, threads=args.threads,
                                  non_responsive_timeout=args.non_responsive_timeout)  # fmt: skip
    watchdog = Watchdog(served.app.store, served.app.non_responsive_timeout).start()
    keys = served.app.keys
    print(f"clearml-launcher: serving the ClearML API at {served.url} (data: {data_dir})", flush=True)
    if keys.fresh:
        print("New credentials were generated. Point clearml.conf at this server with:\n", flush=True)
        print(api_block(served.url, keys.access_key, keys.secret_key), flush=True)
    elif keys.generated:
        print(f"credentials: {data_dir / CREDENTIALS_FILE} (printed in full on first start only)", flush=True)
    try:
        httpd.run()
    except KeyboardInterrupt:
        pass
    finally:
        watchdog.stop()
        httpd.close()
    return 0


def queues(args: argparse.Namespace) -> int:
    from clearml_task.api import Client

    client = Client()
    found = client.queues()
    names = {t["id"]: t["name"] for t in client.tasks(id=[e["task"] for q in found for e in q["entries"]])}
    rows = [
        (
            q["name"],
            len(q["entries"]),
            ", ".join(f"{names.get(e['task'], '?')} ({e['task']})" for e in q["entries"]),
        )
        for q in found
    ]
    console.table(f"Queues on {client.session.where}", ["queue", "entries", "tasks (in order)"], rows)
    return 0


def tasks(args: argparse.Namespace) -> int:
    from clearml_task.api import Client

    client = Client()
    filters: dict[str, object] = {"order_by": ["-created"]}
    if args.status:
        filters["status"] = args.status
    if args.project:
        filters["project"] = [client.project_id(args.project, create=False)]
    if args.queue:
        queue = client.call("queues.get_by_id", {"queue": client.queue_id(args.queue)})["queue"]
        filters["id"] = [e["task"] for e in queue["entries"]]
    found = client.tasks(**filters)
    rows = [(t["id"], t["name"], t["status"], t.get("created", "")) for t in found]
    console.table(f"Tasks on {client.session.where}", ["id", "name", "status", "created"], rows)
    return 0


def logs(args: argparse.Namespace) -> int:
    from clearml_task.api import Client

    client = Client()
    client.get_task(args.task_id)
    try:
        if not args.follow:
            for event in client.task_log(args.task_id):
                sys.stdout.write(event.get("msg", "").rstrip("\n") + "\n")
            sys.stdout.flush()
            return 0
        status = client.follow_log(args.task_id, lambda line: print(line, flush=True))
    except BrokenPipeError:  # `logs ID | head`: the reader has what it wanted
        _quiet_stdout()
        return 0
    return 0 if status == vocabulary.COMPLETED else 1


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail on a closed pipe."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def execute(args: argparse.Namespace) -> int:
    from clearml_task.api import Client
    from launcher import execute as run
    from launcher import reaper
    from launcher.logship import LogShipper

    client = Client()
    task_id = args.task_id
    if args.require_queue and client.get_task(task_id)["status"] != vocabulary.QUEUED:
        raise UserError(f"task {task_id} is not queued (--require-queue)")
    if args.clone:
        task_id = client.clone_task(task_id)
        print(f"clearml-launcher: running clone {task_id} of {args.task_id}", flush=True)
    settings = _settings(args, worker=run.default_worker())
    reaper.become_subreaper()  # whatever the task leaves running is handed back here, and ended
    task = run.take(client, task_id)
    log = LogShipper(client, task_id, settings.worker, echo=True)
    stop = _stop_on_signals()
    try:
        status = run.run(client, task, settings, log, stop=stop)
    finally:
        log.close()
    print(f"clearml-launcher: task {task_id} {status}", flush=True)
    return 0 if status == vocabulary.COMPLETED else 1


MIN_POLLING_INTERVAL = 0.1  # seconds; less is a busy loop


def daemon(args: argparse.Namespace) -> int:
    """--status, --stop, --detached, or the daemon itself in the foreground."""
    import os

    from launcher import registry

    home = _home()
    if args.status:
        rows = [(d["worker"], d["pid"], ", ".join(d["queues"]), d.get("task") or "idle", d["started"],
                 d.get("log") or "(foreground)") for d in registry.running(home)]  # fmt: skip
        console.table("Daemons on this machine", ["worker", "pid", "queues", "task", "started", "log"], rows)
        return 0
    if args.stop is not None:
        chosen = registry.select(home, args.stop or None, args.queue, _gpus(args))
        stopped = registry.stop(chosen)
        print(f"clearml-launcher: stopped {', '.join(stopped) or 'nothing (no daemon runs)'}", flush=True)
        return 0
    if not args.queue:
        raise UserError(
            "--queue is required", "name the queues to pull from, highest priority first", exit_code=2
        )
    if args.polling_interval is not None and args.polling_interval < MIN_POLLING_INTERVAL:
        raise UserError(f"--polling-interval must be at least {MIN_POLLING_INTERVAL} seconds",
                        exit_code=2)  # fmt: skip
    if args.detached:
        argv = [a for a in sys.argv[1:] if a != "--detached"]
        info, log_file = registry.detach(argv, home)
        print(f"clearml-launcher: daemon {info['worker']} started in the background (pid {info['pid']}, "
              f"log {log_file})")  # fmt: skip
        return 0
    from clearml_task.api import Client, Session
    from launcher import daemon as daemons
    from launcher import reaper

    reaper.become_subreaper()
    claim = registry.claim(home, _gpus(args), args.queue, os.environ.get(registry.LOG_FILE_ENV, ""))
    try:
        client = Client(Session(retries=None))  # an outage of any length is waited out
        options = daemons.Options(
            queues=args.queue, fairness=args.order_fairness, polling_interval=args.polling_interval,
            once=args.once, max_tasks=args.max_tasks, create_queue=args.create_queue,
        )  # fmt: skip
        settings = _settings(args, worker=claim.worker)
        settings.echo = args.foreground
        runner = daemons.Daemon(client, options, settings, claim)
        runner.stopping = _stop_on_signals()
        return runner.run()
    finally:
        claim.release()


def abort(args: argparse.Namespace) -> int:
    from clearml_task.api import Client

    client = Client()
    client.get_task(args.task_id)
    client.call("tasks.stop", {"task": args.task_id, "status_reason": "aborted with clearml-launcher abort"})
    status = client.get_task(args.task_id)
    said = "its worker stops it" if status["status"] == vocabulary.IN_PROGRESS else status["status"]
    print(f"clearml-launcher: task {args.task_id}: {said}")
    return 0


def _stop_on_signals() -> threading.Event:
    """SIGTERM or Ctrl-C: a running task is ended (stopped, never completed) and the command exits."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: leave now
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _home() -> Path:
    return config.home() / "launcher"


def _gpus(args: argparse.Namespace) -> str | None:
    return "" if args.cpu_only else args.gpus


def _settings(args: argparse.Namespace, worker: str) -> Settings:
    from launcher.envcache import parse_size
    from launcher.execute import Settings

    return Settings(home=_home(), worker=worker, gpus=_gpus(args), grace=args.grace,
                    keep_workspace=args.keep_workspace, env_cache_size=parse_size(args.env_cache_size),
                    sdk_report_subprocess=args.sdk_report_subprocess)  # fmt: skip
