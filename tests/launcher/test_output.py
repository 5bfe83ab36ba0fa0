"""A task's output into log lines as the user printed them: `\\r` collapsed, stderr's level, escapes,
long lines in ordered pieces, and a reader that never waits on a pipe someone else holds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from launcher import output, reaper
from launcher.logship import MAX_LINE, chunks


def lines_of(*pieces: bytes, period: float = output.CR_PERIOD) -> list[tuple[str, str]]:
    got: list[tuple[str, str]] = []
    lines = output.Lines(lambda line, level: got.append((line, level)), "info", cr_period=period)
    for piece in pieces:
        lines.feed(piece)
    lines.end()
    return got


def test_plain_lines_and_the_last_one_without_a_newline() -> None:
    assert lines_of(b"one\ntw", b"o\n\nthree") == [("one", "info"), ("two", "info"), ("", "info"),
                                                     ("three", "info")]  # fmt: skip


def test_a_progress_bar_is_its_latest_state() -> None:
    bar = b"".join(b"\rprogress %3d%%" % p for p in range(0, 101, 10)) + b"\n"
    assert lines_of(bar) == [("progress 100%", "info")]
    # redrawn over time: the first state, then the final one (the period keeps the rest out)
    pieces = [b"\rprogress %3d%%" % p for p in range(0, 101, 10)] + [b"\n", b"after\n"]
    assert lines_of(*pieces) == [("progress   0%", "info"), ("progress 100%", "info"), ("after", "info")]
    assert lines_of(b"done\r\n") == [("done", "info")]


def test_progress_states_are_logged_at_a_bounded_rate() -> None:
    pieces = [b"\rstep %d" % i for i in range(5)] + [b"\n"]
    assert [line for line, _ in lines_of(*pieces, period=0)] == [f"step {i}" for i in range(4)] + ["step 4"]


def test_bytes_that_are_not_utf8_stay_visible() -> None:
    assert lines_of(b"caf\xe9 \xff\n") == [("caf\\xe9 \\xff", "info")]


def test_a_line_past_the_partial_limit_is_cut_between_characters() -> None:
    """A line of 1 MiB and more without a newline is logged as it comes, in pieces that never cut a UTF-8
    character in two (a cut at the byte limit logged `\\xc3` and `\\xa9` for one "é")."""
    data = "é€😀".encode() * (output.MAX_PARTIAL // 9 + 200) + b"\n"
    for tail in range(1000, 1009):  # the pipe's read ends at each byte of the characters in turn
        got = lines_of(data[:-tail], data[-tail:])
        assert "".join(line for line, _ in got) == data[:-1].decode()
        assert all("\\x" not in line for line, _ in got) and len(got) == 2


def test_long_lines_go_in_ordered_pieces_nothing_cut() -> None:
    line = "".join(chr(ord("a") + i % 26) for i in range(MAX_LINE * 2 + 5))
    pieces = chunks(line)
    assert [len(p) for p in pieces] == [MAX_LINE, MAX_LINE, 5] and "".join(pieces) == line
    assert chunks("") == [""]


def test_stderr_is_error_and_an_escapee_holding_the_pipe_is_not_waited_for() -> None:
    script = ("import subprocess, sys; print('out', flush=True); print('err', file=sys.stderr, flush=True); "
              "subprocess.Popen(['sleep', '30'], start_new_session=True)")  # fmt: skip
    marker = uuid.uuid4().hex
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, reaper.MARKER: marker})  # fmt: skip
    got: list[tuple[str, str]] = []
    assert child.stdout is not None and child.stderr is not None
    reader = output.Output(child.stdout, child.stderr, lambda line, level: got.append((line, level))).start()
    child.wait()
    assert not reader.join(1.0)  # the sleep holds both pipes open
    start = time.monotonic()
    reader.stop()
    assert time.monotonic() - start < 1.0
    assert sorted(got) == [("err", "error"), ("out", "info")]
    (escapee,) = reaper.marked(marker)  # found by the marker it inherited, although in its own session
    assert reaper.end(None, marker, grace=2.0) == 1
    assert escapee not in reaper.marked(marker)
