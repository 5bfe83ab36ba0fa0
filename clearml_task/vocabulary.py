"""ClearML's vocabulary, shared by client, server and launcher: task types, statuses, API level."""

from __future__ import annotations

# The API level the embedded server answers with; clients choose their calls by it (ClearML's need >= 2.14).
API_VERSION = "2.23"
SERVER_VERSION = "1.16.0"
# Characters of a task's, project's, queue's or model's name: the embedded server refuses longer ones (its
# name filters run over every name), and clearml-task says so before anything is made.
MAX_NAME = 1024

TASK_TYPES = (
    "training", "testing", "inference", "data_processing", "application", "monitor", "controller",
    "optimizer", "service", "qc", "custom",
)  # fmt: skip

# A container image reference (registry/name:tag, @sha256: digest): what container.image may be. A pattern,
# not a compiled regex, so that importing this module needs no `re`.
IMAGE_PATTERN = (
    r"^(?:(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+)(?::[0-9]+)?/|[a-zA-Z0-9-]+:[0-9]+/)?"  # registry/
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"  # path
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"  # :tag @digest
)

# What script.binary may be: a Python by name or absolute path (python3, python3.11, /usr/bin/python3,
# pypy3), or bash / sh; never a command line.
BINARY_PATTERN = r"^(/[^\x00-\x1f]*/)?(python|pypy)[0-9.]*[mtd]?$|^(/[^\x00-\x1f]*/)?(ba)?sh$"

# Task statuses, as ClearML names them.
CREATED = "created"
QUEUED = "queued"
IN_PROGRESS = "in_progress"
STOPPED = "stopped"
FAILED = "failed"
COMPLETED = "completed"
CLOSED = "closed"
PUBLISHING = "publishing"
PUBLISHED = "published"

# Every status a task can have.
STATUSES = (CREATED, QUEUED, IN_PROGRESS, STOPPED, FAILED, COMPLETED, CLOSED, PUBLISHING, PUBLISHED)
# A task in one of these has ended; nothing runs it any more.
FINAL_STATUSES = (COMPLETED, FAILED, STOPPED, CLOSED, PUBLISHED)
# A launcher may start a task in one of these.
RUNNABLE_STATUSES = (CREATED, QUEUED, STOPPED)

# Words read as booleans in flags, query arguments and hyperparameter values.
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})
