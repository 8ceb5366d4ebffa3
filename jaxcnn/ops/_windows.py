"""Window arithmetic shared by convolution and pooling, forward and backward.

A ``kh x kw`` window sliding with stride ``(sh, sw)`` over a padded input
reads, at window offset ``(i, j)``, the pixels ``(r*sh + i, c*sw + j)`` of
every output position ``(r, c)``: one strided slice per offset
(:func:`shifted`). Backward passes put per-offset values back on the input
grid (:func:`scatter_windows`). Everything loops over the ``kh * kw``
offsets, never over pixels, and traces to plain XLA ops.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn._checks import Padding2D, Pair


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


def pad_spatial(x: jax.Array, pads: Padding2D, value: float = 0.0) -> jax.Array:
    """``[N, H, W, C] -> [N, H + top + bottom, W + left + right, C]`` filled with ``value``."""
    if pads == ((0, 0), (0, 0)):
        return x
    return jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def crop_padding(dxp: jax.Array, x_shape: tuple[int, ...], pads: Padding2D) -> jax.Array:
    """Drop the forward padding: ``[N, H + pads, W + pads, C] -> [N, H, W, C]``."""
    (top, _), (left, _) = pads
    return dxp[:, top : top + x_shape[1], left : left + x_shape[2], :]


def scatter_windows(
    parts: Sequence[jax.Array], padded_shape: tuple[int, ...], window: Pair, strides: Pair
) -> jax.Array:
    """Put each offset's ``[N, H_out, W_out, C]`` values back on the padded grid.

    ``parts[i * kw + j][n, r, c]`` lands on ``(r*sh + i, c*sw + j)``; values
    landing on one pixel add up. Windows that do not overlap (``stride >=
    size``) interleave, with no additions; overlapping ones are placed with
    ``lax.pad`` (interior padding ``stride - 1``) and summed.
    """
    if strides[0] >= window[0] and strides[1] >= window[1]:
        return _interleave(parts, padded_shape, window, strides)
    out_h, out_w = parts[0].shape[1], parts[0].shape[2]
    zero = jnp.zeros((), parts[0].dtype)
    placed = (
        lax.pad(
            part,
            zero,
            (
                (0, 0, 0),
                (i, padded_shape[1] - i - (out_h - 1) * strides[0] - 1, strides[0] - 1),
                (j, padded_shape[2] - j - (out_w - 1) * strides[1] - 1, strides[1] - 1),
                (0, 0, 0),
            ),
        )
        for part, (i, j) in zip(parts, offsets(window), strict=True)
    )
    return functools.reduce(operator.add, placed)


def _interleave(
    parts: Sequence[jax.Array], padded_shape: tuple[int, ...], window: Pair, strides: Pair
) -> jax.Array:
    """Non-overlapping windows: stack offsets as ``[N, H_out, sh, W_out, sw, C]``."""
    n, out_h, out_w, c = parts[0].shape
    gap = jnp.zeros_like(parts[0])
    kw = window[1]
    rows = [
        jnp.stack([parts[i * kw + j] if j < kw else gap for j in range(strides[1])], axis=3)
        if i < window[0]
        else jnp.stack([gap] * strides[1], axis=3)
        for i in range(strides[0])
    ]
    grid = jnp.stack(rows, axis=2).reshape(n, out_h * strides[0], out_w * strides[1], c)
    grid = grid[:, : padded_shape[1], : padded_shape[2]]  # a stride > size overshoots
    rest_h, rest_w = padded_shape[1] - grid.shape[1], padded_shape[2] - grid.shape[2]
    return jnp.pad(grid, ((0, 0), (0, rest_h), (0, rest_w), (0, 0)))


def first_max(candidates: Sequence[jax.Array]) -> jax.Array:
    """Index of the first maximum across equally shaped arrays, elementwise.

    One running comparison with ``>``: a later candidate only takes over when
    it is strictly larger, so ties keep the earliest (row-major) one.

    Args:
      candidates: ``K`` arrays of one shape, e.g. ``[N, H_out, W_out, C]``.

    Returns:
      ``int32`` array of that shape with values in ``[0, K)``.
    """
    best = candidates[0]
    winner = jnp.zeros(best.shape, jnp.int32)
    for k, candidate in enumerate(candidates[1:], start=1):
        better = candidate > best
        best = jnp.where(better, candidate, best)
        winner = jnp.where(better, jnp.int32(k), winner)
    return winner
