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
