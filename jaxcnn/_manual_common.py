"""Small helpers shared by the hand-written backward passes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
from jax import lax

from jaxcnn import _checks
from jaxcnn._checks import Pair


def shifted(padded: jax.Array, offset: Pair, out: Pair, strides: Pair) -> jax.Array:
    """The pixels every window reads at kernel ``offset``: ``[N, out_h, out_w, C]``.

    ``padded[:, i : i + (out_h - 1) * sh + 1 : sh, j : ... : sw, :]`` for
    ``offset = (i, j)``; ``padded`` is ``[N, H_padded, W_padded, C]``.
    """
    n, _, _, c = padded.shape
    start = (0, offset[0], offset[1], 0)
    limit = (
        n,
        offset[0] + (out[0] - 1) * strides[0] + 1,
        offset[1] + (out[1] - 1) * strides[1] + 1,
        c,
    )
    return lax.slice(padded, start, limit, (1, strides[0], strides[1], 1))


def offsets(window: Pair) -> list[Pair]:
    """Kernel/window offsets ``(i, j)`` in row-major order."""
    return [(i, j) for i in range(window[0]) for j in range(window[1])]


def check_grad_shape(fn: str, g: jax.Array, expected: tuple[int, ...]) -> None:
    """Require the upstream gradient to have the forward output's shape."""
    if tuple(g.shape) != tuple(expected):
        raise ValueError(
            f"{fn}: g must have the forward output's shape {tuple(expected)}, got {tuple(g.shape)}"
        )


def image_shape(fn: str, shape: Any) -> tuple[int, int, int, int]:
    """Validate a forward input's ``(N, H, W, C)`` shape argument."""
    if isinstance(shape, str) or not isinstance(shape, Sequence) or len(shape) != 4:
        raise ValueError(f"{fn}: x_shape must be (N, H, W, C), got {shape!r}")
    n, h, w, c = (_checks.positive_int(fn, "x_shape", d) for d in shape)
    return n, h, w, c
