"""The explore page in headless Chromium: pattern matching, Play, Step and the scrubber.

The page's numbers are compared exactly with ``jaxcnn.explore.match_maps`` and
``slide`` run here, and with independent computations that are exact: the patch and the
windows are copies of the padded image, each of the 9 products is one IEEE float32
multiply, and on the binary square every dot product and sum is a small integer.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from playwright.sync_api import Browser, Page

from jaxcnn import kernels
from jaxcnn.explore import Explorer, match_maps, slide
from tests.explore.browser import attrs, choose, click, f32, last, page_at
from tests.explore.test_browser_kernels import correlate

MARGIN = 2
"""Cells of padding the page draws around the image (app.js MARGIN)."""
FRAME = """() => {
  const root = document.getElementById('play');
  const cells = (id) => [...document.querySelectorAll(`#${id} span`)].map((n) => n.dataset.value);
  return {
    pos: root.dataset.pos, row: root.dataset.row, col: root.dataset.col, count: root.dataset.count,
    playing: root.dataset.playing, window: cells('play-window'), kernel: cells('play-kernel'),
    products: cells('play-products'), sum: document.getElementById('play-sum').dataset.value,
  };
}"""
"""Play's current position as the page shows it, read in one go (between two frames)."""


def click_pixel(page: Page, row: int, col: int) -> str:
    """Click the centre of image pixel ``(row, col)`` on the pattern view's canvas."""
    box = page.locator("#p-image").bounding_box()
    assert box is not None
    width = len(last(page, "match")["image"][0])
    cell = box["width"] / (width + 2 * MARGIN)
    position = {"x": (col + MARGIN + 0.5) * cell, "y": (row + MARGIN + 0.5) * cell}
    return click(page, "#p-image", position=position)


def check_match(page: Page, image: np.ndarray, row: int, col: int) -> np.ndarray:
    """The page shows the patch at ``(row, col)`` and its maps; returns the patch."""
    assert attrs(page, "#match-pixel", "data-row") == [str(row)]
    assert attrs(page, "#match-pixel", "data-col") == [str(col)]
    shown = last(page, "match")
    patch, dot, cosine = jax.device_get(match_maps(image, np.int32(row), np.int32(col)))
    np.testing.assert_array_equal(f32(shown["image"]), image)
    np.testing.assert_array_equal(f32(shown["patch"]), patch)
    np.testing.assert_array_equal(f32(shown["dot"]), dot)
    np.testing.assert_array_equal(f32(shown["cosine"]), cosine)
    best = list(kernels.best_match(cosine))
    assert shown["best"] == best
    assert [attrs(page, "#best", f"data-{axis}") for axis in ("row", "col")] == [
        [str(best[0])],
        [str(best[1])],
    ]
    grid = f32(attrs(page, "#patch-grid span", "data-value")).reshape(3, 3)
    np.testing.assert_array_equal(grid, patch)
    np.testing.assert_array_equal(patch, np.pad(image, 1)[row : row + 3, col : col + 3])
    return np.asarray(patch)


def check_frame(
    page: Page, image: np.ndarray, patch: np.ndarray, stride: int, padding: int
) -> dict[str, Any]:
    """Play's shown position: its window, the 9 products and their sum; returns the frame."""
    frame = page.evaluate(FRAME)
    windows, products, sums = jax.device_get(slide(image, patch, stride=stride, padding=padding))
    pos, row, col = int(frame["pos"]), int(frame["row"]), int(frame["col"])
    assert int(frame["count"]) == sums.size
    assert divmod(pos, sums.shape[1]) == (row, col)
    window = f32(frame["window"]).reshape(3, 3)
    kernel = f32(frame["kernel"]).reshape(3, 3)
    shown = f32(frame["products"]).reshape(3, 3)
    total = f32([frame["sum"]])[0]
    np.testing.assert_array_equal(window, windows[row, col])
    np.testing.assert_array_equal(kernel, patch)
    np.testing.assert_array_equal(shown, products[row, col])
    assert total == sums[row, col]
    # independently: the window is the padded image there, and each product one IEEE multiply
    top, left = row * stride, col * stride
    np.testing.assert_array_equal(window, np.pad(image, padding)[top : top + 3, left : left + 3])
    np.testing.assert_array_equal(shown, np.float32(window) * np.float32(kernel))
    answer = last(page, "slide")
    np.testing.assert_array_equal(f32(answer["windows"]), windows)
    np.testing.assert_array_equal(f32(answer["products"]), products)
    np.testing.assert_array_equal(f32(answer["sums"]), sums)
    return dict(frame)


def test_clicking_a_pixel_cuts_the_patch_and_maps_where_it_matches(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer
) -> None:
    square = shapes_explorer.builtins["square"]
    with page_at(browser, f"{shapes_url}#view=pattern&image=square") as page:
        for row, col in ((14, 6), (6, 13), (0, 0), (27, 27), (21, 21)):
            assert click_pixel(page, row, col) == "ready"
            patch = check_match(page, square, row, col)
            # a binary image and patch: every dot product is a small integer, exact in float64
            dot = f32(last(page, "match")["dot"])
            np.testing.assert_array_equal(dot, correlate(square, patch, 1, 1))
            assert f"pixel={row}%2C{col}" in page.evaluate("location.hash")
        circle = shapes_explorer.builtins["circle"]
        assert choose(page, "#image-select", "circle") == "ready"
        assert click_pixel(page, 10, 5) == "ready"
        check_match(page, circle, 10, 5)


def test_play_animates_the_window_and_shows_the_9_products_and_their_sum(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer
) -> None:
    square = shapes_explorer.builtins["square"]
    with page_at(browser, f"{shapes_url}#view=pattern&pixel=14,6&padding=1") as page:
        patch = check_match(page, square, 14, 6)
        assert click(page, "#play-btn") == "ready"  # the whole sequence, in one request
        page.wait_for_function("() => Number(document.getElementById('play').dataset.pos) >= 3")
        assert page.evaluate(FRAME)["playing"] == "true"
        page.click("#play-btn")  # pause
        frame = check_frame(page, square, patch, 1, 1)
        assert frame["playing"] == "false"
        assert int(frame["pos"]) >= 3
        assert page.evaluate(FRAME) == frame  # paused: it stays there
        # binary window and patch: the sum of the 9 products is an integer, exact in float64
        products = f32(frame["products"]).astype(np.float64)
        assert f32([frame["sum"]])[0] == products.sum()


def test_step_and_scrub_move_the_window_with_stride_and_padding(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer
) -> None:
    square = shapes_explorer.builtins["square"]
    url = f"{shapes_url}#view=pattern&pixel=20,20&stride=2&padding=2"
    with page_at(browser, url) as page:
        patch = check_match(page, square, 20, 20)
        assert click(page, "#next-btn") == "ready"  # the first step asks for the sequence
        positions = [int(check_frame(page, square, patch, 2, 2)["pos"])]
        for button in ("#next-btn", "#next-btn", "#prev-btn"):
            page.click(button)  # drawn from the sequence the page holds: no request
            positions.append(int(check_frame(page, square, patch, 2, 2)["pos"]))
        assert positions == [0, 1, 2, 1]
        page.eval_on_selector("#scrubber", "(node) => { node.value = '100'; }")
        page.dispatch_event("#scrubber", "input")
        frame = check_frame(page, square, patch, 2, 2)
        assert frame["pos"] == "100"
        out_w = (28 + 2 * 2 - 3) // 2 + 1
        assert (int(frame["row"]), int(frame["col"])) == divmod(100, out_w)
        assert "pos=100" in page.evaluate("location.hash")
