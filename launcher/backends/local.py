"""The local runner: the task's process on this machine, in a venv built by uv from the cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from launcher.backends import Job

if TYPE_CHECKING:
    from launcher.process import Outcome


class Local:
    def describe(self) -> str:
        return "on the host"

    def run(self, job: Job) -> Outcome:
        from launcher import envcache, environment, process

        note_container(job)
        env = environment.ensure(job.task, job.root, job.workdir, job.cache_dir, job.log.write)
        with envcache.using(env.python.parent.parent):  # not evicted while it runs
            argv = process.command(
                env.python, job.entry_point, job.arguments(environment.has_sdk(env.frozen))
            )
            extra = dict(job.extra_env)
            if job.gpus is not None:
                extra["CUDA_VISIBLE_DEVICES"] = extra["NVIDIA_VISIBLE_DEVICES"] = job.gpus
            child_env = process.environment(job.task, extra, job.workdir, job.root)
            return process.run(argv, cwd=job.workdir, env=child_env, client=job.client,
                               task_id=job.task["id"], log=job.log, grace=job.grace, stop=job.stop,
                               started=job.on_start,
                               meanwhile=lambda: record_requirements(job, env.frozen))  # fmt: skip


def cleanup(record: dict[str, Any]) -> str | None:
    """Nothing of a host run outlives its processes, which the daemon's registry ends."""
    return None


def note_container(job: Job) -> None:
    """A task made for a container says in its log that it runs on the host (nothing is silently ignored)."""
    container = job.task.get("container") or {}
    asked = [
        f"{what} {container[key]!r}" if key == "image" else what
        for key, what in (
            ("image", "image"),
            ("arguments", "arguments"),
            ("setup_shell_script", "a setup script"),
        )
        if container.get(key)
    ]
    if asked:
        job.log.write(
            f"launcher: the task has container settings ({', '.join(asked)}); this launcher runs without "
            "--docker, so the task runs on the host and they are not used",
            "warning",
        )


def record_requirements(job: Job, frozen: str) -> None:
    """What was installed goes back to the task (the original kept in org_pip), as ClearML's agent does.
    A task that already records exactly what was installed (a clone or a re-run of a task that ran, or
    exact pins) is left as it is: no call, and its org_pip keeps the requirements first given."""
    script: dict[str, Any] = job.task.get("script") or {}
    given = (script.get("requirements") or {}).get("pip") or ""
    count = len(frozen.splitlines())
    if given == frozen:
        job.log.write(f"launcher: the task already records its {count} installed packages")
        return
    requirements = {**(script.get("requirements") or {}), "pip": frozen, "org_pip": given}
    job.client.set_requirements(job.task["id"], requirements)
    job.log.write(f"launcher: recorded {count} installed packages on the task")
