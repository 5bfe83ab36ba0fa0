"""The Slurm scheduler: one sbatch template per queue, a batch job per task, tracked with squeue/scontrol.

The rendered script runs `${CLEARML_AGENT_EXECUTE}` — `clearml-launcher execute --id <task> --require-queue`
with the launcher's own interpreter (the cluster shares its file system, as Slurm's nodes do) — between
`${CLEARML_PRE_SETUP}` (the server's settings exported, so `sbatch --export=NONE` changes nothing) and
`${CLEARML_POST_SETUP}`. With `singularity` the execute command runs inside the task's image (else the
default one) with `singularity exec`; the launcher's interpreter must then be visible inside it (Singularity
binds $HOME by default, so a venv there is).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from launcher import templates
from launcher.backends import JobState
from launcher.backends.container import IMAGE
from launcher.errors import ReproductionError, SchedulerAway

NAME = "slurm"
# What sbatch's last error says when the controller certainly did not take the job (no connection could be
# made, or it said it is busy), not when it refused it: the task is submitted again later. Not a failure
# after sending ("(send failure)", "(receive failure)", "Socket timed out", "Zero Bytes were transmitted"):
# the job may exist then, and a second one would run the task twice. Slurm's own words, from its errno
# table; only the last error line counts (sbatch says it is retrying before it fails otherwise).
AWAY = re.compile(
    r"Unable to contact slurm controller \(connect failure\)|temporarily unable to accept job"
    r"|Slurm backup controller in standby",
    re.IGNORECASE,
)
INSTALL = "apt-get install slurm-wlm (sbatch, squeue, scontrol and scancel on the PATH, a cluster to talk to)"
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT")  # fmt: skip
SERVER_SETTINGS = ("CLEARML_TASK_HOME", "CLEARML_CONFIG_FILE", "CLEARML_API_HOST", "CLEARML_WEB_HOST",
                   "CLEARML_FILES_HOST", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY")  # fmt: skip


def missing() -> str | None:
    lacking = [tool for tool in ("sbatch", "squeue", "scontrol", "scancel") if shutil.which(tool) is None]
    return f"{', '.join(lacking)} not found (install: {INSTALL})" if lacking else None


def execute_command(task_id: str) -> list[str]:
    return [sys.executable, "-m", "launcher", "execute", "--id", task_id, "--require-queue"]


def pre_setup() -> str:
    """The server's settings of this launcher, exported in the job (values shell-quoted)."""
    exports = [f"{name}={shlex.quote(os.environ[name])}" for name in SERVER_SETTINGS if name in os.environ]
    return f"export {' '.join(exports)}" if exports else ":"


@dataclass
class Slurm:
    scripts: dict[str, str]  # queue name -> the sbatch template's text
    singularity: bool = False
    default_image: str = ""  # --singularity-mode: the image of a task that names none

    name = NAME

    def render(self, task: dict[str, Any], context: templates.Context) -> str:
        """The task's batch script (a template variable the task has no value for fails it)."""
        execute = execute_command(str(task["id"]))
        if self.singularity:
            given = str((task.get("container") or {}).get("image") or "").strip()
            if not (given or self.default_image):
                raise ReproductionError("--singularity-mode: the task names no image and there is no default",
                                        hint="give one: --singularity-mode IMAGE")  # fmt: skip
            image = _singularity_image(given) if given else self.default_image
            execute = ["singularity", "exec", *self._gpu_flags(), image, *execute]
        commands = {
            "CLEARML_PRE_SETUP": pre_setup(),
            "CLEARML_AGENT_EXECUTE": shlex.join(execute),
            "CLEARML_POST_SETUP": ":",
        }
        context = templates.Context(context.queue_name, context.queue_id, context.worker, task, commands)
        try:
            return templates.shell_script(self.scripts[context.queue_name], context)
        except templates.MissingValue as e:
            raise ReproductionError(f"slurm template: {e}") from None

    def submit(self, script: str) -> str:
        """sbatch the script; the job's id. sbatch's refusal is the task's failure reason."""
        done = subprocess.run(["sbatch", "--parsable"], input=script, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            last = lines[-1] if lines else "no reason given"
            if AWAY.search(last):
                raise SchedulerAway(f"sbatch could not reach the Slurm controller: {last}",
                                    detail=done.stderr)  # fmt: skip
            raise ReproductionError(f"sbatch refused the job: {last}", detail=done.stderr)
        job_id = done.stdout.strip().split(";")[0]
        if not re.fullmatch(r"[0-9]+(?:_[0-9]+)?", job_id):  # `--test-only` submits nothing, for one
            raise ReproductionError(f"sbatch gave no job id (it said {job_id[:200]!r})", detail=done.stderr)
        return job_id

    def state(self, job_id: str) -> JobState:
        done = subprocess.run(["squeue", "--noheader", "--jobs", job_id, "--format", "%T"],
                              capture_output=True, text=True)  # fmt: skip
        word = (
            done.stdout.strip().splitlines()[0].strip()
            if done.returncode == 0 and done.stdout.strip()
            else ""
        )
        if not word or word in ENDED:
            shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True)
            found = re.search(r"JobState=(\S+)", shown.stdout)
            word = found.group(1) if found else word or "UNKNOWN"
        return JobState(word not in (*ENDED, "UNKNOWN"), word)

    def cancel(self, job_id: str) -> None:
        subprocess.run(["scancel", job_id], capture_output=True)

    def _gpu_flags(self) -> list[str]:
        return ["--nv"] if shutil.which("nvidia-smi") else []


def _singularity_image(image: str) -> str:
    """A task's image (an image reference, never a path on the cluster) as `docker://...`."""
    if not IMAGE.match(image):
        raise ReproductionError(f"container.image: {image!r} is not an image reference")
    return f"docker://{image}"
