"""Why a task could not be reproduced: the task is marked failed with this reason (and its log says more)."""

from __future__ import annotations


class ReproductionError(Exception):
    """A step of reproducing a task failed: `reason` goes to the task's status_message, `detail` (e.g.
    git's or uv's own output) and `hint` (the likely cause and what to do) to its log."""

    def __init__(self, reason: str, *, detail: str = "", hint: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.hint = hint


class SchedulerAway(ReproductionError):
    """The scheduler (Slurm's controller, the Kubernetes API) could not be reached, or said it is busy: the
    job was not refused, so the task goes back to its queue, to be submitted again once it answers."""
