"""The console shipped to a server that does not de-duplicate log events (as ClearML's does not): a batch
whose call may or may not have reached it is read back, never sent again blindly, and never lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clearml_task.api import Client, Session
from clearml_task.config import ServerConfig
from launcher.logship import LogShipper
from testing.forgetful_proxy import ForgetfulProxy
from testing.servers import ServerProcess, http_config


@pytest.fixture
def proxy(http_server: ServerProcess) -> Iterator[tuple[ForgetfulProxy, str]]:
    found = ForgetfulProxy(http_server.url)
    url = found.start()
    yield found, url
    found.stop()


def through(url: str, server: ServerProcess, tmp_path: Path) -> Client:
    direct = http_config(server, tmp_path)
    config = ServerConfig(url, None, None, direct.access_key, direct.secret_key, "test", tmp_path)
    return Client(Session(config, retries=3, backoff=0.05))


@pytest.mark.parametrize(
    "losses",
    [["answer"], ["request"], ["answer", "answer", "request"], ["request", "answer"]],
    ids=["answer-lost", "request-lost", "answers-then-request", "request-then-answer"],
)
def test_every_line_is_stored_once_when_calls_are_lost(
    proxy: tuple[ForgetfulProxy, str], http_server: ServerProcess, tmp_path: Path, losses: list[str]
) -> None:
    forgetful, url = proxy
    client = through(url, http_server, tmp_path)
    task_id = client.create_task({"name": "shipped", "type": "training"})
    forgetful.losses = list(losses)
    log = LogShipper(client, task_id, "worker:0")
    expected = []
    for n in range(3):
        for i in range(40):
            expected.append(f"batch {n} line {i}")
            log.write(expected[-1])
        expected.append("same text, same millisecond")  # lines that differ in nothing are still each kept
        log.write(expected[-1])
        log.write(expected[-1])
        expected.append(expected[-1])
        log.flush()
    log.close()
    assert not forgetful.losses and forgetful.stripped >= len(expected)  # every loss happened, no seq got by
    stored = [e["msg"] for e in Client(Session(http_config(http_server, tmp_path))).task_log(task_id)]
    assert stored == expected
    assert log.shipped == len(expected) and log.waiting == 0
