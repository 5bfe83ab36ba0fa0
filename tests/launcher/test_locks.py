"""The file lock: exclusive between threads and processes, and it says when (and how long) it waited."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from clearml_task import locks

HOLD = """
import sys, time
from pathlib import Path
from clearml_task import locks
with locks.exclusive(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_free_lock_is_taken_at_once(tmp_path: Path) -> None:
    calls: list[str] = []
    with locks.exclusive(tmp_path / "new" / "dir" / "a.lock", lambda: calls.append("wait")) as waited:
        assert waited is None
    assert calls == [] and (tmp_path / "new" / "dir" / "a.lock").is_file()


def test_a_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    order: list[str] = []
    taken = threading.Event()

    def first() -> None:
        with locks.exclusive(path):
            taken.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    taken.wait(5)
    with locks.exclusive(path, lambda: order.append("waiting")) as waited:
        order.append("second in")
    thread.join()
    assert order == ["waiting", "first done", "second in"]
    assert waited is not None and waited > 0.1


def test_another_process_holding_it_makes_us_wait(tmp_path: Path) -> None:
    path = tmp_path / "b.lock"
    argv = [sys.executable, "-c", HOLD, str(path), "0.5"]
    holder = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with locks.exclusive(path) as waited:
            pass
        assert waited is not None  # the holder had it until it let go
    finally:
        holder.wait(10)
