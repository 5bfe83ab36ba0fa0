"""HTML out: the Jinja2 templates (autoescaped: task names, logs and diffs are hostile) and their filters."""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2
    from werkzeug.wrappers import Response

    from clearml_task.server.web.calls import Ui

TEMPLATES = Path(__file__).resolve().parent / "templates"

# Response headers of every page: no inline script runs, nothing frames the UI, nothing is cached.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: http: https:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# Rows of a long table in the first paint; the rest (`<tbody class="later">`) are laid out just after it
# (app.js), as charts are: a screenful is about 20 rows.
FIRST_SCREEN = 20


@functools.cache
def environment() -> jinja2.Environment:
    """The templates, compiled once per process (Jinja2 is imported on the first page, not at start-up)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["listed"] = listed
    env.globals["first_screen"] = FIRST_SCREEN
    return env


def page(ui: Ui | None, template: str, *, status: int = 200, **context: Any) -> Response:
    from werkzeug.wrappers import Response

    html = (
        environment()
        .get_template(template)
        .render(csrf=ui.csrf if ui else "", user=ui.identity.get("user_name", "") if ui else "", **context)
    )
    return Response(html, status=status, mimetype="text/html", headers=PAGE_HEADERS)


# A task's documents hold what clients sent inside its objects (`execution`, `script`, `models`, ...): the
# pages read every value through these, so a value of another type shows as absent, never as a 500.


def mapping(value: Any) -> dict[str, Any]:
    """`value` when it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


def listed(value: Any) -> list[Any]:
    """`value` when it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a list (or of an object's values, as older clients keep some lists); nothing else."""
    found = value.values() if isinstance(value, dict) else listed(value)
    return [item for item in found if isinstance(item, dict)]


def text(value: Any) -> str:
    """`value` when it is a string (an id, a key to look up), else ''."""
    return value if isinstance(value, str) else ""


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def when(value: Any) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM:SS UTC` (labelled: the page cannot know the reader's zone); ''
    for none."""
    stamp = parse_time(value)
    return stamp.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if stamp else ""


def duration(task: dict[str, Any]) -> str:
    """From started to completed (to now while it runs); '' for a task that never started."""
    started = parse_time(task.get("started"))
    if started is None:
        return ""
    end = parse_time(task.get("completed")) or datetime.now(timezone.utc)
    return seconds_text((end - started).total_seconds())


def seconds_text(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
