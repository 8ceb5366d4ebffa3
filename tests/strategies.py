"""Hypothesis strategies shared by the convolution and pooling tests.

The padding contract is restated here independently of the library
(:func:`expected_pads`), so a test that draws a padding can check the library
against it rather than against the library's own reading.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

Pads = tuple[tuple[int, int], tuple[int, int]]

paddings = st.one_of(
    st.sampled_from(["valid", "same"]),
    st.integers(0, 2),
    st.tuples(
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
    ),
)
"""Every padding form: "valid", "same", an int, explicit ((top, bottom), (left, right))."""

strides = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
"""Stride 1-3, as an int or a pair."""


def expected_pads(padding: Any, window: tuple[int, int]) -> Pads:
    """``((top, bottom), (left, right))`` of ``padding`` for a ``window``-sized kernel."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return ((window[0] - 1) // 2, window[0] // 2), ((window[1] - 1) // 2, window[1] // 2)
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    return padding


@st.composite
def conv_cases(
    draw: st.DrawFn, *, max_side: int, max_c_in: int, max_batch: int, optional_bias: bool = False
) -> dict[str, Any]:
    """A random float64 convolution: kernel 1-4, any padding and stride, 1-4 filters.

    Keys: ``x [N, H, W, C_in]``, ``w [kh, kw, C_in, C_out]``, ``b [C_out]`` (or
    None when ``optional_bias`` and drawn so), ``stride``, ``padding``, ``pads``
    (:func:`expected_pads`), ``rng`` (the generator that made the arrays, for
    more of them) and ``seed`` (an independent seed).
    The input is never smaller than the kernel after padding.
    """
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = draw(paddings)
    pads = expected_pads(padding, kernel)
    height, width = (image_side(draw, kernel[axis], pads[axis], max_side) for axis in range(2))
    c_in, c_out = draw(st.integers(1, max_c_in)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    with_bias = draw(st.booleans()) if optional_bias else True
    return {
        "x": rng.normal(size=(draw(st.integers(1, max_batch)), height, width, c_in)),
        "w": rng.normal(size=(*kernel, c_in, c_out)),
        "b": rng.normal(size=c_out) if with_bias else None,
        "stride": draw(strides),
        "padding": padding,
        "pads": pads,
        "seed": draw(st.integers(0, 2**32 - 1)),
        "rng": rng,
    }


def image_side(draw: st.DrawFn, window: int, pad: tuple[int, int], max_side: int) -> int:
    """An input side of at most ``max_side`` that a ``window`` fits in once padded by ``pad``."""
    return draw(st.integers(max(1, window - sum(pad)), max_side))


@st.composite
def pool_geometry(
    draw: st.DrawFn,
    *,
    strides: st.SearchStrategy[Any],
    paddings: st.SearchStrategy[Any],
    max_side: int,
    max_batch: int,
    max_channels: int,
) -> dict[str, Any]:
    """A random pooling: window 1-3 per axis, a stride and a padding from the given strategies.

    Keys: ``size``, ``stride``, ``padding``, ``pads`` (:func:`expected_pads`),
    ``shape`` (``[N, H, W, C]`` of an input the window fits in) and ``rng``.
    """
    size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(strides)
    padding = draw(paddings)
    pads = expected_pads(padding, size)
    height, width = (image_side(draw, size[axis], pads[axis], max_side) for axis in range(2))
    shape = (draw(st.integers(1, max_batch)), height, width, draw(st.integers(1, max_channels)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return {
        "size": size,
        "stride": stride,
        "padding": padding,
        "pads": pads,
        "shape": shape,
        "rng": rng,
    }
