"""The warden: a launcher's runs end with it, however it dies. A real launcher process (launcher.tether,
launcher.reaper and launcher.process's way of starting a run), real runs with a setsid escapee, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from launcher import tether
from testing.launching import alive, wait_for
from testing.servers import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warden is Linux's")

# A launcher: the warden first, then the subreaper; each line on stdin starts a run (a shell that leaves a
# sleep in its group and a setsid one outside it, all carrying the run's marker) and prints its pids.
LAUNCHER = textwrap.dedent("""
    import os, subprocess, sys, uuid
    from launcher import reaper, tether

    tether.start()
    reaper.become_subreaper()
    for line in sys.stdin:
        marker = uuid.uuid4().hex
        tether.watch(marker)
        child = subprocess.Popen(
            ["sh", "-c", "sleep 300 & setsid sleep 301 & echo $! >> " + line.strip() + "; wait"],
            env={**os.environ, reaper.MARKER: marker}, start_new_session=True,
        )
        tether.started(marker, child.pid)
        with open(line.strip(), "a") as pids:
            pids.write(f"{child.pid}\\n")
        print("started", flush=True)
""")


TAG = "CLEARML_LAUNCHER_TEST_TETHER"  # in a test launcher's environment, so in its warden's


def wardens(tag: str) -> set[int]:
    """The wardens of the launchers started with `tag`, running now."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        warden = argv[1:3] == [b"-I", b"-S"] and argv[3:4] and argv[3].endswith(b"launcher/tether.py")
        if warden and f"{TAG}={tag}".encode() in environ:
            found.add(int(entry.name))
    return found


def launcher(tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", LAUNCHER], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, TAG: tag})  # fmt: skip


def start_run(process: subprocess.Popen[str], pidfile: Path) -> None:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{pidfile}\n")
    process.stdin.flush()
    assert process.stdout.readline() == "started\n"


def pids(pidfile: Path) -> list[int]:
    return [int(line) for line in pidfile.read_text().split()]


def pids_written(pidfile: Path, count: int) -> bool:
    return pidfile.exists() and len(pidfile.read_text().split()) >= count


def test_a_killed_launchers_runs_end_escapees_included(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    process = launcher(tag)
    first, second = tmp_path / "first", tmp_path / "second"
    start_run(process, first)
    start_run(process, second)
    wait_for(lambda: pids_written(first, 2) and pids_written(second, 2), timeout=30)
    running = pids(first) + pids(second)
    assert all(alive(pid) for pid in running)
    (warden,) = wardens(tag)
    assert _parent(warden) != process.pid  # not the launcher's child: a run's end never ends it
    process.kill()
    process.wait()
    wait_for(lambda: not any(alive(pid) for pid in running), timeout=30)
    wait_for(lambda: not alive(warden), timeout=30)


def test_a_warden_that_was_killed_is_started_again_and_told_every_run(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    process = launcher(tag)
    first, second = tmp_path / "first", tmp_path / "second"
    start_run(process, first)
    wait_for(lambda: pids_written(first, 2), timeout=30)
    (warden,) = wardens(tag)
    os.kill(warden, signal.SIGKILL)
    wait_for(lambda: not alive(warden), timeout=30)
    start_run(process, second)  # the new warden hears of both runs
    wait_for(lambda: pids_written(second, 2), timeout=30)
    running = pids(first) + pids(second)
    assert len(wardens(tag)) == 1
    process.kill()
    process.wait()
    wait_for(lambda: not any(alive(pid) for pid in running), timeout=30)


def test_a_launcher_that_exits_leaves_no_warden(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    process = launcher(tag)
    assert process.stdin is not None
    # one: for a moment the warden's starter (which forks it, then exits) has the same command line
    wait_for(lambda: len(wardens(tag)) == 1, timeout=30)
    (warden,) = wardens(tag)
    process.stdin.close()
    assert process.wait(60) == 0
    wait_for(lambda: not alive(warden), timeout=30)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


# A launcher whose run leaves a process that carries nothing of it: no marker (an empty environment), not
# in its group (setsid), its parent gone (the orphan is handed to the launcher, the subreaper).
LAUNCHER_OF_A_CLEAN_ESCAPEE = textwrap.dedent("""
    import os, subprocess, sys, uuid
    from launcher import reaper, tether

    tether.start()
    reaper.become_subreaper()
    pidfile = sys.stdin.readline().strip()
    marker = uuid.uuid4().hex
    tether.watch(marker)
    child = subprocess.Popen(
        ["env", "-i", "/bin/sh", "-c",
         "setsid /bin/sh -c 'sleep 303 & echo $! > " + pidfile + "' & wait; sleep 300"],
        env={**os.environ, reaper.MARKER: marker}, start_new_session=True,
    )
    tether.started(marker, child.pid)
    print("started", flush=True)
    sys.stdin.read()
""")


def test_a_killed_launchers_run_ends_an_escapee_without_its_marker(tmp_path: Path) -> None:
    """The warden looks at what runs below the launcher while a run goes on: an escapee with no marker and
    a session of its own, handed to the launcher as an orphan, still ends when the launcher is killed."""
    pidfile = tmp_path / "escapee"
    process = subprocess.Popen([sys.executable, "-c", LAUNCHER_OF_A_CLEAN_ESCAPEE], cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{pidfile}\n")
    process.stdin.flush()
    assert process.stdout.readline() == "started\n"
    wait_for(lambda: pids_written(pidfile, 1), timeout=30)
    (escapee,) = pids(pidfile)
    wait_for(lambda: _parent(escapee) == process.pid, timeout=30)  # an orphan of the run, handed over
    assert b"CLEARML_LAUNCHER_RUN" not in Path(f"/proc/{escapee}/environ").read_bytes()
    time.sleep(3 * tether.LOOK)  # the warden has looked
    process.kill()
    process.wait()
    try:
        wait_for(lambda: not alive(escapee), timeout=30)
    finally:
        if alive(escapee):
            os.kill(escapee, signal.SIGKILL)
