"""The explore page in headless Chromium: the kernel view, errors, the URL state, no run.

Every number the page shows is read from the page (its data-* attributes and
``window.explore.last``) and compared exactly with jaxcnn's jitted functions run here on
the same input (bit-identical on one machine), and with an independent computation
where exactness holds (integer sums, the output-size formula).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page

from jaxcnn import kernels
from jaxcnn.data import decode_image
from jaxcnn.errors import InputError
from jaxcnn.explore import Explorer, decode, kernel_output, output_size
from tests import oracle
from tests.explore.browser import act, attrs, choose, click, f32, fill, last, page_at

SIZE = (28, 28)
"""The page's grey images."""
CELL = "#kernel-grid input"


def correlate(image: np.ndarray, kernel: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """The sliding dot product by the float64 oracle (exact where every sum is of integers)."""
    return oracle.conv2d(image[None, :, :, None], kernel[:, :, None, None], None, stride, padding)[
        0, :, :, 0
    ]


def shown_kernel(page: Page) -> dict[str, Any]:
    """The kernel cells' values and the formula's terms, as the page shows them."""
    cells = f32(attrs(page, "#kernel-grid input", "data-value")).reshape(3, 3)
    formula = {
        axis: {
            term: int(str(page.get_attribute(f"#formula-{axis}", f"data-{term}")))
            for term in ("n", "p", "k", "s", "out")
        }
        for axis in ("h", "w")
    }
    return {"cells": cells, "formula": formula, "answer": last(page, "kernel")}


def check_kernel_view(
    page: Page, image: np.ndarray, weights: np.ndarray, stride: int, padding: int
) -> None:
    """The page shows ``weights`` slid over ``image``: cells, output, and the formula."""
    shown = shown_kernel(page)
    answer = shown["answer"]
    np.testing.assert_array_equal(shown["cells"], weights)
    np.testing.assert_array_equal(f32(answer["kernel"]), weights)
    np.testing.assert_array_equal(f32(answer["image"]), image)
    expected = np.asarray(kernel_output(image, weights, stride=stride, padding=padding))
    np.testing.assert_array_equal(f32(answer["output"]), expected)
    size = output_size(SIZE, stride, padding)
    for axis, n, out in (("h", size.n, size.out), ("w", size.n_w, size.out_w)):
        terms = shown["formula"][axis]
        assert terms == {"n": n, "p": padding, "k": 3, "s": stride, "out": out}
        assert out == (n + 2 * padding - 3) // stride + 1  # the formula itself
        assert page.text_content(f"#formula-{axis}").endswith(f"= {out}")  # type: ignore[union-attr]
    assert f32(answer["output"]).shape == (size.out, size.out_w)


def test_switching_kernels_shows_each_kernel_on_the_square(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer
) -> None:
    square = shapes_explorer.builtins["square"]
    with page_at(browser, f"{shapes_url}#view=kernels") as page:
        for name, kernel in kernels.CLASSICAL.items():
            assert click(page, f'#kernel-buttons button[data-kernel="{name}"]') == "ready"
            weights = np.asarray(kernel, np.float32)
            check_kernel_view(page, square, weights, 1, 0)
            active = attrs(page, "#kernel-buttons button.active", "data-kernel")
            assert active == [name]
            if np.all(weights == np.round(weights)):  # integer sums: exact in any order
                output = f32(last(page, "kernel")["output"])
                np.testing.assert_array_equal(output, correlate(square, weights, 1, 0))


@pytest.mark.parametrize(("stride", "padding"), [(2, 0), (3, 1), (1, 2), (3, 2)])
def test_stride_and_padding_fill_in_the_output_size_formula(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer, stride: int, padding: int
) -> None:
    circle = shapes_explorer.builtins["circle"]
    sharpen = np.asarray(kernels.CLASSICAL["sharpen"], np.float32)
    with page_at(browser, f"{shapes_url}#view=kernels&image=circle&kernel=sharpen") as page:
        assert choose(page, "#stride", str(stride)) == "ready"
        assert choose(page, "#padding", str(padding)) == "ready"
        check_kernel_view(page, circle, sharpen, stride, padding)
        assert f"stride={stride}" in page.evaluate("location.hash")


def test_typed_kernel_cells_become_the_kernel(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer
) -> None:
    square = shapes_explorer.builtins["square"]
    weights = np.array(kernels.CLASSICAL["blur"], np.float32)
    with page_at(browser, f"{shapes_url}#view=kernels&kernel=blur") as page:
        for (row, col), text in (((0, 0), "0.5"), ((1, 1), "-1.25"), ((2, 2), "3e-2")):
            assert fill(page, f"{CELL}[data-row='{row}'][data-col='{col}']", text) == "ready"
            weights[row, col] = np.float32(float(text))  # the untouched cells stay exactly 1/9
            check_kernel_view(page, square, weights, 1, 0)
        assert not attrs(page, "#kernel-buttons button.active", "data-kernel")


def test_a_refused_kernel_value_shows_the_servers_message_and_the_page_goes_on(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer
) -> None:
    square = shapes_explorer.builtins["square"]
    ninth = float(np.float32(1 / 9))
    with page_at(browser, f"{shapes_url}#view=kernels&kernel=blur") as page:
        cell = page.locator('#kernel-grid input[data-row="0"][data-col="0"]')
        # what the page sends: text that is no number as typed; 1e9 as JSON.stringify writes it
        for text, sent in (("abc", "abc"), ("1e9", 1_000_000_000)):
            cell.fill(text)
            assert act(page, lambda: cell.press("Enter")) == "error"
            body = {
                "image": {"builtin": "square"},
                "kernel": [[sent, ninth, ninth], [ninth] * 3, [ninth] * 3],
                "stride": 1,
                "padding": 0,
            }
            with pytest.raises(InputError) as refused:
                shapes_explorer.kernel(body)
            assert page.text_content("#error") == str(refused.value)
            assert "kernel[0][0]" in str(refused.value)
            assert page.is_visible("#error")
        assert act(page, lambda: cell.fill("2")) == "ready"
        assert page.is_hidden("#error")
        weights = np.full((3, 3), np.float32(1 / 9), np.float32)
        weights[0, 0] = 2
        check_kernel_view(page, square, weights, 1, 0)


def test_an_uploaded_png_and_a_test_image_are_the_pages_images(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer, tmp_path: Path
) -> None:
    ramp = np.linspace(0, 255, 40 * 30 * 3).reshape(30, 40, 3) % 256
    path = tmp_path / "ramp.png"
    Image.fromarray(ramp.astype(np.uint8), "RGB").save(path)
    gray = decode_image(path.read_bytes(), color="grayscale", size=SIZE, name="test")[..., 0]
    edges = np.asarray(kernels.CLASSICAL["vertical edges"], np.float32)
    url = f"{shapes_url}#view=kernels&kernel=vertical+edges"
    with page_at(browser, url) as page:
        assert act(page, lambda: page.set_input_files("#image-file", path)) == "ready"
        check_kernel_view(page, gray, edges, 1, 0)
        upload = last(page, "upload")
        np.testing.assert_array_equal(shapes_explorer.uploads.get(upload["id"]).gray, gray)
        assert page.input_value("#image-select") == f"upload:{upload['id']}"
        assert choose(page, "#image-select", "test") == "ready"
        page.fill("#image-test", "7")
        assert act(page, lambda: page.press("#image-test", "Enter")) == "ready"
        body = {"image": {"test": 7}, "kernel": edges.tolist(), "stride": 1, "padding": 0}
        test7 = decode(shapes_explorer.kernel(body)["image"])
        check_kernel_view(page, test7, edges, 1, 0)


def test_the_url_reopens_the_same_picture(
    browser: Browser, shapes_url: str, shapes_explorer: Explorer
) -> None:
    circle = shapes_explorer.builtins["circle"]
    edges = np.array(kernels.CLASSICAL["horizontal edges"], np.float32)
    url = f"{shapes_url}#view=kernels&image=circle&kernel=horizontal+edges&stride=2&padding=1"
    with page_at(browser, url) as page:
        check_kernel_view(page, circle, edges, 2, 1)
        assert page.input_value("#stride") == "2"
        assert page.input_value("#padding") == "1"
        # change it on the page, then open the link the page wrote
        cell = page.locator('#kernel-grid input[data-row="1"][data-col="2"]')
        assert act(page, lambda: cell.fill("0.75")) == "ready"
        edges[1, 2] = 0.75
        first = last(page, "kernel")
        link = shapes_url + page.evaluate("location.hash")
    with page_at(browser, link) as page:
        check_kernel_view(page, circle, edges, 2, 1)
        assert last(page, "kernel") == first
    link = f"{shapes_url}#view=pattern&image=square&pixel=9,20&stride=2&padding=2&pos=40"
    with page_at(browser, link) as page:
        match = last(page, "match")
        assert attrs(page, "#match-pixel", "data-row") == ["9"]
        assert attrs(page, "#match-pixel", "data-col") == ["20"]
        square = shapes_explorer.builtins["square"]
        np.testing.assert_array_equal(f32(match["patch"]), np.pad(square, 1)[9:12, 20:23])
        assert attrs(page, "#play", "data-pos") == ["40"]
        slide = last(page, "slide")
        out_w = f32(slide["sums"]).shape[1]
        r, c = divmod(40, out_w)
        np.testing.assert_array_equal(
            f32(attrs(page, "#play-products span", "data-value")).reshape(3, 3),
            f32(slide["products"])[r, c],
        )
    with page_at(browser, f"{shapes_url}#view=backward&input=test:3&label=1") as page:
        assert last(page, "backward")["label"] == 1
        assert page.input_value("#label-select") == "1"
        assert page.input_value("#test-index") == "3"


def test_without_a_run_the_kernel_views_work_and_the_others_say_how_to_get_one(
    browser: Browser, bare_url: str, bare_explorer: Explorer
) -> None:
    hint = bare_explorer.info()["no_run_hint"]
    with page_at(browser, f"{bare_url}#view=kernels&kernel=sharpen") as page:
        square = bare_explorer.builtins["square"]
        check_kernel_view(page, square, np.asarray(kernels.CLASSICAL["sharpen"], np.float32), 1, 0)
        assert attrs(page, "#image-select option", "value") == ["square", "circle"]
        assert click(page, '#tabs button[data-view="pattern"]') == "ready"
        assert last(page, "match")["best"] is not None
        for view in ("model", "backward", "training"):
            assert click(page, f'#tabs button[data-view="{view}"]') == "ready"
            assert page.text_content(f"#view-{view} .hint") == hint
            assert page.is_visible(f"#view-{view} .hint")
            assert page.is_hidden(f"#view-{view} .needs-run")
            assert page.is_hidden("#input-bar")
