"""How fast the web UI's pages paint for a project of 1,000 tasks (aim: first paint under 200 ms).

    python bench/web.py [--tasks 1000] [--repeats 5] [--patch-kb 20]

A temp data dir is filled in process (the app's own endpoints, no HTTP): one project of `--tasks` tasks
shaped as clearml-task makes them (a script section with a 20 KB patch (--patch-kb), requirements, six Args
hyperparams), the newest one with a 2,000-line log and 3 metrics x 2 variants x 200 iterations of scalars,
100 of them queued, and two workers. Then `python -m launcher server --port 0` serves it on loopback and,
for every page, two figures are taken, each the median of `--repeats` loads after one warm-up load:

- server: the time to the page's whole HTML over HTTP (requests, a logged-in session);
- first paint: Chromium's first-contentful-paint for a navigation to the page (Playwright driving
  /usr/bin/chromium, its static files cached as a returning user has them), when both are installed.

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import server, table, temp_dir

from clearml_task.server.app import App
from clearml_task.server.auth import first_user

AIM_MS = 200.0
TABS = ("execution", "configuration", "artifacts", "models", "info", "console", "scalars", "plots",
        "debug-samples")  # fmt: skip
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def call(app: App, token: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    code, envelope = app.handle(f"/{endpoint}", json.dumps(body).encode(), authorization=f"Bearer {token}")
    if code != 200:
        raise RuntimeError(f"{endpoint}: {envelope['meta']['result_msg']}")
    data: dict[str, Any] = envelope["data"]
    return data


def fill(data_dir: Path, count: int, patch_kb: int = 20) -> dict[str, str]:
    """The data set; returns the ids the pages need (project, two tasks)."""
    app = App(data_dir)
    token = app.tokens.issue(first_user(app.keys))
    project = call(app, token, "projects.create", {"name": "bench web"})["id"]
    patch = "".join(f"+line {i} of an uncommitted change to train.py\n" for i in range(patch_kb * 20))
    header = (
        f"diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1,0 +1,{patch_kb * 20} @@\n"
    )
    diff = header + patch
    args = {name: {"value": value, "type": "str", "description": f"the {name}"} for name, value in
            (("lr", "0.1"), ("epochs", "10"), ("batch_size", "64"), ("optimizer", "adam"), ("seed", "1"),
             ("data", "/data/imagenet"))}  # fmt: skip
    ids = []
    for n in range(count):
        body = {
            "name": f"train resnet #{n}", "type": "training", "project": project, "tags": ["bench"],
            "script": {"repository": "https://example.com/org/vision.git", "branch": "main",
                       "version_num": "0" * 40, "entry_point": "train.py", "working_dir": ".",
                       "binary": "python3.11", "diff": diff,
                       "requirements": {"pip": "torch==2.3.1\nnumpy==1.26.4\n", "source": "given"}},
            "hyperparams": {"Args": {**args, "seed": {**args["seed"], "value": str(n)}}},
        }  # fmt: skip
        ids.append(call(app, token, "tasks.create", body)["id"])
    for task_id in ids[:100]:
        call(app, token, "tasks.enqueue", {"task": task_id, "queue_name": "gpu"})
    newest = ids[-1]
    call(app, token, "tasks.started", {"task": newest, "force": True})
    start = int(time.time() * 1000) - 3_600_000
    logs = [
        {
            "task": newest,
            "type": "log",
            "timestamp": start + i,
            "msg": f"epoch {i // 200} step {i} loss 0.{i}",
        }
        for i in range(2000)
    ]
    series = [(metric, variant) for metric in ("loss", "accuracy", "lr") for variant in ("train", "val")]
    scalars = [
        {"task": newest, "type": "training_stats_scalar", "metric": metric, "variant": variant, "iter": i,
         "value": 1 / (i + 1), "timestamp": start + i * 10}
        for metric, variant in series
        for i in range(200)
    ]  # fmt: skip
    call(app, token, "events.add_batch", {"requests": logs + scalars})
    for n, worker in enumerate(("gpu-box:0", "gpu-box:1")):
        call(app, token, "workers.status_report", {"worker": worker, "task": ids[-1 - n], "queues": ["gpu"]})
    app.store.close()
    return {"project": project, "task": newest, "other": ids[-2]}


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    project, task = ids["project"], ids["task"]
    base = f"/projects/{project}/tasks/{task}"
    return [
        ("task table (all projects)", "/projects/*/tasks"),
        ("task table (project, sorted)", f"/projects/{project}/tasks?sort=name"),
        ("task table (status filter)", f"/projects/{project}/tasks?status=queued"),
        ("task table (search)", f"/projects/{project}/tasks?search=%2399"),
        *[(f"task: {tab}", f"{base}/{tab}") for tab in TABS],
        ("full-screen console (SDK link)", f"/projects/{project}/experiments/{task}/output/log"),
        ("compare: scalars", f"/projects/*/compare-tasks;ids={task},{ids['other']}/scalars"),
        ("compare: hyperparameters", f"/projects/*/compare-tasks;ids={task},{ids['other']}/hyper-params"),
        ("queues", "/workers-and-queues/queues"),
        ("workers", "/workers-and-queues/workers"),
    ]


def log_in(url: str, keys: dict[str, str]) -> Any:
    import requests

    session = requests.Session()
    session.trust_env = False
    form = session.get(f"{url}/login", timeout=30).text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token, "no login form"
    done = session.post(f"{url}/login", timeout=30, data={"csrf": token[1], "access_key": keys["access_key"],
                                                          "secret_key": keys["secret_key"]})  # fmt: skip
    done.raise_for_status()
    return session


def server_times(session: Any, url: str, path: str, repeats: int) -> float:
    session.get(url + path, timeout=60).raise_for_status()
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        session.get(url + path, timeout=60).raise_for_status()
        runs.append(time.perf_counter() - began)
    return statistics.median(runs) * 1000


def paint_times(url: str, keys: dict[str, str], paths: list[str], repeats: int) -> list[float] | None:
    """Chromium's first-contentful-paint (ms) of each path, logged in through the form; None when
    Playwright or Chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path(CHROMIUM).exists():
        return None
    out = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(f"{url}/login")
        page.fill("input[name=access_key]", keys["access_key"])
        page.fill("input[name=secret_key]", keys["secret_key"])
        page.click("button[type=submit]")
        page.wait_for_url("**/projects/*/tasks")
        for path in paths:
            runs = []
            for attempt in range(repeats + 1):
                page.goto(url + path)
                paint = page.evaluate(
                    """() => new Promise((resolve) => new PerformanceObserver((list, observer) => {
                        const entry = list.getEntries().find((e) => e.name === "first-contentful-paint");
                        if (entry) { observer.disconnect(); resolve(entry.startTime); }
                    }).observe({ type: "paint", buffered: true }))"""
                )
                if attempt:
                    runs.append(float(paint))
            out.append(statistics.median(runs))
        browser.close()
    return out


def main() -> int:
    """Fill, serve, measure every page, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--patch-kb", type=int, default=20, help="each task's uncommitted patch (KB)")
    args = parser.parse_args()
    with temp_dir("bench-web-") as tmp:
        began = time.perf_counter()
        ids = fill(tmp / "server", args.tasks, args.patch_kb)
        print(f"filled {args.tasks} tasks in {time.perf_counter() - began:.1f} s", flush=True)
        keys: dict[str, str] = json.loads((tmp / "server" / "credentials.json").read_text())
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARML_API_")}
        with server(tmp / "server", env) as url:
            listed = pages(ids)
            session = log_in(url, keys)
            served = [server_times(session, url, path, args.repeats) for _, path in listed]
            painted = paint_times(url, keys, [path for _, path in listed], args.repeats)
    where = f"python {platform.python_version()} on {platform.system()} {platform.machine()}"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{where}, {os.cpu_count()} cpus (load average {load}); {args.tasks} tasks with {args.patch_kb} KB "
          f"patches; median of {args.repeats} loads after a warm-up")  # fmt: skip
    rows = [["page", "server (ms)", "first paint (ms)", "aim", "first paint / aim"]]
    for n, (name, _) in enumerate(listed):
        paint = painted[n] if painted else None
        painted_ms = f"{paint:.0f}" if paint is not None else "n/a"
        ratio = f"{paint / AIM_MS:.2f}" if paint is not None else "n/a"
        rows.append([name, f"{served[n]:.1f}", painted_ms, f"< {AIM_MS:.0f} ms", ratio])
    print(table(rows))
    if painted is None:
        print(
            "first paint not measured: needs Playwright (test extras) and Chromium (apt-get install chromium)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
