"""The bodies of clearml-launcher's subcommands (one function each, named after the subcommand)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task import config, console, vocabulary
from clearml_task.errors import UserError

if TYPE_CHECKING:
    from launcher.backends import Runner
    from launcher.execute import Settings
    from launcher.glue import Scheduler


def server(args: argparse.Namespace) -> int:
    from clearml_task.server.auth import CREDENTIALS_FILE
    from clearml_task.server.endpoints import MAX_WAIT
    from clearml_task.server.serve import api_block, create_server

    data_dir = args.data_dir or config.server_dir()
    if args.add_user or args.remove_user or args.list_users:
        return _users(args, data_dir)
    if not 0 <= args.max_wait <= MAX_WAIT:
        raise UserError(f"--max-wait must be from 0 to {MAX_WAIT} seconds", exit_code=2)
    httpd, served = create_server(data_dir, args.host, args.port, threads=args.threads,
                                  max_body_mb=args.max_body_mb, max_upload_mb=args.max_upload_mb,
                                  max_wait=args.max_wait,
                                  non_responsive_timeout=args.non_responsive_timeout)  # fmt: skip
    keys = served.app.keys
    print(f"clearml-launcher: serving the ClearML API at {served.url} (data: {data_dir})", flush=True)
    print(f"clearml-launcher: the web UI at {served.url}/", flush=True)
    if keys.fresh:
        print("New credentials were generated. Point clearml.conf at this server with:\n", flush=True)
        print(api_block(served.url, keys.access_key, keys.secret_key), flush=True)
    elif keys.generated:
        print(f"credentials: {data_dir / CREDENTIALS_FILE} (printed in full on first start only)", flush=True)
    return _serve(httpd, served)


def ui(args: argparse.Namespace) -> int:
    """The web UI of the embedded data dir: the server on loopback, its URL and where the keys to log in with
    are (a secret key is never printed)."""
    from clearml_task.server.auth import CREDENTIALS_FILE
    from clearml_task.server.serve import create_server

    data_dir = args.data_dir or config.server_dir()
    httpd, served = create_server(data_dir, "127.0.0.1", args.port)
    keys = served.app.keys
    print(f"clearml-launcher: the web UI at {served.url}/ (data: {data_dir})", flush=True)
    where = data_dir / CREDENTIALS_FILE if keys.generated else "$CLEARML_API_SECRET_KEY"
    print(f"log in with access key {keys.access_key} and the secret key in {where}", flush=True)
    return _serve(httpd, served)


def _serve(httpd: Any, served: Any) -> int:
    """Serve until interrupted, with the watchdog of non-responsive tasks running beside."""
    from clearml_task.server.watchdog import Watchdog

    watchdog = Watchdog(served.app.store, served.app.non_responsive_timeout).start()
    try:
        httpd.run()
    except KeyboardInterrupt:
        pass
    finally:
        watchdog.stop()
        httpd.close()
    return 0


def _users(args: argparse.Namespace, data_dir: Path) -> int:
    """--add-user / --remove-user / --list-users: edit the server's users file (a running server sees
    the change on its next call)."""
    from clearml_task.server import users
    from clearml_task.server.app import App
    from clearml_task.server.serve import api_block

    app = App(data_dir)  # makes the data dir and the first key pair, as a first start would
    if args.add_user:
        user = users.add(data_dir, args.add_user)
        print(f"user {user.name} ({user.id}) added; its clearml.conf section:\n", flush=True)
        print(api_block(f"http://{args.host}:{args.port}", user.access_key, user.secret_key), flush=True)
    elif args.remove_user:
        users.remove(data_dir, args.remove_user)
        print(f"user {args.remove_user} removed; its tokens no longer work", flush=True)
    else:
        rows = [(u.name, u.id, u.access_key, u.created or "(the server's own keys)") for u in app.users.all()]
        console.table(f"Users of {data_dir}", ["name", "id", "access key", "created"], rows)
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
    # `logs ID | head`: a reader that stops early ends the command quietly (console.run)
    if not args.follow:
        for event in client.task_log(args.task_id):
            sys.stdout.write(console.visible(str(event.get("msg", "")).rstrip("\n")) + "\n")
        sys.stdout.flush()
        return 0
    status = client.follow_log(args.task_id, lambda line: print(console.visible(line), flush=True))
    return 0 if status == vocabulary.COMPLETED else 1


def execute(args: argparse.Namespace) -> int:
    from clearml_task.api import Client, Session
    from launcher import execute as run
    from launcher import reaper, tether
    from launcher.logship import LogShipper

    _writable_home()
    settings = _settings(args, worker=run.default_worker())  # every flag and the engine checked: nothing made
    client = Client(Session(patient=True))  # a slow answer is waited for: the run's end must get through
    task_id = args.task_id
    if args.require_queue and client.get_task(task_id)["status"] != vocabulary.QUEUED:
        raise UserError(f"task {task_id} is not queued (--require-queue)")
    if args.clone:
        task_id = client.clone_task(task_id)
        print(f"clearml-launcher: running clone {task_id} of {args.task_id}", flush=True)
    tether.start()  # before the subreaper: the warden is not this process's child
    reaper.become_subreaper()  # whatever the task leaves running is handed back here, and ended
    task = run.take(client, task_id)
    log = LogShipper(client, task_id, settings.worker, echo=True)
    stop = _stop_on_signals()  # its session keeps its tries: no record holds the run should its end be lost
    try:
        status = run.run(client, task, settings, log, stop=stop)
    finally:
        log.close()
    print(f"clearml-launcher: task {task_id} {status}", flush=True)
    if stop.by == signal.SIGINT:
        raise KeyboardInterrupt  # Ctrl-C: `error: interrupted` and 130, as every command says it
    if stop.by == signal.SIGTERM:
        return 128 + signal.SIGTERM
    return 0 if status == vocabulary.COMPLETED else 1


def daemon(args: argparse.Namespace) -> int:
    """--status, --stop, --detached, or the daemon itself in the foreground."""
    import os

    from launcher import registry

    home = _home()
    if args.status:
        rows = [(d["worker"], d["pid"], ", ".join(d["queues"]), ", ".join(d.get("runs") or {}) or "idle",
                 d["started"], d.get("log") or "(foreground)") for d in registry.running(home)]  # fmt: skip
        console.table("Daemons on this machine", ["worker", "pid", "queues", "task", "started", "log"], rows)
        _left(home)
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
    home = _writable_home()
    if args.detached:
        argv = [a for a in sys.argv[1:] if a != "--detached"]
        info, log_file = registry.detach(argv, home)
        print(f"clearml-launcher: daemon {info['worker']} started in the background (pid {info['pid']}, "
              f"log {log_file})")  # fmt: skip
        return 0
    from clearml_task.api import Client, Session
    from launcher import daemon as daemons
    from launcher import reaper, tether

    tether.start()  # before the subreaper: the warden is not this process's child
    reaper.become_subreaper()
    claim = registry.claim(home, _gpus(args), args.queue, os.environ.get(registry.LOG_FILE_ENV, ""))
    try:
        client = Client(Session(retries=None))  # an outage of any length is waited out
        options = daemons.Options(
            queues=args.queue, fairness=args.order_fairness, polling_interval=args.polling_interval,
            once=args.once, max_tasks=args.max_tasks, create_queue=args.create_queue,
            services=args.services_mode,
        )  # fmt: skip
        settings = _settings(args, worker=claim.worker)
        settings.echo = args.foreground
        runner = daemons.Daemon(client, options, settings, claim)
        runner.stopping = client.session.stop = _stop_on_signals()  # a server that is away is not waited for
        return runner.run()
    finally:
        claim.release()


def slurm(args: argparse.Namespace) -> int:
    from launcher.backends import slurm as backend

    _dry_run_dir(args.dry_run)
    if args.dry_run is None and (why := backend.missing()):
        raise UserError(f"Slurm is not available here: {why}")
    texts = _templates(args.template_files, args.queue)
    scheduler = backend.Slurm(texts, singularity=args.singularity_mode is not None,
                              default_image=args.singularity_mode or "")  # fmt: skip
    return _glue(args, scheduler, suffix=".sh")


def k8s(args: argparse.Namespace) -> int:
    from launcher.backends import kubernetes as backend

    _dry_run_dir(args.dry_run)
    if why := backend.missing():
        raise UserError(f"Kubernetes is not available here: {why}")
    text = _templates([args.template], args.queue)[args.queue[0]]
    scheduler = backend.Kubernetes(backend.read_template(text, str(args.template)), args.namespace)
    if args.dry_run is None:
        backend.connect()
    return _glue(args, scheduler, suffix=".yaml")


def _dry_run_dir(path: Path | None) -> None:
    """--dry-run DIR made (if need be) and shown writable now: a path that cannot be is one line, a usage
    error, before the server is asked for anything."""
    import tempfile

    if path is None:
        return
    hint = "name a directory this user can write; it is made if need be"
    if path.exists() and not path.is_dir():
        raise UserError(f"--dry-run {path}: it is not a directory", hint, exit_code=2)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        why = e.strerror or str(e)
        raise UserError(f"--dry-run {path}: cannot write there: {why}", hint, exit_code=2) from None


def _templates(files: list[Path], queues: list[str]) -> dict[str, str]:
    """One template per queue (or one for all), each read and checked now, not at the first task."""
    from launcher import templates

    if len(files) not in (1, len(queues)):
        hint = "give one template per queue, in the order of --queue, or one for all"
        raise UserError(f"{len(files)} templates for {len(queues)} queues", hint, exit_code=2)
    texts = {}
    for queue, path in zip(queues, files * len(queues) if len(files) == 1 else files, strict=False):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot read the template {path}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise UserError(f"cannot read the template {path}: it is not UTF-8 text (byte "
                            f"0x{e.object[e.start]:02x} at offset {e.start})") from None  # fmt: skip
        templates.check(text, str(path))
        texts[queue] = text
    return texts


def _glue(args: argparse.Namespace, scheduler: Scheduler, suffix: str) -> int:
    import socket

    from clearml_task.api import Client, Session
    from launcher.glue import Glue, Options

    options = Options(queues=args.queue, worker=f"{socket.gethostname()}:{scheduler.name}",
                      interval=args.polling_interval, once=args.once, max_jobs=args.max_jobs,
                      dry_run=args.dry_run, suffix=suffix, state_dir=_home() / "glue")  # fmt: skip
    client = Client(Session(patient=True))
    glue = Glue(client, scheduler, options)
    glue.stopping = client.session.stop = _stop_on_signals()  # a server that is away is not waited for
    return glue.run()


def abort(args: argparse.Namespace) -> int:
    from clearml_task.api import Client

    client = Client()
    client.get_task(args.task_id)
    client.call("tasks.stop", {"task": args.task_id, "status_reason": "aborted with clearml-launcher abort"})
    status = client.get_task(args.task_id)
    said = "its worker stops it" if status["status"] == vocabulary.IN_PROGRESS else status["status"]
    print(f"clearml-launcher: task {args.task_id}: {said}")
    return 0


def _left(home: Path) -> None:
    """Runs that daemons gone left in their records (stopped while the server was away): who ends them."""
    from launcher import registry

    rows = [(d.get("worker", ""), ", ".join(str(run.get("task") or "?") for run in registry.runs_of(d)),
             d.get("started", ""))
            for d in registry.left(home)]  # fmt: skip
    if not rows:
        return
    title = "Runs left for the next daemon of their worker id"
    console.table(title, ["worker", "tasks", "daemon started"], rows)
    print(
        "clearml-launcher: a daemon started on this machine with the same --gpus takes that id (when it is "
        "free) and ends those tasks as their runs ended (failed, when a run's end was never known), or puts "
        "back in its queue a task that had not started",
        flush=True,
    )


class Stop(threading.Event):
    """Set by the first SIGTERM or Ctrl-C; `by`: which signal (0 until then)."""

    by: int = 0


def _stop_on_signals() -> Stop:
    """SIGTERM or Ctrl-C: a running task is ended (stopped, never completed) and the command exits."""
    from clearml_task.interrupts import interrupt

    stop = Stop()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            interrupt(frame)  # a second Ctrl-C: leave now (KeyboardInterrupt, once no import runs)
            return
        stop.by = stop.by or signum
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # started with Ctrl-C ignored: it stays so
        signal.signal(signal.SIGINT, handler)
    return stop


def _home() -> Path:
    return config.home() / "launcher"


def _writable_home() -> Path:
    """The launcher's home, made if need be (mode 0700), once it is known that files can be made in it:
    otherwise one line now, before a task is taken (not a traceback, nor a task failed for the machine's
    fault)."""
    import tempfile

    home = _home()
    try:
        home.mkdir(parents=True, exist_ok=True)
        # Its own user's alone: a task in a rootful container writes the work tree and the caches as root
        # (a setuid copy of a shell, say), and no other user of the machine may reach what it leaves.
        home.chmod(0o700)
        with tempfile.TemporaryFile(dir=home):
            pass
    except OSError as e:
        raise UserError(
            f"cannot use the launcher's home {home}: {e.strerror or e}",
            "set CLEARML_TASK_HOME to a directory this user can write (the launcher keeps its caches, work "
            "trees and records under it)",
        ) from None
    return home


def _gpus(args: argparse.Namespace) -> str | None:
    return "" if args.cpu_only else args.gpus


def _settings(args: argparse.Namespace, worker: str) -> Settings:
    from launcher.envcache import parse_size
    from launcher.execute import Settings

    settings = Settings(home=_home(), worker=worker, gpus=_gpus(args), grace=args.grace,
                        keep_workspace=args.keep_workspace, env_cache_size=parse_size(args.env_cache_size),
                        sdk_report_subprocess=args.sdk_report_subprocess)  # fmt: skip
    if args.docker is not None:
        settings.runner = _container(args.docker, args.container_engine)
    elif args.container_engine:
        raise UserError("--container-engine goes with --docker", exit_code=2)
    return settings


def _container(docker: str | list[str], engine: str | None) -> Runner:
    """--docker [IMAGE [ARGS...]]: the container runner, its default image and the daemon's own options."""
    import shlex

    from launcher.backends.container import Container, check_image, choose_engine
    from launcher.errors import ReproductionError

    words = [word for item in ([docker] if isinstance(docker, str) else docker) for word in shlex.split(item)]
    image, arguments = (words[0], words[1:]) if words else ("", [])
    try:
        image = check_image(image, "--docker") if image else ""
    except ReproductionError as e:
        raise UserError(e.reason, e.hint, exit_code=2) from None
    return Container(choose_engine(engine), image, arguments)
