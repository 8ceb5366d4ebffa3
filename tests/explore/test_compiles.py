"""After the start, no interaction of the page compiles anything.

An interactive page is dominated by per-request compiles (a jitted function
seen with a new shape or static argument compiles for tens to hundreds of
milliseconds), so :meth:`Explorer.warm_up` compiles every function the page
calls, for every setting it offers. This counts XLA compilations while every
kind of request is answered: the count is machine-independent, unlike a
latency (which benchmarks/explore_latency.py measures in the browser).
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
from PIL import Image

from jaxcnn.explore import PADDINGS, STRIDES, Explorer, kernel_output
from tests.compile_count import compile_log

KERNEL = [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]


def drawn_digit() -> bytes:
    pixels = np.zeros((280, 280), np.uint8)
    pixels[40:240, 130:150] = 255  # a "1", drawn large as on the page's canvas
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def every_request(explorer: Explorer) -> None:
    upload = explorer.upload(drawn_digit())["id"]
    explorer.info()
    explorer.run_state(None)
    explorer.test_images(0, 24)
    for image in ({"builtin": "square"}, {"test": 5}, {"upload": upload}):
        for stride, padding in itertools.product(STRIDES, PADDINGS):
            body: dict[str, Any] = {
                "image": image,
                "kernel": KERNEL,
                "stride": stride,
                "padding": padding,
            }
            explorer.kernel(body)
            explorer.slide(body)
        explorer.match({"image": image, "row": 3, "col": 20})
    for source in ({"test": 7}, {"upload": upload}):
        explorer.forward({"input": source})
        explorer.forward({"input": source, "target": 1})
        explorer.backward({"input": source, "label": 0})


def test_no_request_compiles_after_the_warm_up(shapes_explorer: Explorer) -> None:
    with compile_log() as log:
        every_request(shapes_explorer)
    assert log.compiled == [], log.compiled


def test_the_count_would_see_a_compile() -> None:
    """The check above can fail: a view function seen with a new image size compiles."""
    kernel = np.asarray(KERNEL, np.float32)
    with compile_log() as log:
        kernel_output(np.zeros((17, 19), np.float32), kernel, stride=2, padding=2)
    assert log.compiles("kernel_output") == 1
