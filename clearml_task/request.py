"""What the user asked for, checked: clearml-task's flags as one Request, every check that does not need the
repository done when it is made (before any capture), and what those checks read handed on with it."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from clearml_task import vocabulary
from clearml_task.arguments import parse_overrides
from clearml_task.errors import UserError
from clearml_task.git import urls
from clearml_task.records import field, record
from clearml_task.requirements import Given, read_given

# The flags that say where the code comes from: a clone (--base-task-id) takes its base task's.
SOURCE_FLAGS = ("repo", "folder", "script", "module", "branch", "commit", "cwd", "binary")


def usage(message: str, hint: str = "") -> UserError:
    """A wrong flag or flag combination (exit code 2, as argparse's own)."""
    return UserError(message, hint, exit_code=2)


@record(frozen=True)
class Request:
    """clearml-task's flags after parsing; making one checks them (a UserError names the first wrong one).
    `overrides` (the --args pairs, each key once) and `given` (what --requirements / --packages hold; None
    when neither is given) are read from the flags then. Three flags are kept in the form that is
    recorded: --project without a trailing slash, a local --repo as an absolute path, a local --output-uri
    as a file:// URI."""

    project: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    repo: str | None = None
    branch: str | None = None
    commit: str | None = None
    folder: str | None = None
    script: str | None = None
    module: str | None = None
    cwd: str | None = None
    binary: str | None = None
    args: list[str] = field(default_factory=list)
    queue: str | None = None
    requirements: str | None = None
    packages: list[str] | None = None
    docker: str | None = None
    docker_args: str | None = None
    docker_bash_setup_script: str | None = None
    output_uri: str | None = None
    task_type: str | None = None
    skip_task_init: bool = False
    base_task_id: str | None = None
    force_no_requirements: bool = False
    skip_repo_detection: bool = False
    skip_python_env_install: bool = False
    include_secrets: bool = False
    max_patch_size: int | None = None
    dry_run: bool = False
    follow: bool = False
    overrides: dict[str, str] = field(init=False)
    given: Given | None = field(init=False)

    def __post_init__(self) -> None:
        if self.follow and not self.queue:
            raise usage("--follow needs --queue", "the log comes from the worker that runs the task")
        if self.base_task_id:
            _check_clone(self)
        else:
            _check_new(self)
        if self.project is not None:
            object.__setattr__(self, "project", _checked_project(self.project))
        # each tag once, in the order given; an empty one is no tag
        object.__setattr__(self, "tags", list(dict.fromkeys(tag for tag in self.tags if tag.strip())))
        if self.repo and urls.is_local_path(self.repo):
            object.__setattr__(self, "repo", str(Path(self.repo).expanduser().resolve()))
        if self.binary and not re.match(vocabulary.BINARY_PATTERN, self.binary.strip()):
            raise usage(
                f"--binary {self.binary!r} is not an interpreter a task may name",
                "give python3, python3.X, an absolute path to one, or bash",
            )
        if self.docker is not None:
            image, arguments = _checked_docker(self.docker, self.docker_args)
            object.__setattr__(self, "docker", image)
            object.__setattr__(self, "docker_args", arguments)
        if self.docker_bash_setup_script:
            object.__setattr__(self, "docker_bash_setup_script", _setup_script(self.docker_bash_setup_script))
        if self.output_uri is not None:
            object.__setattr__(self, "output_uri", _checked_output_uri(self.output_uri))
        if self.task_type and self.task_type not in vocabulary.TASK_TYPES:
            raise usage(
                f"unknown --task-type {self.task_type!r}", f"use one of {', '.join(vocabulary.TASK_TYPES)}"
            )
        if self.force_no_requirements and (self.requirements or self.packages):
            given_flag = "--requirements" if self.requirements else "--packages"
            raise usage(
                f"--force-no-requirements and {given_flag} exclude each other",
                f"drop --force-no-requirements to install what {given_flag} gives, or drop {given_flag}",
            )
        given = read_given(self.requirements, self.packages) if self.requirements or self.packages else None
        object.__setattr__(self, "given", given)
        object.__setattr__(self, "overrides", _checked_overrides(self.args))

    @property
    def gives_requirements(self) -> bool:
        """Whether the flags settle the requirements (--force-no-requirements, or lines given): the
        repository's own requirement files are not read then."""
        return self.force_no_requirements or bool(self.given and self.given.requirements)


def _check_clone(request: Request) -> None:
    given = [f"--{flag}" for flag in SOURCE_FLAGS if getattr(request, flag)]
    if given:
        raise usage(
            f"--base-task-id clones a task's code as it is; {', '.join(given)} cannot go with it",
            "create a new task instead, or drop those flags",
        )


def _check_new(request: Request) -> None:
    if not request.name:
        raise usage("--name is required", "name the task with --name NAME (or clone one with --base-task-id)")
    if len(request.name.strip()) < 3:
        raise usage(f"--name {request.name!r} is too short", "ClearML task names have at least 3 characters")
    if len(request.name) > vocabulary.MAX_NAME:
        most = vocabulary.MAX_NAME
        raise usage(f"--name is {len(request.name)} characters long", f"a task name has at most {most}")
    if not request.project:
        raise usage("--project is required", "pass --project NAME (it is created when missing)")
    if not request.script and not request.module:
        raise usage(
            "--script or --module is required", "the entry point: --script train.py or --module pkg.main"
        )
    if request.script and request.module:
        raise usage("--script and --module exclude each other")
    if request.repo and request.folder:
        raise usage("--repo and --folder exclude each other", "--repo is a URL, --folder a local checkout")
    if (request.branch or request.commit) and not request.repo:
        raise usage(
            "--branch and --commit go with --repo",
            "a local checkout is sent at its upstream commit plus every local change",
        )


def _checked_project(project: str) -> str:
    """--project without its trailing slashes; each part of a nested name (a/b/c) has at least 3 characters,
    as ClearML's server requires."""
    name = project.rstrip("/")
    if len(name) > vocabulary.MAX_NAME:
        most = vocabulary.MAX_NAME
        raise usage(f"--project is {len(name)} characters long", f"a project name has at most {most}")
    for part in name.split("/"):
        if len(part.strip()) < 3:
            what = f"the part {part!r} of --project {project!r}" if "/" in name else f"--project {project!r}"
            raise usage(
                f"{what} is too short",
                "ClearML project names (each part of a/b/c) have at least 3 characters",
            )
    return name


def _checked_docker(docker: str, docker_args: str | None) -> tuple[str, str | None]:
    """--docker as recorded: an image reference; words after it are container arguments, as ClearML's
    clearml-task takes them (`--docker "image --ipc=host"`), put before --docker_args."""
    words = docker.split()
    if not words:  # --docker "": no image, as when it is not given
        return "", docker_args
    image, *more = words
    if not re.match(vocabulary.IMAGE_PATTERN, image):
        raise usage(
            f"--docker {docker!r} does not start with an image reference",
            "name an image as registry/name:tag (e.g. python:3.11); container options go in --docker_args",
        )
    if more:
        docker_args = " ".join([*more, *([docker_args] if docker_args else [])])
    return image, docker_args


def _setup_script(value: str) -> str:
    """--docker_bash_setup_script as recorded: the content of the file it names (without its #! line), else
    the script itself."""
    path = Path(value).expanduser()
    try:
        named = path.is_file()
    except OSError:  # e.g. a script too long to be a file name
        named = False
    if not named:
        return value
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(
            f"--docker_bash_setup_script {value} is not UTF-8 text", "give a shell script saved as UTF-8"
        ) from None
    except OSError as e:
        raise UserError(f"cannot read --docker_bash_setup_script {value}: {e.strerror or e}") from None
    return "\n".join(lines[1:] if lines and lines[0].startswith("#!") else lines)


# scheme://rest, as in s3://bucket/path, gs://, azure://, http(s)://, file:///abs
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_LOCAL = ("/", "./", "../", "~")


def _checked_output_uri(value: str) -> str:
    """--output-uri as it is recorded: a URI as given; a local path (/abs, ./rel, ../rel, ~/dir) as the
    file:// URI of its absolute path, as ClearML's SDK does; anything else is refused."""
    if _URI.match(value):
        if urls.public_url(value) != value:
            raise usage(
                f"--output-uri {urls.public_url(value)!r} carries credentials, which the task would store",
                "give it without them: the workers' clearml.conf (or the storage's variables) holds them",
            )
        return value
    if value in (".", "..", "~") or value.startswith(_LOCAL):
        return Path(os.path.abspath(Path(value).expanduser())).as_uri()
    raise usage(
        f"--output-uri {value!r} is neither a URI nor a local path",
        "give a URI such as s3://bucket/dir or file:///abs/dir, or a path such as ./out or /abs/out",
    )


def _checked_overrides(pairs: list[str]) -> dict[str, str]:
    """The --args pairs; a key given twice is refused (which value was meant is not for us to guess)."""
    overrides = parse_overrides(pairs)
    keys = Counter(next(iter(parse_overrides([pair]))) for pair in pairs)
    repeated = [key for key, seen in keys.items() if seen > 1]
    if repeated:
        raise usage(f"--args gives {repeated[0]!r} more than once", "give each key once")
    return overrides
