"""Typed helpers for the calls the CLI and the launcher make (ClearML's shapes, plain dicts)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from clearml_task.api.session import Answer, Session
from clearml_task.errors import APICallError, UserError
from clearml_task.vocabulary import COMPLETED, FAILED, FINAL_STATUSES, QUEUED, STOPPED

# The statuses set by the endpoint of their own name (tasks.started moves a task to in_progress).
STATUS_ENDPOINTS = ("started", STOPPED, FAILED, COMPLETED)


def _exact(name: str) -> str:
    return f"^{re.escape(name)}$"


def _key(endpoint: str, data: dict[str, Any]) -> tuple[str, str]:
    return endpoint, json.dumps(data, sort_keys=True)


def _queues_query() -> tuple[str, dict[str, Any]]:
    return "queues.get_all", {}


def _project_query(name: str) -> tuple[str, dict[str, Any]]:
    return "projects.get_all", {"name": _exact(name), "only_fields": ["id", "name"]}


class Client:
    def __init__(self, session: Session | None = None) -> None:
        self.session = session or Session()
        self._ahead: dict[tuple[str, str], Answer] = {}  # answers asked for ahead (look_ahead)

    def call(
        self, endpoint: str, data: dict[str, Any] | list[dict[str, Any]] | None = None, *, resend: bool = True
    ) -> Answer:
        if self._ahead and not isinstance(data, list):
            found = self._ahead.pop(_key(endpoint, data or {}), None)
            if found is not None:
                return found
        return self.session.call(endpoint, data, resend=resend)

    def look_ahead(self, queue: str | None, project: str | None) -> None:
        """Asks now what queue_id(queue) and project_id(project) ask first, and keeps the answers that
        name them for those calls (once each); an answer that does not name them is asked again then."""
        if queue:
            endpoint, data = _queues_query()
            found = self.call(endpoint, data)
            if any(queue in (q.get("id"), q.get("name")) for q in found.records("queues")):
                self._ahead[_key(endpoint, data)] = found
        if project:
            endpoint, data = _project_query(project)
            found = self.call(endpoint, data)
            if any(p.get("name") == project for p in found.records("projects")):
                self._ahead[_key(endpoint, data)] = found

    # projects -------------------------------------------------------------------------------------
    def project_id(self, name: str, *, create: bool = True) -> str:
        found = self.call(*_project_query(name))
        for project in found.records("projects"):
            if project.get("name") == name:
                return project.id()
        if not create:
            raise UserError(f"no project named {name!r}")
        return self.call("projects.create", {"name": name}).id()

    # tasks ----------------------------------------------------------------------------------------
    def create_task(self, document: dict[str, Any]) -> str:
        return self.call("tasks.create", document).id()

    def edit_task(self, task_id: str, *, force: bool = False, **fields: Any) -> None:
        self.call("tasks.edit", {"task": task_id, "force": force, **fields})

    def get_task(self, task_id: str) -> dict[str, Any]:
        try:
            task: dict[str, Any] = self.call("tasks.get_by_id", {"task": task_id}).record("task")
        except APICallError as e:
            if e.subcode == 101:
                raise UserError(
                    f"no task with id {task_id}", "list tasks with `clearml-launcher tasks`"
                ) from None
            raise
        return task

    def tasks(self, **filters: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = [*self.call("tasks.get_all", filters).records("tasks")]
        return found

    def clone_task(self, task_id: str, **overrides: Any) -> str:
        return self.call("tasks.clone", {"task": task_id, **overrides}).id()

    def enqueue(self, task_id: str, queue_id: str) -> dict[str, Any]:
        return self.call("tasks.enqueue", {"task": task_id, "queue": queue_id})

    def set_status(self, task_id: str, status: str, *, force: bool = False, message: str = "") -> None:
        """`status` is one of started, stopped, failed, completed: each is set by the endpoint of its name."""
        if status not in STATUS_ENDPOINTS:
            raise ValueError(f"no endpoint sets the status {status!r}")
        self.call(f"tasks.{status}", {"task": task_id, "force": force, "status_message": message})

    def ping(self, task_id: str) -> None:
        self.call("tasks.ping", {"task": task_id})

    def set_requirements(self, task_id: str, requirements: dict[str, Any]) -> None:
        self.call("tasks.set_requirements", {"task": task_id, "requirements": requirements})

    # queues ---------------------------------------------------------------------------------------
    def queues(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = [*self.call(*_queues_query()).records("queues")]
        return found

    def queue_id(self, name_or_id: str, *, create: bool = False) -> str:
        """The id of a queue given by name or id; an unknown one is an error listing the known ones."""
        known = self.queues()
        for queue in known:
            if name_or_id in (queue["id"], queue["name"]):
                return str(queue["id"])
        if create:
            return self.call("queues.create", {"name": name_or_id}).id()
        names = ", ".join(sorted(str(q["name"]) for q in known)) or "none"
        raise UserError(
            f"no queue named {name_or_id!r} (known queues: {names})",
            "check the name; `clearml-launcher queues` lists them",
        )

    def queue_workers(self, queue_id: str) -> list[str]:
        """The ids of the workers that listen on a queue now (workers.get_all)."""
        workers = self.call("workers.get_all", {})["workers"]
        return [str(w["id"]) for w in workers if any(q.get("id") == queue_id for q in w.get("queues") or [])]

    def next_task(self, queue_id: str) -> str | None:
        entry = self.call("queues.get_next_task", {"queue": queue_id}).get("entry")
        return str(entry["task"]) if entry else None

    def take_next(
        self, queue_ids: Sequence[str], wait: float, *, with_task: bool = False
    ) -> tuple[str, str, dict[str, Any] | None] | None:
        """(queue id, task id, the task's document or None) from the first of these queues that has an
        entry, waiting up to `wait` seconds for one: our server's long-poll form of queues.get_next_task
        (`long_poll` says whether the server has it, and whether it gives the document with the entry)."""
        first, *more = queue_ids
        request: dict[str, Any] = {"queue": first, "then_queues": more, "wait": wait}
        if with_task:
            request["with_task"] = True
        found = self.call("queues.get_next_task", request)
        entry = found.get("entry")
        if not entry:
            return None
        task = found.get("task")
        task = task if isinstance(task, dict) and task.get("id") == entry["task"] else None
        return str(found.get("queue") or first), str(entry["task"]), task

    def long_poll(self) -> tuple[float, bool]:
        """The longest `wait` the server's queues.get_next_task takes (0 when it has no such field, as
        ClearML's server has not), and whether it gives the task's document with the entry (`with_task`):
        server.info says both."""
        try:
            info = self.call("server.info", {})
        except APICallError:
            return 0.0, False
        advertised = info.get("get_next_task_max_wait")
        with_task = info.get("get_next_task_with_task") is True
        if isinstance(advertised, bool) or not isinstance(advertised, int | float) or advertised <= 0:
            return 0.0, with_task
        return float(advertised), with_task

    # workers --------------------------------------------------------------------------------------
    def register_worker(self, worker: str, queue_ids: Iterable[str], timeout: int = 600) -> None:
        self.call("workers.register", {"worker": worker, "queues": list(queue_ids), "timeout": timeout})

    def status_report(
        self,
        worker: str,
        *,
        task_id: str | None = None,
        queue_id: str | None = None,
        machine_stats: dict[str, Any] | None = None,
    ) -> None:
        report: dict[str, Any] = {"worker": worker, "timestamp": int(time.time() * 1000)}
        if task_id:
            report["task"] = task_id
        if queue_id:
            report["queue"] = queue_id
        if machine_stats:
            report["machine_stats"] = machine_stats
        self.call("workers.status_report", report)

    def unregister_worker(self, worker: str) -> None:
        self.call("workers.unregister", {"worker": worker})

    # logs -----------------------------------------------------------------------------------------
    def send_log(
        self,
        task_id: str,
        lines: Iterable[tuple[str, str]],
        *,
        worker: str = "",
        stamps: Sequence[int] | None = None,
        seqs: Sequence[str] | None = None,
        resend: bool = True,
    ) -> int:
        """Ship (level, message) lines as log events in one call; returns how many the server took.
        `stamps` are the lines' millisecond timestamps, one per line (default: now, for all of them);
        `seqs` keys unique in the task, one per line: the embedded server stores a line sent again once
        (ClearML's server does not: with `resend=False` a batch it may have stored is MaybeDelivered)."""
        now = int(time.time() * 1000)
        events: list[dict[str, Any]] = [
            {"type": "log", "task": task_id, "level": level, "msg": msg,
             "timestamp": stamps[index] if stamps is not None else now, "worker": worker}
            for index, (level, msg) in enumerate(lines)
        ]  # fmt: skip
        for event, seq in zip(events, seqs or (), strict=False):
            event["seq"] = seq
        if not events:
            return 0
        return int(self.call("events.add_batch", events, resend=resend).get("added", 0))

    def task_log(
        self, task_id: str, *, after: int | None = None, batch_size: int = 5000
    ) -> list[dict[str, Any]]:
        """The log of a task, oldest first: all of it, or what came strictly after the timestamp `after`."""
        out: list[dict[str, Any]] = []
        while True:
            request: dict[str, Any] = {"task": task_id, "batch_size": batch_size, "navigate_earlier": False}
            if after is not None:
                request["from_timestamp"] = after
            events = self.call("events.get_task_log", request)["events"]
            out.extend(events)
            if len(events) < batch_size:
                return out
            after = int(events[-1]["timestamp"])

    def follow_log(
        self,
        task_id: str,
        write: Callable[[str], None],
        interval: float = 0.5,
        *,
        queued: Callable[[], None] | None = None,
    ) -> str:
        """Write a task's log lines as they arrive, until the task ends; returns its final status.
        `queued` is called at each poll while the task waits in a queue."""
        last: int | None = None
        while True:
            status = str(self.tasks(id=[task_id], only_fields=["status"])[0]["status"])
            if status == QUEUED and queued is not None:
                queued()
            events = self.task_log(task_id, after=last)
            for event in events:
                write(str(event.get("msg", "")).rstrip("\n"))
            if events:
                last = int(events[-1]["timestamp"])
            if status in FINAL_STATUSES:
                return status
            time.sleep(interval)
