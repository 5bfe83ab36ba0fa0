"""clearml-launcher: reproduces and runs tasks; serves the embedded server."""

from __future__ import annotations
