"""Pooling backward kernels: route the upstream gradient back to the input.

Used by :func:`jaxcnn.ops.max_pool2d`'s custom VJP and by
:mod:`jaxcnn.manual`. No validation here (callers validate); no
``select_and_scatter`` (XLA's generic max-pool gradient, 20-40x slower on CPU).

Tie rule: each window's gradient goes, whole, to its **first** maximum in
row-major order, found by one running ``>`` comparison over the window offsets
(:func:`jaxcnn._windows.first_max`). Only the winner's *index* is used, never
an equality with a separately computed maximum: under ``jit`` XLA may
recompute the pooled input in two fusions with different rounding, and a
window whose pixels all miss the recomputed maximum would lose its gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcnn._checks import Padding2D, Pair
from jaxcnn._windows import crop_padding, first_max, offsets, pad_spatial, scatter_windows, shifted


def max_pool_backward(
    x: jax.Array, g: jax.Array, window: Pair, strides: Pair, pads: Padding2D
) -> jax.Array:
    """``dx`` of ``max_pool2d``: each window's ``g`` goes to its first maximum.

    Args:
      x: ``[N, H, W, C]`` the forward input.
      g: ``[N, H_out, W_out, C]`` upstream gradient.
      window: ``(kh, kw)``; strides: ``(sh, sw)``; pads: ``((t, b), (l, r))``.

    Returns:
      ``[N, H, W, C]``.
    """
    if strides == window:
        return _tiled_backward(x, g, window, pads)
    return _sliced_backward(x, g, window, strides, pads)


def _sliced_backward(
    x: jax.Array, g: jax.Array, window: Pair, strides: Pair, pads: Padding2D
) -> jax.Array:
    """Any stride: one strided slice per window offset, scattered back per offset."""
    xp = pad_spatial(x, pads, -jnp.inf)
    out = (g.shape[1], g.shape[2])
    windows = offsets(window)
    winner = first_max([shifted(xp, offset, out, strides) for offset in windows])
    zero = jnp.zeros((), g.dtype)
    parts = [jnp.where(winner == k, g, zero) for k in range(len(windows))]
    return crop_padding(scatter_windows(parts, xp.shape, window, strides), x.shape, pads)


def _tiled_backward(x: jax.Array, g: jax.Array, window: Pair, pads: Padding2D) -> jax.Array:
    """``stride == size``: the windows tile the input, so reshape instead of slicing.

    ``xp[:, :H_out*kh, :W_out*kw]`` viewed as ``[N, H_out, kh, W_out, kw, C]``
    holds window ``(r, c)``'s offset ``(i, j)`` at ``[:, r, i, c, j]``; the
    gradient is built in that layout by one select against the winner and
    reshaped back (a single elementwise pass, no per-offset arrays).
    """
    n, out_h, out_w, c = g.shape
    kh, kw = window
    xp = pad_spatial(x, pads, -jnp.inf)
    tiles = xp[:, : out_h * kh, : out_w * kw].reshape(n, out_h, kh, out_w, kw, c)
    winner = first_max([tiles[:, :, i, :, j, :] for i, j in offsets(window)])
    index = jnp.arange(kh * kw, dtype=jnp.int32).reshape(1, 1, kh, 1, kw, 1)
    hit = winner.reshape(n, out_h, 1, out_w, 1, c) == index
    spread = jnp.where(hit, g.reshape(n, out_h, 1, out_w, 1, c), jnp.zeros((), g.dtype))
    grid = spread.reshape(n, out_h * kh, out_w * kw, c)
    rest = ((0, 0), (0, xp.shape[1] - out_h * kh), (0, xp.shape[2] - out_w * kw), (0, 0))
    return crop_padding(jnp.pad(grid, rest), x.shape, pads)


def avg_pool_backward(
    g: jax.Array,
    counts: jax.Array | float,
    x_shape: tuple[int, ...],
    window: Pair,
    strides: Pair,
    pads: Padding2D,
) -> jax.Array:
    """``dx`` of ``avg_pool2d``: each window spreads ``g / count`` evenly.

    Args:
      g: ``[N, H_out, W_out, C]``.
      counts: real (unpadded) pixels per window, a scalar or ``[1, H_out, W_out, 1]``.
      x_shape: ``(N, H, W, C)`` of the forward input.
      window, strides, pads: as for :func:`max_pool_backward`.

    Returns:
      ``[N, H, W, C]``.
    """
    share = g / counts
    padded_shape = (x_shape[0], x_shape[1] + sum(pads[0]), x_shape[2] + sum(pads[1]), x_shape[3])
    parts = [share] * (window[0] * window[1])
    return crop_padding(scatter_windows(parts, padded_shape, window, strides), x_shape, pads)
