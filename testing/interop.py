"""ClearML's own tools for the interop tests: a venv with the pinned clearml and clearml-agent, cached between
test sessions, and the environment that points them at our server (no clearml.conf)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from clearml_task.server.files import files_url
from testing.servers import ServerProcess

PINS = ("clearml==2.1.12", "clearml-agent==3.0.3")

# Read at import time: tests/conftest.py points HOME at a temp dir for every test, and the cache must
# outlive it.
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "clearml-task-tests"
READY = ".ready"  # written last: a venv without it is a half-made one and is rebuilt


@dataclass(frozen=True)
class Tools:
    venv: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def tools_dir() -> Path:
    """One venv per pin set and Python version."""
    version = f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"
    digest = hashlib.sha256("\n".join((*PINS, version)).encode()).hexdigest()[:12]
    return CACHE_ROOT / f"clearml-tools-{digest}"


def ensure_tools(say: Callable[[str], None] = print) -> Tools:
    """The cached venv if it is there and works; otherwise (re)made with `python -m venv` + pip."""
    venv = tools_dir()
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with _locked(CACHE_ROOT / f"{venv.name}.lock"):
        if (venv / READY).is_file() and _works(venv):
            say(f"interop: reusing ClearML's tools in {venv}")
            return Tools(venv)
        started = time.monotonic()
        say(f"interop: creating a venv for {' '.join(PINS)} in {venv} (once; cached for later runs)")
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)], timeout=300)
        say("interop: pip install (a minute or two the first time)")
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *PINS], timeout=900)
        if not _works(venv):
            raise RuntimeError(f"the venv {venv} was made but ClearML's tools do not run in it")
        (venv / READY).write_text("\n".join(PINS) + "\n")
        say(f"interop: ClearML's tools ready in {time.monotonic() - started:.0f}s")
        return Tools(venv)


def _works(venv: Path) -> bool:
    names = [pin.split("==")[0] for pin in PINS]
    check = "import clearml, clearml_agent; from importlib.metadata import version; " + "; ".join(
        f"print('{name}==' + version('{name}'))" for name in names
    )
    try:
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-c", check], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return (
        result.returncode == 0
        and result.stdout.split() == list(PINS)
        and all((venv / "bin" / tool).is_file() for tool in ("clearml-task", "clearml-agent"))
    )


def _run(argv: list[str], timeout: float) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two test sessions at once build the venv once."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def server_env(server: ServerProcess) -> dict[str, str]:
    """What points a ClearML client (ours or theirs) at our server, without a clearml.conf."""
    keys = server.keys
    return {
        "CLEARML_API_HOST": server.url,
        "CLEARML_WEB_HOST": server.url,
        "CLEARML_FILES_HOST": files_url(server.url),
        "CLEARML_API_ACCESS_KEY": keys["access_key"],
        "CLEARML_API_SECRET_KEY": keys["secret_key"],
    }


def tool_env(tools: Tools, server: ServerProcess, home: Path) -> dict[str, str]:
    """The environment ClearML's tools run with: our server, a temp HOME (no clearml.conf; the agent keeps its
    caches under ~/.clearml there), and nothing of the developer's ClearML settings or of our venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLEARML_", "TRAINS_", "VIRTUAL_ENV", "PYTHON")) and k != "CONDA_PREFIX"
    }
    env.update(server_env(server))
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join((str(tools.venv / "bin"), env.get("PATH", os.defpath))),
        # the agent looks at its task every 5 s by default (and its queues at least every 5 s): 1 s keeps
        # the tests short
        CLEARML_AGENT_QUEUE_POLL_FREQ_SEC="1",
    )
    return env
