"""Screenshots of ``jaxcnn explore``, one per view (1280x800): ``scripts/explore_screenshots.py``.

Writes docs/explore/{kernels,pattern,model,backward,training,no_run}.png. Without
``--run`` it trains the shapes model first (``jaxcnn train shapes``) into a temporary
directory. The page is served in this process (``jaxcnn.explore.Server``) and driven in
headless Chromium (tests/explore/browser.py: Debian's binary, never a download). Run from a
checkout with ``PYTHONPATH=.``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, Page

from jaxcnn.cli import main as jaxcnn
from jaxcnn.explore import Explorer, Server
from tests.explore.browser import find_chromium, launch, open_page, renders, wait_render

OUT = Path(__file__).resolve().parents[1] / "docs" / "explore"


@contextlib.contextmanager
def serve(run: Path | None) -> Iterator[str]:
    """The page of ``run`` (None: no run) on a free loopback port; yields its URL."""
    explorer = Explorer(run, note=lambda line: print("explore:", line))
    explorer.warm_up()
    server = Server(explorer, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        thread.join(timeout=30)


def shoot(browser: Browser, url: str, name: str, act: object = None) -> None:
    """Open ``url``, let ``act(page)`` drive it, and save the viewport as ``name``.png."""
    page = open_page(browser, url)
    if callable(act):
        act(page)
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path))
    print("wrote", path)
    page.close()


def play_half_way(page: Page) -> None:
    """Press Play, let it run a few positions, pause, and scrub to the middle (the right edge)."""
    before = renders(page)
    page.click("#play-btn")
    wait_render(page, before)
    page.wait_for_function("() => Number(document.getElementById('play').dataset.pos) >= 3")
    page.click("#play-btn")
    page.evaluate("() => { document.getElementById('scrubber').value = 385; }")
    page.locator("#scrubber").dispatch_event("input")


def draw_digit(page: Page) -> None:
    """Draw a stroke on the digit canvas (a 7) and wait for the model's answer."""
    box = page.locator("#draw").bounding_box()
    assert box is not None
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.25 * w, y + 0.22 * h)
    page.mouse.down()
    for fx, fy in ((0.75, 0.22), (0.6, 0.5), (0.45, 0.8)):
        page.mouse.move(x + fx * w, y + fy * h, steps=8)
    before = renders(page)
    page.mouse.up()
    wait_render(page, before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run directory (default: train shapes)")
    parser.add_argument("--draw", action="store_true", help="model view: a drawn digit")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium found: install Debian's chromium or set $CHROMIUM")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "shapes"
            jaxcnn(["train", "shapes", "--out", str(run), "--quiet"])
        with launch(chromium) as browser:
            with serve(run) as url:
                shoot(browser, f"{url}#view=kernels&kernel=vertical+edges&padding=1", "kernels")
                shoot(browser, f"{url}#view=pattern&pixel=14,6&padding=1", "pattern", play_half_way)
                shoot(
                    browser,
                    f"{url}#view=model&input=test:1",
                    "model",
                    draw_digit if args.draw else None,
                )
                shoot(browser, f"{url}#view=backward&input=test:1", "backward")
                shoot(browser, f"{url}#view=training", "training")
            with serve(None) as url:
                shoot(browser, f"{url}#view=model", "no_run")


if __name__ == "__main__":
    main()
