"""Hypothesis strategies and hand-picked corners shared by the convolution and pooling tests.

Each case also carries ``pads``, the padding resolved by the oracle's own
rule (:func:`tests.oracle.padding_pairs`), never by the library's.

A random search starts from the simplest case and may never reach an awkward
one, so the property tests also run the corners below on every run, through
``@conv_corners`` / ``@pool_corners`` (``hypothesis.example``): a batch with a
deep convolution, one input channel with asymmetric padding, even kernels
with "same", strides larger than the kernel, a 1x1 image, max-pool ties.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from hypothesis import example
from hypothesis import strategies as st

from tests import oracle

Pads = tuple[tuple[int, int], tuple[int, int]]
Test = TypeVar("Test", bound=Callable[..., Any])

paddings = st.one_of(
    st.sampled_from(["valid", "same"]),
    st.integers(0, 2),
    st.tuples(
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.integers(0, 2), st.integers(0, 2)),
    ),
)
"""Every padding form: "valid", "same", an int, explicit ((top, bottom), (left, right))."""

pool_paddings = st.one_of(
    st.sampled_from(["valid", "same"]),
    st.integers(0, 1),
    st.tuples(
        st.tuples(st.integers(0, 1), st.integers(0, 1)),
        st.tuples(st.integers(0, 1), st.integers(0, 1)),
    ),
)
"""Every padding form, at most one pixel per side."""

strides = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
"""Stride 1-3, as an int or a pair."""

pool_strides = st.one_of(st.none(), strides)
"""A pooling stride, or None (the window: non-overlapping)."""

sometimes = st.booleans()


def conv_case(
    shape: tuple[int, int, int, int],
    kernel: tuple[int, int],
    c_out: int,
    *,
    stride: Any = 1,
    padding: Any = "valid",
    seed: int = 0,
    bias: bool = True,
) -> dict[str, Any]:
    """One float64 convolution case (the keys of :func:`conv_cases`) from its geometry.

    Args:
      shape: ``(N, H, W, C_in)`` of the input.
      kernel: ``(kh, kw)``.
      c_out: filters.
      stride, padding: as ``jaxcnn.ops.conv2d`` takes them.
      seed: seeds the random ``x``, ``w``, ``b`` (normal) and ``seed``.
      bias: whether ``b`` is drawn (else None).
    """
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=shape),
        "w": rng.normal(size=(*kernel, shape[3], c_out)),
        "b": rng.normal(size=c_out) if bias else None,
        "stride": stride,
        "padding": padding,
        "pads": oracle.padding_pairs(padding, kernel),
        "seed": int(rng.integers(0, 2**32 - 1)),
        "rng": rng,
    }


@st.composite
def conv_cases(
    draw: st.DrawFn, *, max_side: int, max_c_in: int, max_batch: int, optional_bias: bool = False
) -> dict[str, Any]:
    """A random float64 convolution: kernel 1-4, any padding and stride, 1-4 filters.

    Keys: ``x [N, H, W, C_in]``, ``w [kh, kw, C_in, C_out]``, ``b [C_out]`` (or
    None when ``optional_bias`` and drawn so), ``stride``, ``padding``, ``pads``
    (:func:`tests.oracle.padding_pairs`), ``rng`` (the generator that made the
    arrays, for more of them) and ``seed`` (an independent seed).
    The input is never smaller than the kernel after padding.
    """
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = draw(paddings)
    pads = oracle.padding_pairs(padding, kernel)
    height, width = (image_side(draw, kernel[axis], pads[axis], max_side) for axis in range(2))
    c_in, c_out = draw(st.integers(1, max_c_in)), draw(st.integers(1, 4))
    shape = (draw(st.integers(1, max_batch)), height, width, c_in)
    return conv_case(
        shape,
        kernel,
        c_out,
        stride=draw(strides),
        padding=padding,
        seed=draw(st.integers(0, 2**32 - 1)),
        bias=draw(st.booleans()) if optional_bias else True,
    )


CONV_CORNERS: dict[str, dict[str, Any]] = {
    # C_in * kh * kw = 81 > 64: the offsets kernel gradient and the correlation dx, N = 3.
    "batch-deep": conv_case((3, 6, 5, 9), (3, 3), 3, padding="same", seed=1),
    "one-channel-asymmetric": conv_case(
        (2, 6, 5, 1), (3, 2), 2, stride=(1, 2), padding=((2, 0), (0, 1)), seed=2
    ),
    "even-same-one-channel": conv_case((2, 5, 6, 1), (4, 2), 3, padding="same", seed=3),
    "even-same-strided": conv_case((2, 7, 6, 3), (2, 2), 2, stride=2, padding="same", seed=4),
    "stride-over-kernel": conv_case((2, 8, 7, 2), (2, 1), 3, stride=(3, 2), seed=5),
    "stride-over-kernel-one-channel": conv_case(
        (3, 7, 9, 1), (1, 2), 2, stride=3, padding=1, seed=6
    ),
    "1x1-image": conv_case((2, 1, 1, 3), (3, 3), 2, padding="same", seed=7),
    "1x1-image-even-kernel": conv_case((3, 1, 1, 1), (2, 2), 2, padding="same", seed=8),
}
"""Convolutions a random search may miss, run by every test decorated with :func:`conv_corners`."""


def conv_corners(test: Test) -> Test:
    """Add every :data:`CONV_CORNERS` case as an explicit example (``case=``) of ``test``."""
    for case in CONV_CORNERS.values():
        test = example(case=case)(test)
    return test


def image_side(draw: st.DrawFn, window: int, pad: tuple[int, int], max_side: int) -> int:
    """An input side of at most ``max_side`` that a ``window`` fits in once padded by ``pad``."""
    return draw(st.integers(max(1, window - sum(pad)), max_side))


def pool_case(
    shape: tuple[int, int, int, int],
    size: Any,
    *,
    stride: Any = None,
    padding: Any = "valid",
    ties: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """One pooling case (the keys of :func:`pool_cases`) from its geometry.

    ``x`` holds distinct values (one maximum per window) or, with ``ties``,
    only the values 0, 1 and 2 (most windows hold several equal maxima).
    """
    rng = np.random.default_rng(seed)
    count = int(np.prod(shape))
    if ties:
        x = rng.integers(0, 3, size=shape).astype(np.float64)
    else:
        x = (rng.permutation(count).reshape(shape) - count / 2) / count
    return {
        "size": size,
        "stride": stride,
        "padding": padding,
        "pads": oracle.padding_pairs(padding, oracle.pair(size)),
        "shape": shape,
        "x": x,
        "seed": int(rng.integers(0, 2**32 - 1)),
        "rng": rng,
    }


@st.composite
def pool_cases(
    draw: st.DrawFn,
    *,
    max_side: int,
    max_batch: int,
    max_channels: int,
    strides: st.SearchStrategy[Any] = pool_strides,
    paddings: st.SearchStrategy[Any] = pool_paddings,
    ties: st.SearchStrategy[bool] = sometimes,
) -> dict[str, Any]:
    """A random pooling: window 1-3 per axis, a stride (None = the window) and a padding.

    Keys: ``size``, ``stride``, ``padding``, ``pads``
    (:func:`tests.oracle.padding_pairs`), ``shape`` (``[N, H, W, C]`` of an
    input the window fits in), ``x`` (float64, see :func:`pool_case`),
    ``seed`` and ``rng``.
    """
    size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(strides)
    padding = draw(paddings)
    pads = oracle.padding_pairs(padding, size)
    height, width = (image_side(draw, size[axis], pads[axis], max_side) for axis in range(2))
    shape = (draw(st.integers(1, max_batch)), height, width, draw(st.integers(1, max_channels)))
    return pool_case(
        shape,
        size,
        stride=stride,
        padding=padding,
        ties=draw(ties),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


POOL_CORNERS: dict[str, dict[str, Any]] = {
    "ties-overlapping": pool_case((2, 6, 5, 2), 3, stride=1, padding="same", ties=True, seed=1),
    "ties-tiled": pool_case((3, 6, 6, 2), 2, ties=True, seed=2),
    "all-equal": {**pool_case((2, 5, 5, 1), 2, stride=1, seed=3), "x": np.ones((2, 5, 5, 1))},
    "even-same": pool_case((2, 5, 4, 2), (2, 2), stride=1, padding="same", seed=4),
    "one-channel-asymmetric": pool_case(
        (2, 5, 6, 1), (3, 2), stride=(1, 2), padding=((1, 0), (0, 1)), ties=True, seed=5
    ),
    "stride-over-window": pool_case((2, 8, 7, 2), 2, stride=3, seed=6),
    "stride-over-window-padded": pool_case((1, 7, 8, 3), (2, 1), stride=(3, 2), padding=1, seed=7),
    "1x1-image": pool_case((3, 1, 1, 2), 1, seed=8),
    "1x1-image-same": pool_case((2, 1, 1, 2), 2, stride=1, padding="same", seed=9),
}
"""Poolings a random search may miss, run by every test decorated with :func:`pool_corners`."""


def pool_corners(test: Test) -> Test:
    """Add every :data:`POOL_CORNERS` case as an explicit example (``case=``) of ``test``."""
    for case in POOL_CORNERS.values():
        test = example(case=case)(test)
    return test
