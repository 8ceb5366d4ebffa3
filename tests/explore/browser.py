"""Headless Chromium for the explore page: Debian's binary driven by Playwright, never downloaded.

Used by the browser tests (tests/explore/test_browser_*.py, through the ``browser``
fixture of conftest.py), scripts/explore_screenshots.py and benchmarks/explore_latency.py.

>>> with launch(find_chromium()) as browser:
...     page = open_page(browser, url)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported when used: collecting the tests needs no playwright
    from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize

DEFAULT_CHROMIUM = "/usr/bin/chromium"
"""Debian's ``chromium`` package (.ci/run installs it); ``$CHROMIUM`` names another binary."""
ARGS = (
    "--no-sandbox",  # root in a container: Chromium's sandbox cannot start
    "--disable-dev-shm-usage",  # a small /dev/shm
    "--disable-gpu",  # Canvas2D only; no software GL needed
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
_ERRORS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()
READY_TIMEOUT_MS = 60_000
"""How long a view may take to become ready: a loaded 2-core machine compiles nothing after
warm-up, and every request answers in tens of ms, so a minute only ever runs out on a hang."""


def find_chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM``, else /usr/bin/chromium, else ``chromium`` on PATH."""
    named = os.environ.get("CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    if Path(DEFAULT_CHROMIUM).is_file():
        return DEFAULT_CHROMIUM
    return shutil.which("chromium")


def chromium_version(path: str) -> str:
    """``Chromium 156.0...`` as the binary prints it (Debian's wrapper may add noise on stderr)."""
    result = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout.strip() or f"unknown (exit code {result.returncode})"


@contextlib.contextmanager
def launch(path: str) -> Iterator[Browser]:
    """Headless Chromium at ``path``; Playwright never downloads a browser of its own here."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=list(ARGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Browser, url: str, timeout_ms: int = READY_TIMEOUT_MS) -> Page:
    """A new 1280x800 page at ``url``, once the page says it is ready.

    Raises:
      RuntimeError: the page is not ready (its error message), or logged a JavaScript error.
    """
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: errors.append(msg.text) if _is_error(msg) else None)
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    state = wait_settled(page, timeout_ms)
    if errors or state != "ready":
        shown = page.text_content("#error")
        page.close()
        raise RuntimeError(f"the page at {url} is {state!r} ({shown!r}); it logged {errors}")
    _ERRORS[page] = errors
    return page


@contextlib.contextmanager
def page_at(browser: Browser, url: str, timeout_ms: int = READY_TIMEOUT_MS) -> Iterator[Page]:
    """:func:`open_page`, closed after; fails if the page logged a JavaScript error meanwhile."""
    page = open_page(browser, url, timeout_ms)
    try:
        yield page
        errors = page_errors(page)
        if errors:
            raise AssertionError(f"the page logged JavaScript errors: {errors}")
    finally:
        page.close()


def page_errors(page: Page) -> list[str]:
    """The JavaScript errors (uncaught, or console.error) the page logged since it opened."""
    return list(_ERRORS.get(page, []))


def _is_error(message: ConsoleMessage) -> bool:
    """A console error, except the browser's own line for a refused request (the page shows
    the server's message instead); CSP violations and script errors count."""
    refused = message.text.startswith("Failed to load resource: the server responded")
    return message.type == "error" and not refused


def wait_ready(page: Page, timeout_ms: int = READY_TIMEOUT_MS) -> None:
    """Wait until the page has drawn its current view (``data-state`` "ready")."""
    page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=timeout_ms)


def wait_settled(page: Page, timeout_ms: int = READY_TIMEOUT_MS) -> str:
    """Wait until no request is in flight; returns the state ("ready" or "error")."""
    page.wait_for_function(
        "() => ['ready', 'error'].includes(document.body.dataset.state)", timeout=timeout_ms
    )
    return str(page.evaluate("document.body.dataset.state"))


def renders(page: Page) -> int:
    """How many renders the page has finished (each action adds one once it is drawn)."""
    return int(page.evaluate("window.explore.renders"))


def wait_render(page: Page, after: int, timeout_ms: int = READY_TIMEOUT_MS) -> str:
    """Wait for a render newer than ``after`` to finish; returns the state it left."""
    page.wait_for_function(
        f"() => window.explore.renders > {after} && document.body.dataset.state !== 'busy'",
        timeout=timeout_ms,
    )
    return str(page.evaluate("document.body.dataset.state"))


# ---- reading what the page shows --------------------------------------------------------------


def act(page: Page, action: Callable[[], object]) -> str:
    """Run ``action`` (a click, a key, a file) and wait for the render it starts; its state."""
    before = renders(page)
    action()
    return wait_render(page, before)


def click(page: Page, selector: str, **options: Any) -> str:
    """Click ``selector`` and wait for the page to draw the answer; the state it is left in."""
    return act(page, lambda: page.click(selector, **options))


def fill(page: Page, selector: str, text: str) -> str:
    """Type ``text`` into the input ``selector``; the state the page is left in."""
    return act(page, lambda: page.fill(selector, text))


def choose(page: Page, selector: str, value: str) -> str:
    """Pick ``value`` in the ``<select>`` ``selector``; the state it is left in."""
    return act(page, lambda: page.select_option(selector, value))


def last(page: Page, name: str) -> Any:
    """``window.explore.last[name]``: the answer of that API call the page drew last."""
    return page.evaluate("(name) => window.explore.last[name]", name)


def attrs(page: Page, selector: str, name: str) -> list[str | None]:
    """Attribute ``name`` of every element matching ``selector``, in document order."""
    return list(
        page.eval_on_selector_all(
            selector, "(nodes, name) => nodes.map((node) => node.getAttribute(name))", name
        )
    )


def f32(values: Any) -> np.ndarray:
    """Numbers from the page (JSON numbers or ``String(x)`` texts) as float32, checking that
    each is a float32 exactly (the page shows float32 values and never rounds them)."""
    doubles = np.vectorize(float, otypes=[np.float64])(np.asarray(values, dtype=object))
    singles = doubles.astype(np.float32)
    np.testing.assert_array_equal(singles.astype(np.float64), doubles)
    return singles
