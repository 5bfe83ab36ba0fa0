"""A real container engine for the tests: podman with runc, and a python3 image built here (no registry is
reachable): a `debootstrap --variant=minbase --include=python3 bookworm` rootfs imported with `podman
import`, cached between runs under ~/.cache/clearml-task-tests/. Nothing under /etc changes: the engine's two
settings come from a CONTAINERS_CONF file the tests write."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from clearml_task import locks

IMAGE = "localhost/clearml-task-tests/python3:bookworm"
INSTALL = "apt-get install -y podman runc debootstrap"
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""


def cache_dir() -> Path:
    base = Path(os.environ.get("CLEARML_TASK_TESTS_CACHE") or Path.home() / ".cache" / "clearml-task-tests")
    base.mkdir(parents=True, exist_ok=True)
    return base


def missing() -> str | None:
    """Why the container tests cannot run here (with the install line), or None."""
    lacking = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if lacking:
        return f"{', '.join(lacking)} not installed (install: {INSTALL})"
    if os.geteuid() != 0:
        return "the container tests run podman as root (debootstrap needs root)"
    return None


def engine_env(directory: Path) -> dict[str, str]:
    """CONTAINERS_CONF for podman: runc (crun fails on rlimits and hybrid cgroups here) and ulimits."""
    conf = directory / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {"CONTAINERS_CONF": str(conf)}


def test_image(env: dict[str, str]) -> str:
    """The python3 image, imported into podman once (the rootfs tarball is cached between runs)."""
    full = {**os.environ, **env}
    if _has_image(full):
        return IMAGE
    base = cache_dir()
    tarball = base / "bookworm-python3.tar"
    with locks.exclusive(base / "bookworm-python3.lock"):
        if not tarball.exists():
            _bootstrap(base, tarball)
        if not _has_image(full):
            subprocess.run(["podman", "import", "--change", "CMD=/bin/bash", str(tarball), IMAGE],
                           env=full, check=True, capture_output=True)  # fmt: skip
    return IMAGE


def _has_image(env: dict[str, str]) -> bool:
    return subprocess.run(["podman", "image", "exists", IMAGE], env=env).returncode == 0


def _bootstrap(base: Path, tarball: Path) -> None:
    rootfs = base / "bookworm-rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(rootfs)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"debootstrap failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    scratch = tarball.with_suffix(".partial")
    with tarfile.open(scratch, "w") as tar:
        tar.add(rootfs, arcname=".")
    scratch.rename(tarball)
    shutil.rmtree(rootfs, ignore_errors=True)
