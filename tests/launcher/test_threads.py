"""launcher/threads.py: work on kept threads: every piece runs exactly once, threads are reused, idle ones
end, and what a piece raises is reported as from a thread of its own."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from launcher import threads


def test_work_runs_with_its_arguments_under_its_name_and_can_be_joined() -> None:
    seen: list[tuple[int, str, str]] = []
    work = threads.start(lambda a, b: seen.append((a, b, threading.current_thread().name)), 1, "x",
                         name="the-work")  # fmt: skip
    work.join(10)
    assert not work.is_alive()
    assert seen == [(1, "x", "the-work")]


def idle_again() -> None:
    """Until a kept thread is back to waiting (a joined piece of work is done a moment before)."""
    deadline = time.monotonic() + 10
    while threads._idle < 1 and time.monotonic() < deadline:
        time.sleep(0.001)


def test_a_thread_done_with_its_work_takes_the_next() -> None:
    threads.start(lambda: None, name="warm").join(10)
    idle_again()
    before = {t.ident for t in threading.enumerate()}
    ran_on: list[int] = []
    for _ in range(10):
        threads.start(lambda: ran_on.append(threading.get_ident()), name="again").join(10)
        idle_again()
    assert len(ran_on) == 10 and set(ran_on) <= before  # no thread started for them


def test_work_that_waits_does_not_hold_up_other_work() -> None:
    release = threading.Event()
    blocked = threads.start(release.wait, 30, name="blocked")
    done = threading.Event()
    threads.start(done.set, name="free").join(10)
    assert done.is_set() and blocked.is_alive()
    release.set()
    blocked.join(10)
    assert not blocked.is_alive()


def test_many_starters_at_once_every_piece_runs_exactly_once() -> None:
    ran: Counter[int] = Counter()
    lock = threading.Lock()

    def record(n: int) -> None:
        with lock:
            ran[n] += 1

    works: list[threads.Work] = []
    works_lock = threading.Lock()

    def starter(base: int) -> None:
        for n in range(base, base + 500):
            work = threads.start(record, n, name="piece")
            with works_lock:
                works.append(work)

    starters = [threading.Thread(target=starter, args=(i * 500,)) for i in range(4)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    for work in works:
        work.join(30)
    assert ran == Counter(range(2000))


def test_idle_threads_end_and_work_after_that_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "IDLE_TIMEOUT", 0.2)
    before = {t.ident for t in threading.enumerate()}
    for _ in range(3):  # more work at once than threads waiting: new ones, which then idle out
        pieces = [threads.start(time.sleep, 0.05, name="short") for _ in range(20)]
        for work in pieces:
            work.join(10)
        time.sleep(0.2)  # work handed over around their timeouts is still done
        late = threads.start(lambda: None, name="late")
        late.join(10)
        assert not late.is_alive()
    deadline = time.monotonic() + 10
    while [t for t in threading.enumerate() if t.ident not in before] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.ident not in before]


def test_what_work_raises_goes_to_the_thread_excepthook(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", reported.append)

    def fail() -> None:
        raise ValueError("from the work")

    threads.start(fail, name="failing").join(10)
    assert [(type(r.exc_value), str(r.exc_value)) for r in reported] == [(ValueError, "from the work")]
    threads.start(lambda: None, name="after").join(10)  # the thread serves on


def test_a_failing_excepthook_ends_no_thread_and_loses_no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_hook(args: threading.ExceptHookArgs) -> None:
        raise OSError("stderr is gone")

    monkeypatch.setattr(threading, "excepthook", broken_hook)
    failing = [threads.start(lambda: 1 / 0, name="failing") for _ in range(100)]  # more than are kept
    deadline = time.monotonic() + 10
    for work in failing:
        work.join(max(0.0, deadline - time.monotonic()))
    ran = threading.Event()
    threads.start(ran.set, name="after").join(10)
    assert ran.is_set() and not [work for work in failing if work.is_alive()]
