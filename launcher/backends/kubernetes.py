"""The Kubernetes scheduler: a Job per task from the user's YAML template, with the official `kubernetes`
client (the optional extra `clearml-task[kubernetes]`, imported only here).

The template's containers, resources, volumes and everything else are kept; the glue's variables are
replaced inside string values (a value from a task stays one string, never YAML). The first container
gets the task's image (when the task names one; else the template's) and, when the template gives it no
command, runs `clearml-launcher execute --id <task> --require-queue` (the image must have clearml-launcher
and reach the server: give CLEARML_API_* in the template, e.g. from a Secret). Each submission's Job has a
name of its own (`clearml-<task>-<random>`: a task enqueued again gets a new Job, never a name taken), is
labelled with the task and the queue, never retried (backoffLimit 0 unless the template says), deleted by
the cluster a day after it finished (ttlSecondsAfterFinished, unless the template says; `null` keeps it) and
built with the client's typed models, so a template the API would refuse is refused before submitting.

A Job whose pod cannot start (an image that cannot be pulled, a config error) counts as ended with that
reason, so the glue fails the task with it; an abort deletes the Job (and its pods).
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import re
from dataclasses import dataclass
from typing import Any

from clearml_task.errors import UserError
from launcher import templates
from launcher.backends import JobState
from launcher.backends.container import check_image
from launcher.errors import ReproductionError, SchedulerAway

NAME = "kubernetes"
INSTALL = "pip install 'clearml-task[kubernetes]' (the official kubernetes client)"
CANNOT_START = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                "CreateContainerError", "RunContainerError")  # fmt: skip
LABEL = re.compile(r"[^A-Za-z0-9_.-]")
NOT_DNS = re.compile(r"[^a-z0-9-]")
FINISHED_TTL = 24 * 3600  # seconds a finished Job (and its pods' logs) stays, unless the template says


def missing() -> str | None:
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        return f"the kubernetes client is not installed (install: {INSTALL})"
    return None


def execute_command(task_id: str) -> list[str]:
    return ["clearml-launcher", "execute", "--id", task_id, "--require-queue"]


def job_name(task_id: str) -> str:
    """A new Job name for the task: a DNS-1123 label (at most 57 characters, so its pods' `job-name` label
    fits too) with a random end, so that a task enqueued again never meets its last Job's name."""
    import secrets

    return f"clearml-{NOT_DNS.sub('-', task_id.lower())[:40].strip('-') or 'task'}-{secrets.token_hex(4)}"


def read_template(text: str, where: str) -> dict[str, Any]:
    """The Job template: a YAML mapping whose pod has at least one container, each of its fields one that a
    Job has, of the shape the API takes (a mapping, a list, a single value) — else refused now, in one line
    naming the field, rather than dropped by the client (a misspelled field vanishes) or failing each task."""
    import yaml

    try:
        found = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{where} is not YAML: {_yaml_problem(e)}") from None
    needs = "it needs spec.template.spec.containers"
    if not isinstance(found, dict):
        raise UserError(f"{where} is not a Job template: it is {_shape(found)}, not a mapping", needs)
    if found.get("kind", "Job") != "Job":
        raise UserError(f"{where} is a {found.get('kind')}, not a Job")
    if problem := _misfit(found, "V1Job", ""):
        raise UserError(f"{where}: {problem[0]}", problem[1])
    if not (((found.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers"):
        raise UserError(f"{where} is not a Job template", needs)
    return found


LIST_OF = re.compile(r"List\[(.+)\]")
DICT_OF = re.compile(r"Dict\[str, (.+)\]")


def _misfit(node: Any, kind: str, path: str) -> tuple[str, str] | None:
    """What in `node` a `kind` (a type of the client's models: `V1JobSpec`, `List[V1Container]`,
    `Dict[str, str]`, `str`, ...) cannot be: an unknown field or a wrong shape, with a hint; None if it fits.
    Values themselves (a number for a string, a `${...}` for a number) are the client's to check per task."""
    from kubernetes import client

    if node is None:
        return None
    model: Any = getattr(client, kind, None)
    if listed := LIST_OF.fullmatch(kind):
        if not isinstance(node, list):
            return f"{path} must be a list, not {_shape(node)}", ""
        children = [(f"{path}[{i}]", item, listed[1]) for i, item in enumerate(node)]
    elif mapped := DICT_OF.fullmatch(kind):
        if not isinstance(node, dict):
            return f"{path} must be a mapping, not {_shape(node)}", ""
        children = [(_field(path, key), value, mapped[1]) for key, value in node.items()]
    elif hasattr(model, "attribute_map"):
        shown = re.sub(r"^(V\d\w*?|Core\w*?V\d)(?=[A-Z])", "", kind)
        if not isinstance(node, dict):
            return f"{path} must be a mapping ({shown}), not {_shape(node)}", ""
        fields = {alias: name for name, alias in model.attribute_map.items()}
        for key in node:
            if key not in fields:
                close = difflib.get_close_matches(str(key), fields, n=1)
                hint = f"did you mean {close[0]}?" if close else f"{shown} has no such field"
                return f"unknown field {_field(path, key)}", hint
        types = model.openapi_types
        children = [(_field(path, key), value, types[fields[key]]) for key, value in node.items()]
    elif kind != "object" and isinstance(node, (dict, list)):
        return f"{path} must be a single value, not {_shape(node)}", ""
    else:
        return None
    for where, child, child_kind in children:
        if problem := _misfit(child, child_kind, where):
            return problem
    return None


def _field(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _shape(node: Any) -> str:
    """What a parsed YAML node is, in words."""
    if node is None:
        return "empty"
    if isinstance(node, dict):
        return "a mapping"
    if isinstance(node, list):
        return "a list"
    return "a string" if isinstance(node, str) else f"a single value ({node!r})"


def _yaml_problem(error: Exception) -> str:
    """A YAML error in one line: the problem and where it is."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else str(problem)


@dataclass
class Kubernetes:
    template: dict[str, Any]  # the parsed Job template
    namespace: str = "default"

    name = NAME

    def render(self, task: dict[str, Any], context: templates.Context) -> str:
        """The task's Job manifest (YAML), built and checked with the client's typed models."""
        import yaml

        task_id = str(task["id"])
        commands = {"CLEARML_AGENT_EXECUTE": " ".join(execute_command(task_id)), "CLEARML_PRE_SETUP": ":",
                    "CLEARML_POST_SETUP": ":"}  # fmt: skip
        context = templates.Context(context.queue_name, context.queue_id, context.worker, task, commands)
        try:
            doc = templates.document(copy.deepcopy(self.template), context)
        except templates.MissingValue as e:
            raise ReproductionError(f"kubernetes template: {e}") from None
        doc["apiVersion"], doc["kind"] = "batch/v1", "Job"
        metadata = doc["metadata"] = doc.get("metadata") or {}
        metadata["name"] = job_name(task_id)
        metadata.setdefault("namespace", self.namespace)
        labels = {"clearml-task-id": _label(task_id), "clearml-queue": _label(context.queue_name)}
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
        spec = doc["spec"]
        spec.setdefault("backoffLimit", 0)
        spec.setdefault("ttlSecondsAfterFinished", FINISHED_TTL)
        pod = spec["template"]
        pod["metadata"] = pod.get("metadata") or {}
        pod["metadata"]["labels"] = {**(pod["metadata"].get("labels") or {}), **labels}
        pod["spec"].setdefault("restartPolicy", "Never")
        first = pod["spec"]["containers"][0]
        image = str((task.get("container") or {}).get("image") or "").strip()
        if image:
            first["image"] = check_image(image, "container.image")
        if not first.get("image"):
            raise ReproductionError("the task names no image and the Job template's container has none")
        if not first.get("command") and not first.get("args"):
            first["command"] = execute_command(task_id)
        ours = {"CLEARML_TASK_ID": task_id, "CLEARML_WORKER_ID": context.worker}
        env = [item for item in first.get("env") or [] if item.get("name") not in ours]
        first["env"] = [*env, *({"name": key, "value": value} for key, value in ours.items())]
        return yaml.safe_dump(_typed(doc), sort_keys=False)

    def submit(self, rendered: str) -> str:
        """Create the Job; its name. The API server's refusal is the task's failure reason."""
        import yaml

        batch, _ = _apis()
        body = yaml.safe_load(rendered)
        namespace = body["metadata"].get("namespace") or self.namespace
        name = body["metadata"]["name"]
        try:
            batch.create_namespaced_job(namespace, body)
        except Exception as e:
            answer = _answer(e)
            if answer == "away":
                raise SchedulerAway(f"the Kubernetes API could not take the Job: {_reason(e)}",
                                    detail=str(e)) from None  # fmt: skip
            if not (answer == "in doubt" and _made(batch, namespace, name)):
                raise ReproductionError(f"the Job was refused: {_reason(e)}", detail=str(e)) from None
        return f"{namespace}/{name}"

    def state(self, job_id: str) -> JobState:
        """Active, succeeded, failed (the condition's reason) — or ended when its pod cannot start. An API
        error is never raised: the state is unreadable (the Job's status) or read without its pods (they tell
        a pod that cannot start), with the API server's reason."""
        batch, core = _apis()
        namespace, name = job_id.split("/", 1)
        try:
            job = batch.read_namespaced_job_status(name, namespace)
        except Exception as e:
            if getattr(e, "status", None) == 404:
                return JobState(False, "DELETED")
            why = f"its status cannot be read: {_reason(e)}"
            return JobState(True, "UNKNOWN", unreadable=True, warning=why)  # looked at again later
        status = job.status
        if status is not None and status.succeeded:
            return JobState(False, "SUCCEEDED")
        for condition in (status.conditions or []) if status is not None else []:
            if condition.type == "Failed" and condition.status == "True":
                return JobState(False, f"FAILED: {condition.reason or ''} {condition.message or ''}".strip())
        word = "ACTIVE" if status is not None and status.active else "PENDING"
        try:
            pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}")
        except Exception as e:
            why = f"its pods cannot be listed, so a pod that cannot start goes unnoticed: {_reason(e)}"
            return JobState(True, word, warning=why)
        for pod in pods.items or []:
            for container in (pod.status.container_statuses or []) if pod.status else []:
                waiting = container.state.waiting if container.state else None
                if waiting is not None and waiting.reason in CANNOT_START:
                    return JobState(False, f"cannot start: {waiting.reason}: {waiting.message or ''}".strip())
        return JobState(True, word)

    def cancel(self, job_id: str) -> None:
        """Delete the Job and its pods (a Job already gone is fine); the API server's refusal is raised as
        the reason."""
        batch, _ = _apis()
        namespace, name = job_id.split("/", 1)
        try:
            batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except Exception as e:
            if getattr(e, "status", None) != 404:
                raise ReproductionError(f"the Job cannot be deleted: {_reason(e)}", detail=str(e)) from None


def _typed(doc: dict[str, Any]) -> Any:
    """The manifest through the client's typed models (quantities as strings): checked, in the API's form."""
    from kubernetes import client

    _quantities_as_strings(doc)
    try:
        job = client.V1Job.from_dict(doc)
    except Exception as e:
        raise ReproductionError(f"the Job template does not make a valid Job: {e}".splitlines()[0],
                                detail=str(e)) from None  # fmt: skip
    return client.ApiClient().sanitize_for_serialization(job)


def _quantities_as_strings(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("limits", "requests") and isinstance(value, dict):
                node[key] = {name: str(amount) for name, amount in value.items()}
            else:
                _quantities_as_strings(value)
    elif isinstance(node, list):
        for item in node:
            _quantities_as_strings(item)


def connect() -> None:
    """Read the cluster's configuration now: a glue that cannot reach a cluster says so before any task."""
    try:
        _apis()
    except Exception as e:
        hint = "run inside the cluster (a service account) or point KUBECONFIG at a kubeconfig"
        raise UserError(f"no Kubernetes cluster configured: {e}", hint) from None


def _answer(error: Exception) -> str:
    """What an error of creating a Job says of it:
    - "away": the API certainly did not take it, and may later (no connection could be made; a 429 or
      503: busy, nothing done);
    - "in doubt": it may have been made (a 500, 502 or 504: a gateway that gave up on an API server that
      went on; a connection lost after the request was sent): a second Job (names are unique) would run
      the task twice;
    - "refused": anything else."""
    status = getattr(error, "status", None)
    if status is not None:  # the client's ApiException: the server answered
        return "away" if status in (429, 503) else "in doubt" if status in (500, 502, 504) else "refused"
    from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ProtocolError, ReadTimeoutError

    reason = error.reason if isinstance(error, MaxRetryError) else error
    if isinstance(reason, ConnectTimeoutError | ConnectionRefusedError):  # NewConnectionError is one
        return "away"
    return "in doubt" if isinstance(reason, ProtocolError | ReadTimeoutError) else "refused"


def _made(batch: Any, namespace: str, name: str) -> bool:
    """Whether the Job of this name exists (its name is this submission's own: only it made it). Not known
    (the API errs again) counts as no: the task fails rather than risk a second Job."""
    try:
        batch.read_namespaced_job(name, namespace)
    except Exception:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _apis() -> tuple[Any, Any]:
    """The batch and core APIs, configured in the cluster (a service account) or from the kubeconfig."""
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config()
    return client.BatchV1Api(), client.CoreV1Api()


def _label(value: str) -> str:
    return LABEL.sub("-", value)[:63].strip("-_.") or "none"


def _reason(error: Exception) -> str:
    import json

    body = getattr(error, "body", None)
    try:
        return str(json.loads(body)["message"]) if body else str(error).splitlines()[0]
    except (ValueError, KeyError, TypeError):
        return str(error).splitlines()[0] if str(error) else type(error).__name__
