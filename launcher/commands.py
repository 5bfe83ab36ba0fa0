"""The bodies of clearml-launcher's subcommands (one function each, named after the subcommand)."""

from __future__ import annotations

import argparse
import sys

from clearml_task import config, console


def server(args: argparse.Namespace) -> int:
    from clearml_task.server.auth import CREDENTIALS_FILE
    from clearml_task.server.serve import api_block, create_server

    data_dir = args.data_dir or config.server_dir()
    httpd, served = create_server(data_dir, args.host, args.port, threads=args.threads)
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
    found = client.tasks(**filters)
    rows = [(t["id"], t["name"], t["status"], t.get("created", "")) for t in found]
    console.table(f"Tasks on {client.session.where}", ["id", "name", "status", "created"], rows)
    return 0


def logs(args: argparse.Namespace) -> int:
    from clearml_task.api import Client

    client = Client()
    client.get_task(args.task_id)
    for event in client.task_log(args.task_id):
        sys.stdout.write(event.get("msg", "").rstrip("\n") + "\n")
    return 0
