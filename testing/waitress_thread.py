"""The server as `clearml-launcher server` runs it (waitress), in a thread of the test process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clearml_task.server.serve import Served, create_server


@contextmanager
def serving(data_dir: Path, **options: Any) -> Iterator[tuple[Served, Any]]:
    """(what is served, the waitress server) on a free loopback port for as long as the block runs."""
    httpd, served = create_server(data_dir, port=0, **{"threads": 4, **options})
    thread = threading.Thread(target=httpd.run, name="test-waitress", daemon=True)
    thread.start()
    try:
        yield served, httpd
    finally:
        httpd.close()
        httpd.task_dispatcher.shutdown()
