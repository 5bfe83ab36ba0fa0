"""The Slurm glue against a real single-node Slurm the fixture starts and stops; the templates' rendering."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from clearml_task.api import Client
from clearml_task.server.serve import free_port
from launcher import glue
from testing import slurm
from testing.engines import require
from testing.launching import create_task, launcher, log_lines, spawn, status, wait_for
from testing.repos import Repo, make_repo

TEMPLATE = """\
#!/bin/bash
#SBATCH --job-name=${CLEARML_TASK.name}
#SBATCH --output=OUTPUT/%j.out
${CLEARML_PRE_SETUP}
echo "queue ${CLEARML_QUEUE_NAME} partition ${CLEARML_TASK.hyperparams.properties.partition.value:none}"
${CLEARML_AGENT_EXECUTE}
${CLEARML_POST_SETUP}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require(slurm.missing())
    with slurm.single_node(tmp_path_factory.mktemp("slurm")) as env:
        yield env


@pytest.fixture
def jobs(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "jobs", "jobs")


def template(tmp_path: Path, text: str = TEMPLATE) -> Path:
    output = tmp_path / "slurm-output"
    output.mkdir(exist_ok=True)
    path = tmp_path / "job.sh"
    path.write_text(text.replace("OUTPUT", str(output)))
    return path


def queue() -> str:
    name = f"slurm-{uuid.uuid4().hex[:6]}"
    Client().queue_id(name, create=True)
    return name


def test_a_task_runs_as_a_batch_job(cluster: dict[str, str], jobs: Repo, tmp_path: Path) -> None:
    q = queue()
    task_id = create_task(jobs.work, "train.py", args=["epochs=2"], queue=q, name="it's $(touch pwned)")
    result = launcher("slurm", "--queue", q, "--template-files", str(template(tmp_path)), "--once",
                      "--polling-interval", "0.3", env=cluster)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(task_id) == "completed"
    lines = log_lines(task_id)
    assert "epochs=2 lr=0.1 fast=False" in lines
    job_id = Client().get_task(task_id)["runtime"]["slurm_job_id"]
    assert any(line.startswith(f"launcher: slurm job {job_id} submitted") for line in lines)
    output = (tmp_path / "slurm-output" / f"{job_id}.out").read_text()
    assert f"queue {q} partition none" in output
    shown = subprocess.run(["scontrol", "show", "job", job_id], env={**os.environ, **cluster},
                           capture_output=True, text=True).stdout  # fmt: skip
    assert "JobName=it's $(touch pwned)" in shown


def test_no_task_value_adds_an_sbatch_option(cluster: dict[str, str], jobs: Repo, tmp_path: Path) -> None:
    """sbatch's reader of `#SBATCH` lines honours a backslash even inside quotes, so a shell-quoted value
    with one could close the quote and add options of its own (here: write the job's output elsewhere)."""
    q = queue()
    injected = tmp_path / "injected"
    injected.mkdir()
    name = f"x\\'\" --output={injected}/%j.txt --comment=\\"
    hostile = f"a\\'\" --output={injected}/p%j.txt # b\\"
    task_id = create_task(jobs.work, "train.py", queue=q, name=name, skip_task_init=True)
    params = [{"section": "properties", "name": "note", "value": hostile}]
    Client().call("tasks.edit_hyper_params", {"task": task_id, "hyperparams": params, "force": True})
    text = TEMPLATE.replace(  # the template's own --output first: an injected one would win
        "#SBATCH --job-name=${CLEARML_TASK.name}\n#SBATCH --output=OUTPUT/%j.out\n",
        "#SBATCH --output=OUTPUT/%j.out\n#SBATCH --job-name=${CLEARML_TASK.name}\n"
        "#SBATCH --comment=${CLEARML_TASK.hyperparams.properties.note.value}\n",
    )
    assert text != TEMPLATE
    result = launcher("slurm", "--queue", q, "--template-files", str(template(tmp_path, text)), "--once",
                      "--polling-interval", "0.3", env=cluster)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(task_id) == "completed", log_lines(task_id)
    job_id = Client().get_task(task_id)["runtime"]["slurm_job_id"]
    assert list(injected.iterdir()) == []
    assert (tmp_path / "slurm-output" / f"{job_id}.out").is_file()
    shown = subprocess.run(["scontrol", "show", "job", job_id], env={**os.environ, **cluster},
                           capture_output=True, text=True).stdout  # fmt: skip
    assert f"JobName={name}\n" in shown or f"JobName={name} " in shown, shown
    assert f"Comment={hostile}" in shown, shown


@pytest.mark.parametrize("line", ['#SBATCH --job-name="${CLEARML_TASK.name}"',
                                  "#SBATCH --comment='a ${CLEARML_TASK.id} b'",
                                  '#SBATCH --comment=x"${CLEARML_QUEUE_NAME:q}"'])  # fmt: skip
def test_a_variable_inside_quotes_on_an_sbatch_line_is_refused_at_start(line: str) -> None:
    """Its value comes quoted already: the template's own quotes would undo that, and a name such as
    `x --output=/elsewhere` would add an option. Quotes in the script's body are bash's, and fine."""
    from clearml_task.errors import UserError
    from launcher import templates

    refused = r"job.sh, line 2: \$\{CLEARML_.*\} is inside quotes on an #SBATCH line"
    with pytest.raises(UserError, match=refused):
        templates.check(f"#!/bin/bash\n{line}\n", "job.sh")
    templates.check(TEMPLATE, "job.sh")  # `echo "queue ${CLEARML_QUEUE_NAME} ..."` in the body
    templates.check("#SBATCH --comment=\\'${CLEARML_TASK.id}\n# a note: '${CLEARML_TASK.id}'\n", "job.sh")


def controller_away(cluster: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The cluster's environment with a slurm.conf whose controller port nothing listens on."""
    conf = Path(cluster["SLURM_CONF"]).read_text()
    away = tmp_path / "slurm-away.conf"
    away.write_text(re.sub(r"(?m)^SlurmctldPort=\d+", f"SlurmctldPort={free_port()}", conf))
    return {**cluster, "SLURM_CONF": str(away)}


def test_a_controller_away_puts_the_task_back_in_its_queue(
    cluster: dict[str, str], jobs: Repo, tmp_path: Path
) -> None:
    """sbatch that cannot reach the controller did not refuse the job: the task was failed, and a queue
    drained while the controller restarted lost every task in it."""
    q = queue()
    first, second = (create_task(jobs.work, "train.py", queue=q) for _ in range(2))
    result = launcher("slurm", "--queue", q, "--template", str(template(tmp_path)), "--once",
                      env=controller_away(cluster, tmp_path))  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "could not reach the Slurm controller" in result.stdout
    assert (status(first), status(second)) == ("queued", "queued")
    entries = Client().call("queues.get_by_id", {"queue": Client().queue_id(q)})["queue"]["entries"]
    assert [entry["task"] for entry in entries] == [first, second]  # the first back at the front
    assert any("back at the front of" in line for line in log_lines(first))
    # Once the controller answers, the same queue runs.
    done = launcher("slurm", "--queue", q, "--template", str(template(tmp_path)), "--once", env=cluster)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (status(first), status(second)) == ("completed", "completed")


def test_sbatch_refusing_fails_the_task(cluster: dict[str, str], jobs: Repo, tmp_path: Path) -> None:
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    refused = template(
        tmp_path, TEMPLATE.replace("#SBATCH --job-name", "#SBATCH --partition=nowhere\n#SBATCH --job-name")
    )
    result = launcher("slurm", "--queue", q, "--template", str(refused), "--once", env=cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert "sbatch refused the job" in task["status_message"]
    assert "partition" in task["status_message"].lower()


def test_a_job_that_dies_without_reporting_fails_the_task(
    cluster: dict[str, str], jobs: Repo, tmp_path: Path
) -> None:
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    dying = template(tmp_path, TEMPLATE.replace("${CLEARML_AGENT_EXECUTE}", "exit 7"))
    result = launcher("slurm", "--queue", q, "--template", str(dying), "--once", "--polling-interval", "0.3",
                      env=cluster)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert "ended (FAILED) without the task reporting its end" in task["status_message"]


def test_abort_cancels_the_job(cluster: dict[str, str], jobs: Repo, tmp_path: Path) -> None:
    q = queue()
    task_id = create_task(jobs.work, "sleepy.py", args=[f"pidfile={tmp_path / 'pids'}"], queue=q)
    glue = spawn("slurm", "--queue", q, "--template", str(template(tmp_path)), "--polling-interval", "0.3",
                 env=cluster)  # fmt: skip
    try:
        wait_for(lambda: "tick 2" in log_lines(task_id))
        job_id = Client().get_task(task_id)["runtime"]["slurm_job_id"]
        assert launcher("abort", task_id).returncode == 0
        wait_for(lambda: status(task_id) == "stopped")
        env = {**os.environ, **cluster}

        def gone() -> bool:
            listed = subprocess.run(["squeue", "--noheader", "--jobs", job_id], env=env, capture_output=True,
                                    text=True).stdout  # fmt: skip
            return not listed.strip()

        wait_for(gone, timeout=60)
        wait_for(lambda: any("cancelled" in line for line in log_lines(task_id)), timeout=30)
    finally:
        glue.terminate()
        glue.wait(timeout=60)


class Orphaned(NamedTuple):
    """A task whose batch job a glue submitted before it was killed (-9), before the job ended: the next glue
    finds the job in its record."""

    queue: str
    script: Path
    task_id: str
    job_id: str

    def glue(self, *options: str) -> list[str]:
        """The glue's command line on the same queue and script, with these options."""
        return ["slurm", "--queue", self.queue, "--template", str(self.script), *options]


def orphaned(cluster: dict[str, str], jobs: Repo, tmp_path: Path, execute: str) -> Orphaned:
    """A task queued, its job (whose script runs `execute` instead of the task) submitted by a glue that is
    killed (-9) before the job ends."""
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    script = template(tmp_path, TEMPLATE.replace("${CLEARML_AGENT_EXECUTE}", execute))
    glue = spawn("slurm", "--queue", q, "--template", str(script), "--polling-interval", "0.3", env=cluster)
    try:
        job_id = wait_for(lambda: (Client().get_task(task_id).get("runtime") or {}).get("slurm_job_id"))
    finally:
        glue.kill()
        glue.wait()
    return Orphaned(q, script, task_id, str(job_id))


def test_a_restarted_glue_tracks_its_jobs_to_the_end(
    cluster: dict[str, str], jobs: Repo, tmp_path: Path
) -> None:
    left = orphaned(cluster, jobs, tmp_path, "sleep 4; exit 7")
    task_id, job_id = left.task_id, left.job_id
    assert status(task_id) == "queued"  # in no queue: nobody but the glue knows the job
    # --once: with nothing queued, it waits only for the jobs it tracks again
    result = launcher(*left.glue("--once", "--polling-interval", "0.3"), env=cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tracking 1 slurm job(s)" in result.stdout
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert f"slurm job {job_id} ended (FAILED) without the task reporting its end" in task["status_message"]
    assert any("tracked again" in line for line in log_lines(task_id))


def test_a_job_cancelled_while_its_glue_was_down_fails_the_task(
    cluster: dict[str, str], jobs: Repo, tmp_path: Path
) -> None:
    left = orphaned(cluster, jobs, tmp_path, "sleep 300")
    task_id, job_id = left.task_id, left.job_id
    env = {**os.environ, **cluster}
    subprocess.run(["scancel", job_id], env=env, check=True)
    result = launcher(*left.glue("--once"), env=cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert (
        f"slurm job {job_id} ended (CANCELLED) without the task reporting its end" in task["status_message"]
    )


def test_a_task_whose_glue_stopped_while_submitting_fails(cluster: dict[str, str], jobs: Repo) -> None:
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    assert Client().next_task(Client().queue_id(q)) == task_id  # taken by a glue that recorded it, then died
    book = glue.Book(Path(os.environ["CLEARML_TASK_HOME"]) / "launcher" / "glue", "slurm", [q])
    book.write({task_id: glue.Tracked(task_id, "", q)})
    book.close()
    result = launcher("slurm", "--queue", q, "--template", str(template(jobs.work)), "--once", env=cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert "glue stopped while submitting this task's job" in task["status_message"]


def test_dry_run_writes_the_singularity_script_and_submits_nothing(jobs: Repo, tmp_path: Path) -> None:
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q, docker="python:3.11")
    out = tmp_path / "rendered"
    result = launcher("slurm", "--queue", q, "--template", str(template(tmp_path)), "--singularity-mode",
                      "--dry-run", str(out), "--once")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    script = (out / f"{task_id}.sh").read_text()
    assert (out / f"{task_id}.sh").stat().st_mode & 0o077 == 0  # it holds the server's keys
    (out / f"{task_id}.sh").chmod(0o644)  # an earlier run's, written under another umask: made private too
    again = launcher("slurm", "--queue", q, "--template", str(template(tmp_path)), "--singularity-mode",
                     "--dry-run", str(out), "--once")  # fmt: skip
    assert again.returncode == 0 and (out / f"{task_id}.sh").stat().st_mode & 0o077 == 0
    assert "singularity exec docker://python:3.11 " in script
    assert f"execute --id {task_id} --require-queue" in script
    assert status(task_id) == "queued"
    waiting = Client().call("queues.get_by_id", {"queue": Client().queue_id(q)})["queue"]["entries"]
    assert task_id in [entry["task"] for entry in waiting]


def test_a_glue_record_entry_of_another_shape_is_dropped(tmp_path: Path) -> None:
    """A glue's record is a file: an id that could read as an option never reaches squeue/scancel."""
    book = glue.Book(tmp_path, "slurm", ["q"])
    try:
        book.write({
            "abc123": glue.Tracked("abc123", "4711", "q"),
            "def456": glue.Tracked("def456", "", "q"),  # stopped while submitting
            "jkl012": glue.Tracked("jkl012", "clearml-jobs/clearml-jkl012", "q"),  # a namespace/name
            "mno345": glue.Tracked("mno345", "ns/../x", "q"),
            "-x": glue.Tracked("-x", "4712", "q"),
            "ghi789": glue.Tracked("ghi789", "--user=root", "q"),
        })  # fmt: skip
        assert [(t.task_id, t.job_id) for t in book.read()] == [
            ("abc123", "4711"),
            ("def456", ""),
            ("jkl012", "clearml-jobs/clearml-jkl012"),
        ]
    finally:
        book.close()


def test_a_template_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "job.sh"
    path.write_bytes(b"#!/bin/bash\n#SBATCH --job-name=caf\xe9\n${CLEARML_AGENT_EXECUTE}\n")
    result = launcher("slurm", "--queue", queue(), "--template-files", str(path), "--dry-run",
                      str(tmp_path / "out"), "--once")  # fmt: skip
    assert result.returncode == 1
    (line,) = (result.stdout + result.stderr).strip().splitlines()
    assert f"cannot read the template {path}: it is not UTF-8 text (byte 0xe9 at offset 34)" in line, line


@pytest.mark.parametrize("where", ["a-file", "/proc/no-such-dir"])
def test_a_dry_run_directory_that_cannot_be_made_is_one_line(jobs: Repo, tmp_path: Path, where: str) -> None:
    """A file, or a place where no directory can be made: a traceback (FileExistsError, FileNotFoundError)."""
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    out = tmp_path / where
    if where == "a-file":
        out.touch()
    result = launcher("slurm", "--queue", q, "--template-files", str(template(tmp_path)), "--dry-run",
                      str(out), "--once")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"clearml-launcher: error: --dry-run {out}: "), result.stderr
    assert status(task_id) == "queued"


@pytest.mark.parametrize(
    ("said", "away"),
    [
        ("Batch job submission failed: Unable to contact slurm controller (connect failure)", True),
        ("Batch job submission failed: Slurm temporarily unable to accept job, sleeping and retrying", True),
        ("Batch job submission failed: Unable to contact slurm controller (receive failure)", False),
        ("Batch job submission failed: Unable to contact slurm controller (send failure)", False),
        ("Slurm temporarily unable to accept job, sleeping and retrying\n"
         "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", False),
        ("Batch job submission failed: Invalid partition name specified", False),
    ],
)  # fmt: skip
def test_only_sbatch_errors_that_leave_no_job_put_the_task_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, said: str, away: bool
) -> None:
    """Slurm's own wordings (from libslurm's errno table), said by an sbatch stand-in on PATH: a send or
    receive failure, or a timeout after sbatch said it retries, may leave a job the controller took, so
    the task must fail (a second job would run it twice); only a failed connection or a busy controller as
    sbatch's last word puts it back."""
    from launcher.backends.slurm import Slurm
    from launcher.errors import ReproductionError, SchedulerAway

    fake = tmp_path / "bin"
    fake.mkdir()
    lines = "\n".join(f"sbatch: error: {line}" if not line.startswith("sbatch:") else line
                      for line in said.splitlines())  # fmt: skip
    (fake / "sbatch").write_text(f"#!/bin/sh\ncat > /dev/null\ncat >&2 <<'EOF'\n{lines}\nEOF\nexit 1\n")
    (fake / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ReproductionError) as raised:
        Slurm({}).submit("#!/bin/bash\ntrue\n")
    assert isinstance(raised.value, SchedulerAway) is away, raised.value.reason


def test_a_task_stopped_while_sbatch_ran_is_not_put_back(jobs: Repo, tmp_path: Path) -> None:
    """The controller away, but the task stopped meanwhile: it was put back in its queue, stopped."""
    fake = tmp_path / "bin"
    fake.mkdir()
    started = tmp_path / "sbatch-started"
    (fake / "sbatch").write_text(
        f"#!/bin/sh\ncat > /dev/null\ntouch {started}\nsleep 3\n"
        "echo 'sbatch: error: Batch job submission failed: Unable to contact slurm controller "
        "(connect failure)' >&2\n"
        "exit 1\n"
    )
    (fake / "sbatch").chmod(0o755)
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    glue = spawn("slurm", "--queue", q, "--template", str(template(tmp_path)), "--once",
                 env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"})  # fmt: skip
    try:
        wait_for(started.exists)
        Client().call("tasks.stop", {"task": task_id, "force": True})
        assert glue.wait(timeout=60) == 0  # nothing was put back
    finally:
        if glue.poll() is None:
            glue.kill()
    assert status(task_id) == "stopped"
    entries = Client().call("queues.get_by_id", {"queue": Client().queue_id(q)})["queue"]["entries"]
    assert entries == []
