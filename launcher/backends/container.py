"""The container runner: the task's process in a container (docker or podman), in any image with a python3.

The host reproduces the code as for a host run and mounts the work tree at the same path; inside, a script
(`ENTRY`) runs the task's setup script, builds a venv with the uv binary of the launcher's own uv package
(mounted read-only) and the host's uv cache (mounted), then execs the task's command. Nothing of ours is
installed in the image. The log is the engine's attached output, shipped from the host line by line.

The install plan is the host's (environment.plan_requirements), carried out as on the host: a project with a
uv.lock by `uv sync --locked` (without one, `uv sync`, and the uv.lock it writes removed afterwards), a
poetry.lock by `poetry install --no-root`, requirement lines and files by `uv pip install`, then `extra` on
top. When an install fails, its stderr comes back through a mounted directory and the task fails with the
line a host run gives.

The container is created, started attached and, once it ended, its exit code comes from the engine's `wait`
(`--rm` would lose it); it is removed whatever happened, so an abort leaves nothing running: the engine's
`stop` (SIGTERM, then SIGKILL after the grace period) and `rm -f`.

What a task asks for is not trusted: the image must be an image reference, and of `container.arguments` only
the options in SAFE_OPTIONS pass (each with a checked value); everything is handed to the engine as an argv,
never through a shell, the image last, after every option. The daemon's own `--docker IMAGE ARGS...` come from
whoever runs the daemon and are passed as given.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearml_task.errors import UserError
from clearml_task.vocabulary import IMAGE_PATTERN
from launcher.backends import Job, write_private
from launcher.backends.local import record_requirements
from launcher.errors import ReproductionError

if TYPE_CHECKING:
    from launcher.environment import Plan
    from launcher.process import Outcome

ENGINES = ("docker", "podman")
INSTALL = "install podman (apt-get install podman) or docker"
MOUNT = "/opt/clearml-launcher"  # the uv binary and the entry script, read-only
VENV = "/opt/clearml-venv"  # the task's environment, inside the container only
IMAGE = re.compile(IMAGE_PATTERN)
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
CONTAINER_NAME = r"clearml-[A-Za-z0-9_.-]{1,32}-[0-9a-f]{8}"  # as a run names its container
SIZE = r"[0-9]+(?:\.[0-9]+)?[bkmgBKMG]?"
# The options a task's container.arguments may use, with the form of their value. Anything else (e.g.
# --privileged, -v/--volume, --pid, --ipc, --network, --device, --cap-add, --security-opt, --user) is refused.
SAFE_OPTIONS: dict[str, str] = {
    "-e": rf"{NAME}=.*",  # always with its value: a bare NAME copies the daemon's own variable
    "--env": rf"{NAME}=.*",
    "--shm-size": SIZE,
    "-m": SIZE,
    "--memory": SIZE,
    "--memory-swap": rf"-1|{SIZE}",
    "--cpus": r"[0-9]+(?:\.[0-9]+)?",
    "-l": r"[A-Za-z0-9_.-]+(?:=.*)?",
    "--label": r"[A-Za-z0-9_.-]+(?:=.*)?",
    "-h": r"[A-Za-z0-9.-]{1,253}",
    "--hostname": r"[A-Za-z0-9.-]{1,253}",
    "--add-host": r"[A-Za-z0-9.-]+:[0-9A-Fa-f.:]+",
    "--ulimit": r"[a-z]+=-?[0-9]+(?::-?[0-9]+)?",
    "--tmpfs": r"/[A-Za-z0-9_./-]*(?::[a-z0-9=,]*)?",
}
# How this machine reaches the package index, handed to uv in the container (it shares the host's network).
INDEX_SETTINGS = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX", "UV_NATIVE_TLS",
                  "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                  "no_proxy")  # fmt: skip
CA_BUNDLE = f"{MOUNT}/ca-certificates.crt"  # the host's SSL_CERT_FILE, when it names one
OUT = "/opt/clearml-launcher-out"  # what the entry script hands back to the host (mounted read-write)
# written per run, mounted read-only under MOUNT; the requirement files keep the host's names, so uv's errors
# read the same as on the host
STAGED = ("entry.sh", "setup.sh", "task-requirements.txt", "extra-requirements.txt")
# in OUT, as ENTRY names them: the install step that failed ("declared" or "extra"), and uv's stderr of it
FAILED_STEP, INSTALL_ERROR = "install-failed.txt", "install-error.txt"
MAX_HANDED_BACK = 4 * 1024 * 1024  # bytes of such a file the host reads (uv's freeze, or its error)
ENTRY = """\
set -e
if [ -s "$CLEARML_LAUNCHER_SETUP" ]; then
    echo "launcher: running the task's container setup script"
    if command -v bash >/dev/null; then bash "$CLEARML_LAUNCHER_SETUP"; else sh "$CLEARML_LAUNCHER_SETUP"; fi
fi
uv=/opt/clearml-launcher/uv
out=/opt/clearml-launcher-out
venv=/opt/clearml-venv
python=$(command -v python3 || true)
if [ -z "$python" ]; then echo "launcher: the image has no python3" >&2; exit 127; fi
echo "launcher: environment: $("$python" --version 2>&1) at $python; uv $("$uv" --version | cut -d' ' -f2)"
"$uv" venv --quiet --no-python-downloads --python "$python" "$venv"
# a step's uv errors go to the host, which fails the task with the line it gives for a run on the host
installing() {
    step=$1; shift
    if ! "$@" 2> "$out/install-error.txt"; then echo "$step" > "$out/install-failed.txt"; exit 1; fi
}
uv_sync() {
    UV_PROJECT_ENVIRONMENT="$venv" "$uv" sync --quiet --no-python-downloads \
        --project "$CLEARML_LAUNCHER_PROJECT" --python "$venv/bin/python" --no-install-workspace "$@"
}
poetry_install() (  # Poetry run by uv from PyPI, as on the host; its requests trust the host's CA bundle too
    if [ -n "${SSL_CERT_FILE:-}" ]; then REQUESTS_CA_BUNDLE=$SSL_CERT_FILE; export REQUESTS_CA_BUNDLE; fi
    VIRTUAL_ENV="$venv" POETRY_NO_INTERACTION=1 POETRY_VIRTUALENVS_CREATE=false "$uv" tool run --quiet \
        --from poetry poetry install --no-root --directory "$CLEARML_LAUNCHER_PROJECT"
)
uv_pip_install() {
    "$uv" pip install --quiet --no-python-downloads --python "$venv/bin/python" -r "$1"
}
case "$CLEARML_LAUNCHER_SYNC" in
    locked) installing declared uv_sync --locked ;;
    resolve) installing declared uv_sync ;;
    poetry) installing declared poetry_install ;;
esac
if [ -s /opt/clearml-launcher/task-requirements.txt ]; then
    installing declared uv_pip_install /opt/clearml-launcher/task-requirements.txt
fi
if [ -s /opt/clearml-launcher/extra-requirements.txt ]; then
    installing extra uv_pip_install /opt/clearml-launcher/extra-requirements.txt
fi
"$uv" pip freeze --python "$venv/bin/python" > "$out/frozen.txt"
cd "$CLEARML_LAUNCHER_WORKDIR"
exec "$@"
"""


def choose_engine(wanted: str | None) -> str:
    """The engine's binary: the one asked for, else docker when its daemon answers, else podman."""
    if wanted:
        found = shutil.which(wanted)
        if found is None:
            raise UserError(f"--container-engine {wanted}: {wanted} is not installed", INSTALL)
        if not _answers(found):  # before a task is taken: a daemon would fail every one
            raise UserError(
                f"--container-engine {wanted}: `{wanted} info` fails here",
                f"start {wanted}'s service (or check its configuration), then try again",
            )
        return found
    docker = shutil.which("docker")
    if docker and _answers(docker):
        return docker
    podman = shutil.which("podman")
    if podman:
        return podman
    raise UserError("--docker needs a container engine, and neither docker nor podman answers here", INSTALL)


def _answers(binary: str) -> bool:
    try:
        return subprocess.run([binary, "info"], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def check_image(image: str, where: str) -> str:
    image = image.strip()
    if not IMAGE.match(image):
        raise ReproductionError(
            f"{where}: {image!r} is not an image reference",
            hint="name an image as registry/name:tag (e.g. python:3.11)",
        )
    return image


def check_arguments(text: str | list[str]) -> list[str]:
    """The task's container.arguments as engine options: only SAFE_OPTIONS, each with a checked value."""
    if not isinstance(text, (str, list)):
        raise ReproductionError("container.arguments: must be a string or a list of strings")
    try:
        given = shlex.split(text) if isinstance(text, str) else [str(item) for item in text]
    except ValueError as error:
        raise ReproductionError(f"container.arguments cannot be read: {error}") from None
    out: list[str] = []
    items = iter(given)
    for item in items:
        option, value = item.split("=", 1) if item.startswith("--") and "=" in item else (item, None)
        if option not in SAFE_OPTIONS:
            raise ReproductionError(
                f"container.arguments: {item!r} is not allowed",
                hint=f"a task may use only {', '.join(sorted(SAFE_OPTIONS))}; the daemon's own "
                "--docker IMAGE ARGS... may add others",
            )
        if value is None:
            value = next(items, None)
            if value is None:
                raise ReproductionError(f"container.arguments: {option} needs a value")
        if not re.fullmatch(SAFE_OPTIONS[option], value, re.DOTALL):
            raise ReproductionError(f"container.arguments: {option} {value!r} is not a valid value")
        out.append(f"{option}={value}")  # one word: the value cannot be read as an option of its own
    return out


def gpu_options(engine: str, gpus: str | None) -> list[str]:
    """--gpus in the engine's own form: docker's --gpus, podman's CDI devices."""
    if not gpus:
        return []
    ids = [gpu.strip() for gpu in gpus.split(",") if gpu.strip()]
    if Path(engine).name == "docker":
        return ["--gpus", "all" if gpus == "all" else f'"device={",".join(ids)}"']
    return [option for gpu in ids for option in ("--device", f"nvidia.com/gpu={gpu}")]


@dataclass
class Container:
    engine: str  # the engine's binary
    image: str = ""  # the daemon's default image ("" : the task must name one)
    arguments: list[str] = field(default_factory=list)  # the daemon's own engine options, trusted

    def describe(self) -> str:
        return f"in containers ({Path(self.engine).name}, default image {self.image or 'none'})"

    def run(self, job: Job) -> Outcome:
        """Create, start attached, wait, remove: the task's process in a container (see the module's doc)."""
        from clearml_task import stoppable
        from launcher import environment, process

        container = job.task.get("container") or {}
        given = str(container.get("image") or "").strip()
        if not (given or self.image):
            raise ReproductionError("the task names no container image and the launcher has no default",
                                    hint="give one: --docker IMAGE")  # fmt: skip
        image = check_image(given, "container.image") if given else self.image
        task_arguments = check_arguments(container.get("arguments") or "")
        staging = staging_dir(job.root)
        staging.mkdir(parents=True, exist_ok=True)
        try:
            plan = environment.plan_requirements((job.task.get("script") or {}).get("requirements") or {},
                                                 job.root, job.workdir)  # fmt: skip
            job.log.write(f"environment: {environment.describe(plan, job.root)} (built in the container)")
            values = self._values(job, staging, plan)
            written: list[Path] = []  # uv.lock files a lockless `uv sync` writes: removed, as on the host
            if plan.installer == "sync" and plan.project is not None and plan.lock is None:
                written = environment.locks_to_remove(job.root, plan.project)
            name = f"clearml-{job.task['id'][:32]}-{secrets.token_hex(4)}"
            env_file = _env_file(staging, values)  # checked now, written once the image is here
            # The engine keeps the last of an option given twice: the task's options come first, then the
            # launcher's, then the operator's (--docker IMAGE ARGS...), so no task undoes a limit it set.
            create = [
                self.engine, "create", "--name", name, *task_arguments, "--init", "--network", "host",
                "--workdir", str(job.workdir), *self._mounts(job, staging), "--env-file", str(env_file),
                *gpu_options(self.engine, job.gpus), *self.arguments,
                image, "/bin/sh", f"{MOUNT}/entry.sh",
                *process.command(Path(VENV) / "bin" / "python", job.entry_point, job.arguments()),
            ]  # fmt: skip
            job.log.write(f"launcher: container {name} from {image} ({Path(self.engine).name})")
            if job.record is not None:  # before it exists: a crash in between leaves nothing unrecorded
                job.record({"container": {"engine": self.engine, "name": name}})
            self._pull(image, job)  # as long as it takes (a registry may never answer), with no keys on disk
            _write_env(env_file, values)
            try:  # the engine runs with the launcher's own environment: the task's variables are the
                # container's alone. The preparation's watch ends it (and the pull) on an abort or a stop,
                # and the launcher's warden when the launcher dies.
                made = stoppable.run(create, text=True)
            except stoppable.Stopped:
                self._remove(name, job.grace)  # made just before the stop, or not at all
                raise
            finally:
                env_file.unlink(missing_ok=True)  # read at create: the keys in it stay on disk no longer
            if made.returncode != 0:
                raise ReproductionError(
                    f"the container cannot be created: {_last_line(made.stderr)}",
                    detail=made.stderr,
                    hint="check the image and container.arguments",
                )
            try:
                outcome = process.run([self.engine, "start", "--attach", name], cwd=job.workdir,
                                      env=dict(os.environ), client=job.client, task_id=job.task["id"],
                                      log=job.log, grace=job.grace, stop=job.stop,
                                      started=job.on_start, linger=MONITOR_LINGER)  # fmt: skip
                if not outcome.aborted:
                    outcome = self._ended(name, outcome)
            finally:
                self._remove(name, job.grace)
                for path in written:
                    path.unlink(missing_ok=True)
            if not outcome.aborted:
                _raise_install_failure(staging / "out", plan)
            frozen = handed_back(staging / "out", "frozen.txt")
            if frozen:
                record_requirements(job, frozen)
            return outcome
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _pull(self, image: str, job: Job) -> None:
        """The image on this machine, pulled if need be (as `create` would pull it), before the env file that
        holds the server's keys is written: the file is on disk only while the engine creates the container,
        not while it waits on a registry."""
        from clearml_task import stoppable  # an abort or a stop ends the pull (see run)

        if stoppable.run([self.engine, "image", "inspect", image]).returncode == 0:
            return
        job.log.write(f"launcher: pulling {image}")
        pulled = stoppable.run([self.engine, "pull", image], text=True)
        if pulled.returncode != 0:
            raise ReproductionError(
                f"the image {image} cannot be pulled: {_last_line(pulled.stderr)}",
                detail=pulled.stderr,
                hint="check the image's name, its registry and this machine's login to it",
            )

    def _values(self, job: Job, staging: Path, plan: Plan) -> dict[str, str]:
        """The container's environment: the task's Environment hyperparams, then what the launcher sets. The
        values reach the container through an env file (`_env_file`): never on the engine's command line
        (where any user sees them), never in the engine's own environment (where the task's LD_PRELOAD,
        CONTAINERS_CONF or DOCKER_HOST would steer the engine itself, on the host)."""
        from launcher import process
        from launcher.environment import uv_cache

        env: dict[str, str] = {}
        for param in ((job.task.get("hyperparams") or {}).get("Environment") or {}).values():
            name = str(param.get("name") or "")
            if re.fullmatch(NAME, name):
                env[name] = str(param.get("value", ""))
                process.check_variable(name, env[name])
            elif name:
                job.log.write(f"launcher: environment variable {name!r} skipped: not a valid name", "warning")
        env |= job.extra_env
        if job.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(job.gpus.split(","))))
        env |= {name: os.environ[name] for name in INDEX_SETTINGS if name in os.environ}
        if _ca_bundle():
            env["SSL_CERT_FILE"] = CA_BUNDLE
        env |= {
            "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(job.workdir), str(job.root)])),
            "PYTHONUNBUFFERED": "1",
            "UV_CACHE_DIR": str(uv_cache(job.cache_dir)),
            "UV_LINK_MODE": "copy",  # the cache is another mount: no hard links across it
            "UV_PYTHON_DOWNLOADS": "never",
            "NO_COLOR": "1",
            "CLEARML_LAUNCHER_WORKDIR": str(job.workdir),
            "CLEARML_LAUNCHER_SETUP": f"{MOUNT}/setup.sh",
            "CLEARML_LAUNCHER_SYNC": "",  # how the project is installed, as on the host (never the task's)
            "CLEARML_LAUNCHER_PROJECT": str(plan.project or ""),
        }
        if plan.installer == "sync" and plan.project is not None:
            env["CLEARML_LAUNCHER_SYNC"] = "locked" if plan.lock else "resolve"
        elif plan.installer == "poetry" and plan.project is not None:
            env["CLEARML_LAUNCHER_SYNC"] = "poetry"
            env["POETRY_CACHE_DIR"] = str(job.cache_dir / "poetry-cache")
        setup = (job.task.get("container") or {}).get("setup_shell_script") or ""
        if isinstance(setup, list):
            setup = "\n".join(str(line) for line in setup)
        (staging / "setup.sh").write_text(str(setup))
        main = [f"-r {path}" for path in plan.files] if plan.files else plan.lines
        (staging / "task-requirements.txt").write_text("".join(f"{line}\n" for line in main))
        (staging / "extra-requirements.txt").write_text("".join(f"{line}\n" for line in plan.extra))
        (staging / "entry.sh").write_text(ENTRY)
        return env

    def _mounts(self, job: Job, staging: Path) -> list[str]:
        from launcher.environment import find_uv, uv_cache

        uv_dir, poetry_cache = uv_cache(job.cache_dir), job.cache_dir / "poetry-cache"
        for cache in (uv_dir, poetry_cache):
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ReproductionError(
                    f"cannot make the package cache {cache}: {error.strerror}",
                    hint="set UV_CACHE_DIR to a directory the launcher can write, or unset it",
                ) from None
        out = staging / "out"
        out.mkdir(exist_ok=True)
        binds = [
            (job.root, job.root, "rw"),
            (uv_dir, uv_dir, "rw"),
            (poetry_cache, poetry_cache, "rw"),
            (Path(find_uv()), Path(MOUNT) / "uv", "ro"),
            *((staging / name, Path(MOUNT) / name, "ro") for name in STAGED),
            (out, Path(OUT), "rw"),
            *((path, path, "ro") for path in job.files if path.exists()),
            *((bundle, Path(CA_BUNDLE), "ro") for bundle in [_ca_bundle()] if bundle),
        ]
        for host, _, _ in binds:
            if ":" in str(host):  # `-v HOST:INSIDE:MODE` cannot carry it
                raise ReproductionError(
                    f"the container cannot mount {host}: the path holds a ':'",
                    hint="give the launcher a home (CLEARML_TASK_HOME) and a UV_CACHE_DIR without ':'",
                )
        return [option for host, inside, mode in binds for option in ("-v", f"{host}:{inside}:{mode}")]

    def _ended(self, name: str, start: Outcome) -> Outcome:
        """How the container's process ended: its exit code from the engine's `wait`; a container that never
        ran (the engine could not start it: `wait` then says 0) fails with the engine's reason (the
        container's state, else what its `start` said last on stderr) and the exit code of that `start`."""
        from launcher import process

        started = start.exit_code
        done = subprocess.run([self.engine, "wait", name], capture_output=True, text=True)
        state = [self.engine, "inspect", "--format", "{{.State.StartedAt}}|{{.State.Error}}", name]
        seen = subprocess.run(state, capture_output=True, text=True)
        began, _, error = seen.stdout.strip().partition("|")
        if seen.returncode == 0 and (error.strip() or began.startswith("0001-01-01")):
            reason = _last_line(error) if error.strip() else _refusal(start.error_tail)
            reason = f"the container did not run: {reason}"
            return process.Outcome(started or process.EXEC_FAILED, reason=reason)
        try:
            return process.Outcome(int(done.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            return process.Outcome(started)

    def _remove(self, name: str, grace: float) -> None:
        """Nothing left running: stop (SIGTERM, SIGKILL after `grace`), then remove."""
        subprocess.run([self.engine, "stop", "--time", str(max(1, round(grace))), name], capture_output=True)
        subprocess.run([self.engine, "rm", "--force", name], capture_output=True)


# Seconds the engine's monitor (podman's conmon, handed to the launcher as subreaper) may take to write down
# the container's exit and end, before it is ended as something the task left.
MONITOR_LINGER = 5.0
MAX_ENV_LINE = 60_000  # the engines read an env file's lines with a 64 KiB buffer


def staging_dir(root: Path) -> Path:
    """What a container run of the work tree `root` stages beside it (entry script, requirements, env file,
    what the container hands back); a run removes it as it ends, the daemon after a crash (`cleanup`)."""
    return root.with_name(f"{root.name}.container")


def _env_file(staging: Path, values: dict[str, str]) -> Path:
    """Where the container's variables go as the engine's --env-file (`NAME=value` lines), once each value is
    checked: one with a line break, which such a file cannot hold, fails the task naming it. The file is
    written by `_write_env`, as late as it can be."""
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            raise ReproductionError(
                f"hyperparams.Environment: the value of {name} holds a line break, which a container's "
                "environment file cannot carry",
                hint="keep each variable's value on one line",
            )
        if len(f"{name}={value}".encode()) > MAX_ENV_LINE:
            raise ReproductionError(
                f"hyperparams.Environment: the value of {name} is too long for a container's environment "
                f"file (at most {MAX_ENV_LINE:,} bytes a variable)",
                hint="pass a long value in a file of the repository instead",
            )
    return staging / "env"


def _write_env(path: Path, values: dict[str, str]) -> None:
    """The env file (mode 0600, for it holds the server's keys), removed once `create` has read it."""
    write_private(path, "".join(f"{name}={value}\n" for name, value in sorted(values.items())), "utf-8")


def cleanup(record: dict[str, Any]) -> str | None:
    """A container outlives the engine's client that the dead run's process group held: it goes; so does
    the run's staging folder beside its work tree (an env file in it holds the server's keys)."""
    removed = remove_left(record.get("container"))
    work_tree = record.get("work_tree")
    if isinstance(work_tree, str) and work_tree:
        staging = staging_dir(Path(work_tree))
        if staging.is_dir() and not staging.is_symlink():
            shutil.rmtree(staging, ignore_errors=True)
    return f"removed the container {removed} a dead run left" if removed else None


def remove_left(recorded: object) -> str | None:
    """Remove the container a dead launcher's run left (as its record names it: engine and name, both
    checked, for the record is a file); its name, or None when there was nothing valid to remove or the
    engine would not remove it."""
    if not isinstance(recorded, dict):
        return None
    engine, name = str(recorded.get("engine") or ""), str(recorded.get("name") or "")
    if Path(engine).name not in ENGINES or not re.fullmatch(CONTAINER_NAME, name):
        return None
    for _ in range(RM_TRIES):  # a busy engine may refuse once (its lock, a stop under way): asked again
        try:
            done = subprocess.run([engine, "rm", "--force", name], capture_output=True, timeout=120)
            if done.returncode == 0 or not _exists(engine, name):
                return name
        except (OSError, subprocess.TimeoutExpired):
            return None
        time.sleep(1)
    return None


RM_TRIES = 5


def _exists(engine: str, name: str) -> bool:
    seen = subprocess.run([engine, "inspect", "--format", "{{.Id}}", name], capture_output=True, timeout=120)
    return seen.returncode == 0


def _raise_install_failure(out: Path, plan: Plan) -> None:
    """The task fails as on the host when uv could not install its environment in the container."""
    from launcher import environment

    failed_step = handed_back(out, FAILED_STEP)
    if not failed_step:
        return
    error = handed_back(out, INSTALL_ERROR)
    if failed_step.strip() == "extra":
        raise environment.failed(error, "", environment.INSTALL_HINTS["extra"])
    raise environment.declared_failure(error, plan)


def handed_back(out: Path, name: str, limit: int = MAX_HANDED_BACK) -> str:
    """A file the container wrote into `out` for the host, read as the container left it only when it is a
    regular file there (never through a symlink: the task could point one at any file of the host, which
    the host would read as its own user and publish), at most `limit` bytes; "" when there is none."""
    try:
        fd = os.open(out / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # missing, or a symlink (ELOOP)
        return ""
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):  # a FIFO, a device
            return ""
        return file.read(limit).decode("utf-8", errors="replace")


def _ca_bundle() -> Path | None:
    """The host's CA bundle (SSL_CERT_FILE), for uv in images that have none or not the host's own CAs."""
    given = os.environ.get("SSL_CERT_FILE")
    return Path(given) if given and Path(given).is_file() else None


def _refusal(said: tuple[str, ...]) -> str:
    """Why the engine did not start a container, from what its `start` said last on stderr: its last error
    line (`Error: ...`, docker's `Error response from daemon: ...`), else its last line."""
    errors = [line for line in said if line.strip().lower().startswith("error")]
    return _last_line("\n".join(errors or said)) if said else "the engine did not start it"


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "the engine gave no reason"
