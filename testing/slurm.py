"""A real single-node Slurm for the tests (Debian's slurm-wlm): munged, slurmctld and slurmd started as root
from one scratch directory (nothing under /etc or /run changes; loopback only) and stopped by their pid
files. `sbatch --wrap 'echo hi'` completes about 0.25 s after submission."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clearml_task.server.serve import free_port

INSTALL = "apt-get install -y slurm-wlm"
DAEMONS = ("slurmd", "slurmctld")
CONF = """\
ClusterName=local
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={b}/munge/munge.socket
StateSaveLocation={b}/state
SlurmdSpoolDir={b}/spool
SlurmctldPidFile={b}/run/slurmctld.pid
SlurmdPidFile={b}/run/slurmd.pid
SlurmctldLogFile={b}/log/slurmctld.log
SlurmdLogFile={b}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/filetxt
JobCompLoc={b}/log/jobcomp.txt
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def missing() -> str | None:
    tools = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")
    lacking = [tool for tool in tools if not Path(_tool(tool)).exists()]
    if lacking:
        return f"{', '.join(lacking)} not installed (install: {INSTALL})"
    if os.geteuid() != 0:
        return "the single-node Slurm of the tests runs as root"
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"  # the daemons live in sbin, not always on the PATH


@contextmanager
def single_node(base: Path) -> Iterator[dict[str, str]]:
    """A running single-node Slurm; yields the environment (SLURM_CONF) its commands need."""
    for sub in ("munge", "state", "spool", "run", "log"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    key = base / "munge" / "munge.key"
    subprocess.run([_tool("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
    key.chmod(0o600)
    conf = base / "slurm.conf"
    conf.write_text(CONF.format(b=base, cpus=os.cpu_count() or 1, ctld_port=free_port(), d_port=free_port()))
    env = {"SLURM_CONF": str(conf)}
    full = {**os.environ, **env}
    try:
        munge = [f"--{name}={base}/munge/munged.{suffix}" for name, suffix in
                 (("pid-file", "pid"), ("log-file", "log"), ("seed-file", "seed"))]  # fmt: skip
        munge += [f"--socket={base}/munge/munge.socket", f"--key-file={key}"]
        subprocess.run([_tool("munged"), "--force", *munge], check=True, capture_output=True)
        subprocess.run([_tool("slurmctld"), "-f", str(conf)], env=full, check=True, capture_output=True)
        subprocess.run([_tool("slurmd"), "-f", str(conf), "-N", "localhost"], env=full, check=True,
                       capture_output=True)  # fmt: skip
        _wait_idle(full, base)
        yield env
    finally:
        for pid_file in ("run/slurmd.pid", "run/slurmctld.pid", "munge/munged.pid"):
            _stop(base / pid_file)


def _wait_idle(env: dict[str, str], base: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["sinfo", "--noheader", "--format", "%T"], env=env, capture_output=True, text=True
        )
        if done.returncode == 0 and done.stdout.strip() in ("idle", "mixed", "allocated"):
            return
        time.sleep(0.2)
    log = (base / "log" / "slurmctld.log").read_text() if (base / "log" / "slurmctld.log").exists() else ""
    raise RuntimeError(f"the single-node Slurm did not come up:\n{log[-2000:]}")


def _stop(pid_file: Path, timeout: float = 15) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return
