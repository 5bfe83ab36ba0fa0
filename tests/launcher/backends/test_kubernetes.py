"""The Kubernetes glue: manifests validated with kubernetes-validate --strict, submit / watch / delete through
the official client against a recording stand-in API server (no cluster runs here)."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from clearml_task.api import Client
from clearml_task.server.serve import free_port
from testing.kubernetes_api import KubernetesApi
from testing.launching import create_task, launcher, log_lines, spawn, status, wait_for
from testing.repos import Repo, make_repo

TEMPLATE = """\
apiVersion: batch/v1
kind: Job
metadata:
  annotations:
    clearml/task-name: "${CLEARML_TASK.name}"
    clearml/queue: "${CLEARML_QUEUE_NAME}"
spec:
  template:
    spec:
      containers:
        - name: task
          image: python:3.12
          resources:
            limits: {cpu: 2, memory: 1Gi}
          envFrom:
            - secretRef: {name: clearml-api}
          volumeMounts:
            - {name: data, mountPath: /data}
      volumes:
        - name: data
          emptyDir: {}
"""


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[KubernetesApi, dict[str, str]]]:
    server = KubernetesApi()
    url = server.start()
    yield server, {"KUBECONFIG": str(server.kubeconfig(tmp_path / "kubeconfig", url))}
    server.stop()


@pytest.fixture
def jobs(tmp_path: Path) -> Repo:
    return make_repo(tmp_path / "jobs", "jobs")


def queue() -> str:
    name = f"k8s-{uuid.uuid4().hex[:6]}"
    Client().queue_id(name, create=True)
    return name


def template(tmp_path: Path) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(TEMPLATE)
    return str(path)


def validate(manifest: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / f"manifest-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    validator = Path(sys.executable).with_name("kubernetes-validate")
    checked = subprocess.run([str(validator), "--strict", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_dry_run_directory_that_cannot_be_made_is_one_line(jobs: Repo, tmp_path: Path) -> None:
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q, docker="python:3.11")
    result = launcher("k8s", "--queue", q, "--template", template(tmp_path), "--dry-run", "/proc/x", "--once")
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("clearml-launcher: error: --dry-run /proc/x: cannot write there: "), result.stderr
    assert status(task_id) == "queued"


def test_dry_run_writes_valid_manifests_and_submits_nothing(jobs: Repo, tmp_path: Path) -> None:
    q = queue()
    hostile = 'x: {y: z}\n- "$(rm -rf /)"'
    task_id = create_task(jobs.work, "train.py", queue=q, docker="python:3.11", name=hostile)
    out = tmp_path / "manifests"
    result = launcher("k8s", "--queue", q, "--template", template(tmp_path), "--dry-run", str(out), "--once")
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = yaml.safe_load((out / f"{task_id}.yaml").read_text())
    validate(manifest, tmp_path)
    assert manifest["metadata"]["annotations"]["clearml/task-name"] == hostile
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "python:3.11"
    assert container["command"] == ["clearml-launcher", "execute", "--id", task_id, "--require-queue"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}] and pod["volumes"]
    assert {"name": "CLEARML_TASK_ID", "value": task_id} in container["env"]
    assert pod["restartPolicy"] == "Never" and manifest["spec"]["backoffLimit"] == 0
    assert status(task_id) == "queued"


def test_a_job_that_cannot_start_fails_the_task(
    api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path
) -> None:
    server, env = api
    server.job_status, server.waiting = {}, "ImagePullBackOff"
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q, docker="python:3.11")
    result = launcher("k8s", "--queue", q, "--template", template(tmp_path), "--namespace", "ml", "--once",
                      "--polling-interval", "0.3", env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    created = [r for r in server.requests if r.method == "POST"]
    assert len(created) == 1 and created[0].path == "/apis/batch/v1/namespaces/ml/jobs"
    validate(created[0].body, tmp_path)
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert "cannot start: ImagePullBackOff" in task["status_message"]
    assert re.fullmatch(f"ml/clearml-{task_id}-[0-9a-f]{{8}}", task["runtime"]["kubernetes_job_id"])
    assert any("kubernetes job ml/clearml-" in line for line in log_lines(task_id))


def test_abort_deletes_the_job(api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path) -> None:
    server, env = api
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    glue = spawn("k8s", "--queue", q, "--template", template(tmp_path), "--polling-interval", "0.3", env=env)
    try:
        wait_for(lambda: any(r.method == "POST" for r in server.requests))
        assert launcher("abort", task_id).returncode == 0
        wait_for(lambda: any(r.method == "DELETE" for r in server.requests))
    finally:
        glue.terminate()
        glue.wait(timeout=60)
    deleted = next(r for r in server.requests if r.method == "DELETE")
    assert deleted.path.startswith(f"/apis/batch/v1/namespaces/default/jobs/clearml-{task_id}")
    assert not server.jobs


class Orphaned(NamedTuple):
    """A task whose Job a glue created before it was killed (-9): the next glue finds it in its record."""

    server: KubernetesApi
    env: dict[str, str]
    queue: str
    task_id: str
    job_id: str
    template: str

    def glue(self, *options: str) -> list[str]:
        """The glue's command line on the same queue and template, with these options."""
        return ["k8s", "--queue", self.queue, "--template", self.template, *options]


@pytest.fixture
def orphaned(api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path) -> Orphaned:
    server, env = api
    q, job = queue(), template(tmp_path)
    task_id = create_task(jobs.work, "train.py", queue=q)
    glue = spawn("k8s", "--queue", q, "--template", job, "--polling-interval", "0.3", env=env)
    try:
        job_id = wait_for(lambda: (Client().get_task(task_id).get("runtime") or {}).get("kubernetes_job_id"))
    finally:
        glue.kill()
        glue.wait()
    (name,) = server.jobs
    assert job_id == f"default/{name}"
    return Orphaned(server, env, q, task_id, str(job_id), job)


def test_a_restarted_glue_tracks_its_job_to_the_end(orphaned: Orphaned) -> None:
    server, env, task_id, job_id = orphaned.server, orphaned.env, orphaned.task_id, orphaned.job_id
    glue = spawn(*orphaned.glue("--polling-interval", "0.3"), env=env)
    try:
        wait_for(lambda: any("tracked again" in line for line in log_lines(task_id)))
        reads = sum(r.method == "GET" for r in server.requests)
        wait_for(lambda: sum(r.method == "GET" for r in server.requests) > reads + 2)  # it keeps looking
        assert status(task_id) == "queued"  # the Job is still active
        server.job_status = {
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]
        }
        wait_for(lambda: status(task_id) == "failed", timeout=60)
    finally:
        glue.terminate()
        glue.wait(timeout=60)
    message = Client().get_task(task_id)["status_message"]
    assert f"kubernetes job {job_id} ended (FAILED: DeadlineExceeded)" in message


def test_a_job_gone_while_its_glue_was_down_fails_the_task(orphaned: Orphaned) -> None:
    server, env, task_id, job_id = orphaned.server, orphaned.env, orphaned.task_id, orphaned.job_id
    server.jobs.clear()  # deleted by someone else meanwhile
    result = launcher(*orphaned.glue("--once"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert (
        f"kubernetes job {job_id} ended (DELETED) without the task reporting its end"
        in task["status_message"]
    )


def test_a_task_aborted_while_its_glue_was_down_gets_its_job_deleted(orphaned: Orphaned) -> None:
    server, env, task_id, job_id = orphaned.server, orphaned.env, orphaned.task_id, orphaned.job_id
    assert launcher("abort", task_id).returncode == 0
    result = launcher(*orphaned.glue("--once"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (deleted,) = [r.path for r in server.requests if r.method == "DELETE"]
    assert deleted.startswith(f"/apis/batch/v1/namespaces/default/jobs/{job_id.split('/')[1]}?")
    assert not server.jobs and status(task_id) == "stopped"


def test_no_cluster_is_a_clear_error_before_any_task(jobs: Repo, tmp_path: Path) -> None:
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    result = launcher("k8s", "--queue", q, "--template", template(tmp_path), "--once")
    assert result.returncode == 1
    assert "no Kubernetes cluster configured" in result.stderr + result.stdout
    assert status(task_id) == "queued"


def test_pods_that_cannot_be_listed_leave_the_job_tracked(
    api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path
) -> None:
    """RBAC without `list pods`: the glue says so once and goes on following the Job's own status."""
    server, env = api
    server.job_status, server.refused = {}, {("GET", "pods"): 403}
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    glue = spawn("k8s", "--queue", q, "--template", template(tmp_path), "--polling-interval", "0.3", env=env)
    try:
        wait_for(lambda: any("pods cannot be listed" in line for line in log_lines(task_id)), timeout=60)
        listed = sum(r.path.startswith("/api/v1/namespaces/default/pods") for r in server.requests)
        wait_for(lambda: sum(r.path.startswith("/api/v1/") for r in server.requests) > listed + 2)
        assert glue.poll() is None and status(task_id) == "queued"
        server.job_status = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimit"}]}
        wait_for(lambda: status(task_id) == "failed", timeout=60)
        assert glue.poll() is None
    finally:
        glue.terminate()
        glue.wait(timeout=60)
    warned = [line for line in log_lines(task_id) if "pods cannot be listed" in line]
    assert len(warned) == 1 and "pods: Forbidden" in warned[0]
    assert "ended (FAILED: BackoffLimit)" in Client().get_task(task_id)["status_message"]


def test_a_job_that_cannot_be_deleted_is_asked_again(
    api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path
) -> None:
    server, env = api
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    glue = spawn("k8s", "--queue", q, "--template", template(tmp_path), "--polling-interval", "0.3", env=env)
    try:
        wait_for(lambda: server.jobs)
        server.refused = {("DELETE", "job"): 403}
        assert launcher("abort", task_id).returncode == 0
        wait_for(lambda: any("cannot be cancelled" in line for line in log_lines(task_id)), timeout=60)
        deletes = sum(r.method == "DELETE" for r in server.requests)
        wait_for(lambda: sum(r.method == "DELETE" for r in server.requests) > deletes + 1)  # asked again
        assert glue.poll() is None and server.jobs
        server.refused = {}
        wait_for(lambda: not server.jobs)
        wait_for(lambda: any("aborted; kubernetes job" in line for line in log_lines(task_id)), timeout=30)
        assert glue.poll() is None
    finally:
        glue.terminate()
        glue.wait(timeout=60)
    assert sum("cannot be cancelled" in line for line in log_lines(task_id)) == 1


@pytest.fixture
def in_process(api: tuple[KubernetesApi, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The glue's Kubernetes client in this process, configured for the stand-in API server."""
    from launcher.backends import kubernetes

    monkeypatch.setenv("KUBECONFIG", api[1]["KUBECONFIG"])
    kubernetes._apis.cache_clear()
    yield
    kubernetes._apis.cache_clear()


def test_a_queued_task_whose_job_stays_unreadable_fails(
    api: tuple[KubernetesApi, dict[str, str]], in_process: None, jobs: Repo, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from launcher.backends import kubernetes
    from launcher.glue import Glue, Options

    server, _ = api
    server.refused = {("GET", "job"): 403, ("DELETE", "job"): 403}
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    scheduler = kubernetes.Kubernetes(kubernetes.read_template(TEMPLATE, "job.yaml"))
    options = Options(queues=[q], worker="test:kubernetes", interval=0.2, once=True, unreadable_limit=1.5)
    assert Glue(Client(), scheduler, options).run() == 0
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    (name,) = server.jobs
    assert f"kubernetes job default/{name} could not be read for 1.5 s" in task["status_message"]
    assert "status cannot be read: job: Forbidden" in task["status_message"]
    (deleted,) = [r.path for r in server.requests if r.method == "DELETE"]  # refused too: the Job is left
    assert deleted.startswith(f"/apis/batch/v1/namespaces/default/jobs/{name}?")
    said = capsys.readouterr().out
    assert said.count("status cannot be read") == 2, said  # once while tracking, once when failing
    assert f"job default/{name} is left: it cannot be cancelled either" in said
    assert sum("status cannot be read" in line for line in log_lines(task_id)) == 2


def test_any_error_of_submitting_fails_the_task_it_took(
    api: tuple[KubernetesApi, dict[str, str]], in_process: None, jobs: Repo, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A task taken off its queue is never stranded: an error the scheduler did not foresee (here a template
    `read_template` would refuse, given to the scheduler as it is) fails it in one line, the traceback in its
    log."""
    from launcher.backends import kubernetes
    from launcher.glue import Glue, Options

    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    scheduler = kubernetes.Kubernetes({"spec": {"template": {"spec": {"containers": ["abc"]}}}})
    dry = Options(queues=[q], worker="test:kubernetes", once=True, dry_run=tmp_path / "manifests")
    assert Glue(Client(), scheduler, dry).run() == 0
    assert f"task {task_id}: its job cannot be rendered: AttributeError: " in capsys.readouterr().out
    assert status(task_id) == "queued"
    options = Options(queues=[q], worker="test:kubernetes", interval=0.2, once=True)
    assert Glue(Client(), scheduler, options).run() == 0
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    message = task["status_message"]
    assert message.startswith("the kubernetes glue could not submit its job: AttributeError: ")
    assert "\n" not in message
    assert any(line.strip().startswith('File "') for line in log_lines(task_id))  # the traceback
    assert not api[0].requests


def test_a_task_enqueued_again_gets_a_job_of_its_own(
    api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path
) -> None:
    """A cluster refuses a Job name that exists (409): each submission's Job has its own name, the task in
    its label, and is deleted by the cluster a day after it finished."""
    server, env = api
    server.job_status = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimit"}]}
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    glue = ["k8s", "--queue", q, "--template", template(tmp_path), "--once", "--polling-interval", "0.3"]
    for _ in range(2):
        result = launcher(*glue, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ended (FAILED: BackoffLimit)" in Client().get_task(task_id)["status_message"]
        Client().call("tasks.reset", {"task": task_id, "force": True})
        Client().enqueue(task_id, Client().queue_id(q))
    first, second = (r.body for r in server.requests if r.method == "POST")
    assert first["metadata"]["name"] != second["metadata"]["name"] and len(server.jobs) == 2
    for body in first, second:
        validate(body, tmp_path)
        assert re.fullmatch(f"clearml-{task_id}-[0-9a-f]{{8}}", body["metadata"]["name"])
        assert body["metadata"]["labels"]["clearml-task-id"] == task_id
        assert body["spec"]["ttlSecondsAfterFinished"] == 24 * 3600


def test_a_job_the_api_refuses_to_create_fails_its_task(
    api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path
) -> None:
    server, env = api
    server.refused = {("POST", "jobs"): 409}
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    result = launcher("k8s", "--queue", q, "--template", template(tmp_path), "--once", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    task = Client().get_task(task_id)
    assert task["status"] == "failed"
    assert task["status_message"] == "the Job was refused: jobs: AlreadyExists (refused by the test)"
    assert not server.jobs


CONTAINER = "spec: {template: {spec: {containers: [{name: task, image: python:3.12}]}}}\n"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (b"spec: {template: {spec: {containers: [abc]}}}\n",
         "spec.template.spec.containers[0] must be a mapping (Container), not a string"),
        (b"metadata: [1]\n" + CONTAINER.encode(), "metadata must be a mapping (ObjectMeta), not a list"),
        (CONTAINER.replace("image:", "env: {A: b}, image:").encode(),
         "spec.template.spec.containers[0].env must be a list, not a mapping"),
        (b"- " + CONTAINER.encode(), "is not a Job template: it is a list, not a mapping"),
        (b"spec: {template: [\n", "is not YAML: expected the node content, but found '<stream end>' (line 2"),
        (CONTAINER.replace("image:", "securitycontext: {runAsUser: 1000}, image:").encode(),
         "unknown field spec.template.spec.containers[0].securitycontext (hint: did you mean "
         "securityContext?)"),
        (CONTAINER.replace("}}}", "}}, ttl: 60}").encode(),
         "unknown field spec.ttl (hint: JobSpec has no such field)"),
        (b"metadata: {annotations: {a: \xff}}\n" + CONTAINER.encode(),
         "it is not UTF-8 text (byte 0xff at offset 28)"),
    ],
    ids=["container-not-a-mapping", "metadata-a-list", "env-a-mapping", "a-list", "not-yaml", "misspelled",
         "unknown", "not-utf-8"],
)  # fmt: skip
def test_a_template_that_cannot_make_a_job_is_refused_at_start(
    text: bytes, said: str, jobs: Repo, tmp_path: Path
) -> None:
    """One line naming the file and what is wrong, before any task is taken (none leaves its queue)."""
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    path = tmp_path / "job.yaml"
    path.write_bytes(text)
    result = launcher("k8s", "--queue", q, "--template", str(path), "--once")
    assert result.returncode == 1
    (line,) = (result.stdout + result.stderr).strip().splitlines()
    assert str(path) in line and said in line, line
    waiting = Client().call("queues.get_by_id", {"queue": Client().queue_id(q)})["queue"]["entries"]
    assert status(task_id) == "queued" and task_id in [entry["task"] for entry in waiting]


@pytest.mark.parametrize("away", ["busy", "gone"])
def test_an_api_server_away_or_busy_puts_the_task_back_in_its_queue(
    api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path, away: str
) -> None:
    """A 503, or no API server at all, is no refusal of the Job: the task was failed as "refused", and a
    queue drained during a control plane's restart lost every task in it."""
    server, env = api
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    glue = ["k8s", "--queue", q, "--template", template(tmp_path), "--once", "--polling-interval", "0.3"]
    if away == "busy":
        server.refused = {("POST", "jobs"): 503}
        result = launcher(*glue, env=env)
    else:
        closed = {
            "KUBECONFIG": str(server.kubeconfig(tmp_path / "closed", f"http://127.0.0.1:{free_port()}"))
        }
        result = launcher(*glue, env=closed)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the Kubernetes API could not take the Job" in result.stdout
    assert status(task_id) == "queued" and not server.jobs
    entries = Client().call("queues.get_by_id", {"queue": Client().queue_id(q)})["queue"]["entries"]
    assert [entry["task"] for entry in entries] == [task_id]
    server.refused = {}
    server.job_status = {"succeeded": 1}
    again = launcher(*glue, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(server.jobs) == 1


@pytest.mark.parametrize("code", [500, 502, 504])
def test_an_answer_that_leaves_the_job_in_doubt_is_not_submitted_again(
    api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path, code: int
) -> None:
    """After a 500, 502 or 504 the Job may exist (a gateway gave up on an API server that made it): a task
    put back in its queue would get a second Job and run twice. It fails, as before, and nothing is sent
    again."""
    server, env = api
    server.refused = {("POST", "jobs"): code}
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    result = launcher("k8s", "--queue", q, "--template", template(tmp_path), "--once", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status(task_id) == "failed"
    assert len([r for r in server.requests if r.method == "POST"]) == 1


def test_a_job_made_despite_an_error_answer_is_tracked_not_made_again(
    api: tuple[KubernetesApi, dict[str, str]], jobs: Repo, tmp_path: Path
) -> None:
    """A 504 after the API server made the Job: the Job of this submission's name exists, so it is the
    task's job, tracked to its end (a task failed or put back would leave it running untracked)."""
    server, env = api
    server.made_then = 504
    server.job_status = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimit"}]}
    q = queue()
    task_id = create_task(jobs.work, "train.py", queue=q)
    glue = ["k8s", "--queue", q, "--template", template(tmp_path), "--once", "--polling-interval", "0.3"]
    result = launcher(*glue, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (name,) = server.jobs
    task = Client().get_task(task_id)
    assert task["runtime"]["kubernetes_job_id"] == f"default/{name}"
    assert "ended (FAILED: BackoffLimit)" in task["status_message"]  # followed to its end
    assert len([r for r in server.requests if r.method == "POST"]) == 1
