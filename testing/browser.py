"""The web UI's tests in a real browser: Debian's Chromium driven by Playwright (never `playwright install`),
skipped with the install line where it is missing, and a failure under CI=true."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def missing() -> str:
    """Why the browser tests cannot run here, or '' when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is missing (install the test extras: pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (install it: apt-get install chromium)"
    return ""


def require() -> None:
    """Skip the calling test or module where the browser is missing; under CI=true, fail instead."""
    reason = missing()
    if not reason:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI runs the browser tests", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def playwright_api() -> Any:
    """playwright.sync_api for a test module to import at its top (require() first)."""
    require()
    import playwright.sync_api

    return playwright.sync_api


@contextmanager
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, directory: Path, name: str, say: Any) -> Path:
    """A full-page PNG under the test's output dir; its path goes to the test's output (`say`)."""
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    say(f"screenshot: {path}")
    return path
