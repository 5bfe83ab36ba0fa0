"""The summary clearml-task prints after creating a task: what will run, and where to follow it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clearml_task.console import one_line
from clearml_task.git.urls import scrub

if TYPE_CHECKING:
    from clearml_task.request import Request
    from clearml_task.requirements import Decision
    from clearml_task.submit import Result


def lines(request: Request, result: Result) -> list[tuple[str, str]]:
    prepared = result.prepared
    rows: list[tuple[str, str]] = []
    if result.cloned_from:
        rows.append(("cloned from", result.cloned_from))
    source = prepared.source
    if source is not None:
        if source.repository:
            rows.append(("repository", source.repository))
            ref = (source.tag and f"tag {source.tag}") or source.branch or "(detached)"
            rows.append(("commit", f"{source.commit[:12]} on {ref}"))
            stats = source.stats
            if source.patch:
                change = f"{stats.files} files, +{stats.insertions} -{stats.deletions}"
                extra = [f"{stats.untracked} untracked"] if stats.untracked else []
                extra += [f"{stats.unpushed_commits} unpushed commits"] if stats.unpushed_commits else []
                rows.append(("local changes", change + (f" ({', '.join(extra)})" if extra else "")))
            else:
                rows.append(("local changes", "none"))
            if source.secrets_left_out:
                rows.append(("left out", f"{len(source.secrets_left_out)} untracked files that look like "
                             "secrets (--include-secrets sends them):"))  # fmt: skip
                rows += [("", path) for path in source.secrets_left_out]
        else:
            rows.append(("script", "standalone (sent as it is)"))
        rows.append(("entry point", f"{source.entry_point}  (in {source.working_dir})"))
    if prepared.requirements is not None:
        rows += requirement_rows(prepared.requirements)
    if request.args:
        from clearml_task.arguments.masking import masked

        rows.append(("args", " ".join(masked(request.args))))
    rows.append(("queue", request.queue or "not enqueued"))
    for note in prepared.notes:
        rows.append(("note", note))
    return rows


def requirement_rows(decision: Decision) -> list[tuple[str, str]]:
    """The decision's title, then each line with where it came from."""
    rows = [("requirements", decision.title)]
    shown = [(scrub(requirement.line), requirement.origin) for requirement in decision.requirements]
    width = max((len(line) for line, _ in shown), default=0)
    for line, origin in shown:
        rows.append(("", f"{line.ljust(width)}  ← {origin}"))
    return rows


def show(request: Request, result: Result, *, embedded: bool) -> None:
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    for key, value in lines(request, result):
        # the values are the user's words and file names: shown as text, never as markup or terminal codes
        table.add_row(f"[bold]{key}[/]", escape(one_line(value)))
    out = Console(highlight=False, soft_wrap=True)
    out.print(table)
    verb = "created and enqueued" if result.queue_id else "created"
    out.print(f"[green]Task {verb}:[/] {result.task_id}")
    if result.url:
        out.print(f"Task page: {result.url}")
    if embedded:
        out.print(f"Follow its log: clearml-launcher logs {result.task_id}")
    sys.stdout.flush()
