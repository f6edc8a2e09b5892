"""A real browser for the web view's tests: Debian's chromium, driven by Playwright.

Playwright's own browser download fails on a machine without the internet, and is not
needed: it drives the system's chromium (``make services`` installs it as root). The
flags are those that keep chromium from reaching for Google's services at start.
Screenshots go to ``build/screenshots/`` (a test artefact, ignored by git).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

from tests.conftest import ROOT, need_program

SCREENSHOTS = ROOT / "build" / "screenshots"
FLAGS = [
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    path = need_program("chromium")
    flags = [*FLAGS, "--no-sandbox"] if os.geteuid() == 0 else FLAGS
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=flags)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page and what it said and asked for since it opened."""

    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def value(self, testid: str) -> str | None:
        return self.page.get_attribute(f'[data-testid="{testid}"]', "data-value")

    def number(self, testid: str) -> float:
        text = self.value(testid)
        assert text not in (None, ""), f"{testid} shows no value"
        return float(str(text))


def watch(page: Page) -> Watched:
    watched = Watched(page)

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            watched.errors.append(f"console {message.type}: {message.text}")

    def request(sent: Request) -> None:
        watched.requests.append(sent.url)

    page.on("console", console)
    page.on("pageerror", lambda error: watched.errors.append(f"page error: {error}"))
    page.on("request", request)
    return watched


def charts_drawn(page: Page) -> dict[str, int]:
    """Each chart and the points it drew (the page sets ``data-points`` once drawn)."""
    drawn: dict[str, int] = page.eval_on_selector_all(
        "[data-chart]",
        "els => Object.fromEntries(els.map(e => [e.dataset.chart, +(e.dataset.points || 0)]))",
    )
    return drawn
