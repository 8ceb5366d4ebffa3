"""Small helpers shared by the hand-written backward passes.

The window helpers (``shifted``, ``offsets``, ``scatter_windows``,
``crop_padding``) live in :mod:`jaxcnn._windows`, below :mod:`jaxcnn.ops`,
and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from jaxcnn import _checks
from jaxcnn._windows import crop_padding, offsets, scatter_windows, shifted

__all__ = [
    "check_grad_shape",
    "crop_padding",
    "image_shape",
    "offsets",
    "scatter_windows",
    "shifted",
]


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
