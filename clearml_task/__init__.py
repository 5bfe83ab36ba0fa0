"""clearml-task: zero-code launching of ML experiments over the ClearML REST API."""

from __future__ import annotations

__version__ = "0.1.0"
