"""A small stand-in for a Kubernetes API server (none can run here): it records every request the official
client makes and answers what the glue asks — create, read the status of and delete a Job, list its pods —
with a Job state and a pod waiting reason the test sets, or with the error a test sets for a call (as a
cluster's RBAC or an outage would); creating a Job whose name exists is refused (409), as a real one does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from testing.servers import LoopbackServer

REASONS = {403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 500: "InternalError",
           503: "ServiceUnavailable", 504: "Timeout"}  # fmt: skip
JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+)(/status)?)?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")


@dataclass
class Recorded:
    method: str
    path: str
    body: Any


@dataclass
class KubernetesApi:
    requests: list[Recorded] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_status: dict[str, Any] = field(default_factory=lambda: {"active": 1})
    waiting: str | None = None  # a pod waiting reason (e.g. ImagePullBackOff)
    # (method, "jobs" | "job" | "pods") -> the HTTP code the call gets ("jobs": creating a Job; "job": reading
    # or deleting one; "pods": listing pods)
    refused: dict[tuple[str, str], int] = field(default_factory=dict)
    # the HTTP code a Job's creation gets after the Job is made (a gateway that gave up on an API server
    # that made it); None: 201
    made_then: int | None = None

    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _answer(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path = urlsplit(self.path).path
                api.requests.append(Recorded(self.command, self.path, body))
                code, answer = api.answer(self.command, path, body)
                self._answer(code, answer)

            do_GET = do_POST = do_DELETE = _handle

        self._server = LoopbackServer(Handler)
        return self._server.url

    def stop(self) -> None:
        self._server.stop()

    def kubeconfig(self, path: Path, url: str) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": url}}],
            "users": [{"name": "test", "user": {"token": "test"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        }  # fmt: skip
        path.write_text(json.dumps(config))
        return path

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        jobs, pods = JOBS.match(path), PODS.match(path)
        call = "pods" if pods else "job" if jobs and jobs.group(2) else "jobs"
        if (method, call) in self.refused:
            code = self.refused[method, call]
            return self._status(code, f"{call}: {REASONS.get(code, code)} (refused by the test)")
        if jobs and method == "POST":
            name = body["metadata"]["name"]
            if name in self.jobs:
                return self._status(409, f'jobs.batch "{name}" already exists')
            self.jobs[name] = body
            if self.made_then is not None:
                return self._status(self.made_then, f"jobs: {REASONS.get(self.made_then, self.made_then)} "
                                    "(after making it, by the test)")  # fmt: skip
            return 201, body
        if jobs and jobs.group(2):
            name = jobs.group(2)
            if name not in self.jobs:
                return self._status(404, f'jobs.batch "{name}" not found')
            if method == "DELETE":
                del self.jobs[name]
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            return 200, {**self.jobs[name], "status": self.job_status}
        if pods:
            return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": self._pods()}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}

    def _status(self, code: int, message: str) -> tuple[int, Any]:
        """The API server's error: a Status with the reason of the code."""
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                      "reason": REASONS.get(code, "Unknown"), "message": message}  # fmt: skip

    def _pods(self) -> list[dict[str, Any]]:
        if self.waiting is None:
            return []
        state = {"waiting": {"reason": self.waiting, "message": "the image cannot be pulled"}}
        status = {
            "name": "task",
            "image": "x",
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "state": state,
        }
        return [{"metadata": {"name": "pod"}, "status": {"containerStatuses": [status]}}]
