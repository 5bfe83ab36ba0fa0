"""What a backend costs per task: a container run against a host run, and Slurm from submit to first line.

    python bench/backends.py [--runs 5] [--only container,slurm]

1. container: the same task (the `jobs` fixture's train.py, no requirements, no Task.init()) run with
   `clearml-launcher execute --id T` on the host and with `--docker IMAGE --container-engine podman` (the
   tests' debootstrap python3 image, podman with runc), `--runs` times each, alternating; prints the median
   wall time per task of each and the difference (the container's start overhead per task: create, start,
   the venv built inside, wait, remove), plus a bare `podman run --rm IMAGE true` for scale.
2. slurm: a single-node Slurm (the tests' recipe) and `clearml-launcher slurm --queue Q --template T --once`
   for one queued task at a time: from the glue's start (it submits within one poll) to the task's first
   line of output in its log (the log event's stamp), and sbatch -> first line of a bare `sbatch --wrap`.
Everything runs in temp dirs under the ephemeral (embedded) server; nothing is left running.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, temp_dir

sys.path.insert(0, str(ROOT))  # the tests' engine helpers: the same image and the same single-node Slurm

from testing import containers, slurm
from testing.repos import make_repo

TEMPLATE = """\
#!/bin/bash
#SBATCH --output=OUTPUT/%j.out
${CLEARML_PRE_SETUP}
${CLEARML_AGENT_EXECUTE}
"""


def launcher(*argv: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "launcher", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True)  # fmt: skip
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"clearml-launcher {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return took


def create_task(folder: Path, queue: str | None = None) -> str:
    from clearml_task.api import Client
    from clearml_task.request import Request
    from clearml_task.submit import prepare, submit

    request = Request(project="bench", name="backends", folder=str(folder), script="train.py",
                      skip_task_init=True, force_no_requirements=True, queue=queue)  # fmt: skip
    return submit(request, prepare(request), Client()).task_id


def container_bench(runs: int, work: Path, env: dict[str, str]) -> None:
    """The same task on the host and in a container, alternating; medians and their difference."""
    work.mkdir(parents=True)
    engine = containers.engine_env(work)
    image = containers.test_image(engine)
    env = {**env, **engine}
    os.environ.update(engine)
    repo = make_repo(work / "repo", "jobs")
    host, inside = [], []
    launcher("execute", "--id", create_task(repo.work), env=env)  # priming: caches filled
    launcher("execute", "--id", create_task(repo.work), "--docker", image, "--container-engine", "podman",
             env=env)  # fmt: skip
    for _ in range(runs):
        host.append(launcher("execute", "--id", create_task(repo.work), env=env))
        inside.append(launcher("execute", "--id", create_task(repo.work), "--docker", image,
                               "--container-engine", "podman", env=env))  # fmt: skip
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["podman", "run", "--rm", image, "true"], env=env, check=True, capture_output=True)
        bare.append(time.perf_counter() - started)
    h, c, b = statistics.median(host), statistics.median(inside), statistics.median(bare)
    print(f"container: host run {h:.2f} s, container run {c:.2f} s per task (median of {runs}); "
          f"overhead {c - h:.2f} s; bare `podman run --rm true` {b:.2f} s")  # fmt: skip
    print(f"  host runs: {', '.join(f'{t:.2f}' for t in host)}")
    print(f"  container runs: {', '.join(f'{t:.2f}' for t in inside)}")


def slurm_bench(runs: int, work: Path, env: dict[str, str]) -> None:
    """A task through the Slurm glue, and a bare sbatch, from submission to the first line of output."""
    from clearml_task.api import Client

    work.mkdir(parents=True)
    with slurm.single_node(work / "slurm") as cluster:
        env = {**env, **cluster}
        os.environ.update(cluster)
        output = work / "out"
        output.mkdir()
        template = work / "job.sh"
        template.write_text(TEMPLATE.replace("OUTPUT", str(output)))
        repo = make_repo(work / "repo-slurm", "jobs")
        Client().queue_id("bench-slurm", create=True)
        glue, bare = [], []
        for _ in range(runs + 1):
            task_id = create_task(repo.work, queue="bench-slurm")
            started = time.time()
            launcher("slurm", "--queue", "bench-slurm", "--template", str(template), "--once",
                     "--polling-interval", "0.2", env=env)  # fmt: skip
            first = next(e for e in Client().task_log(task_id) if str(e["msg"]).startswith("epochs="))
            glue.append(first["timestamp"] / 1000 - started)
            started = time.time()
            bare_job = ["sbatch", "--parsable", f"--output={output}/bare-%j.out", "--wrap", "date +%s.%N"]
            job = subprocess.run(bare_job, env=env, capture_output=True, text=True, check=True)
            path = output / f"bare-{job.stdout.strip()}.out"
            while not (path.exists() and path.read_text().strip()):
                time.sleep(0.02)
            bare.append(float(path.read_text().split()[0]) - started)
        glue, bare = glue[1:], bare[1:]  # the first is priming
        print(f"slurm: glue start -> task's first line {statistics.median(glue):.2f} s; bare sbatch -> first "
              f"line {statistics.median(bare):.2f} s (median of {runs})")  # fmt: skip
        print(f"  glue: {', '.join(f'{t:.2f}' for t in glue)}")
        print(f"  bare: {', '.join(f'{t:.2f}' for t in bare)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="container,slurm")
    args = parser.parse_args()
    with temp_dir("bench-backends-") as work:
        os.environ["CLEARML_TASK_HOME"] = str(work / "home")
        env = dict(os.environ)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")
        if "container" in args.only:
            container_bench(args.runs, work / "container", env)
        if "slurm" in args.only:
            slurm_bench(args.runs, work / "slurm-bench", env)


if __name__ == "__main__":
    main()
