"""What the benchmarks share: temporary directories, our server as a loopback subprocess, text tables."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def server(data_dir: Path, env: Mapping[str, str], extra: Sequence[str] = ()) -> Iterator[str]:
    """`python -m launcher server --port 0 [extra]` on loopback; yields its URL once it listens."""
    log = data_dir.parent / "server.log"
    argv = [sys.executable, "-m", "launcher", "server", "--host", "127.0.0.1", "--port", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "--data-dir", str(data_dir), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            found = re.search(r"serving the ClearML API at (http://\S+)", log.read_text())
            if found:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        url = found[1].rstrip("/")
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the server is not on loopback: {url}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def table(rows: Sequence[Sequence[str]]) -> str:
    """Plain aligned columns, the first row a header underlined with dashes."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
