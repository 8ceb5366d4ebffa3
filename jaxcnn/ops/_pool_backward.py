"""Pooling backward kernels: route the upstream gradient back to the input.

Used by :func:`jaxcnn.ops.max_pool2d`'s custom VJP and by
:mod:`jaxcnn.manual`. No validation here (callers validate); no
``select_and_scatter`` (XLA's generic max-pool gradient, 20-40x slower on CPU).

Tie rule: each window's gradient goes, whole, to its **first** maximum in
row-major order, found either by one running ``>`` comparison over the window
offsets (:func:`first_max`, the manual formula) or by one
``argmax`` (:func:`window_max_and_winner`, the custom VJP of ``ops.max_pool2d``).
Only the winner's *index* is used, never an equality with a separately
computed maximum: under ``jit`` XLA may recompute the pooled input in two
fusions with different rounding, and a window whose pixels all miss the
recomputed maximum would lose its gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcnn._checks import Padding2D, Pair, padded_shape
from jaxcnn.ops._windows import (
    crop_padding,
    first_max,
    offsets,
    pad_spatial,
    scatter_windows,
    shifted,
)


def max_pool_backward(
    x: jax.Array, g: jax.Array, window: Pair, strides: Pair, pads: Padding2D
) -> jax.Array:
    """``dx`` of ``max_pool2d`` from ``x``: each window's ``g`` goes to its first maximum.

    The article's way (:mod:`jaxcnn.manual`): the winner is found by one running
    ``>`` comparison over the window offsets while going backward.

    Args:
      x: ``[N, H, W, C]`` the forward input.
      g: ``[N, H_out, W_out, C]`` upstream gradient.
      window: ``(kh, kw)``; strides: ``(sh, sw)``; pads: ``((t, b), (l, r))``.

    Returns:
      ``[N, H, W, C]``.
    """
    xp = pad_spatial(x, pads, -jnp.inf)
    out = (g.shape[1], g.shape[2])
    winner = first_max([shifted(xp, offset, out, strides) for offset in offsets(window)])
    return route_to_winners(winner, g, x.shape, window, strides, pads)


def window_max_and_winner(
    x: jax.Array, window: Pair, strides: Pair, pads: Padding2D
) -> tuple[jax.Array, jax.Array]:
    """Each window's maximum and the row-major index of its first maximum.

    One ``argmax`` (a reduction, first occurrence on ties) over the window's
    ``kh * kw`` pixels laid out on a last axis (:func:`window_pixels`).
    :func:`jaxcnn.ops.max_pool2d` computes it in the forward pass and keeps
    only it for the backward: a reduction is never re-fused into the
    backward's elementwise loop, whereas XLA's CPU fusion would otherwise
    recompute the pooled input (say ``relu(conv(...))``) there once per pixel
    of every window (measured: the shapes CNN's step 1.9 -> 1.0 ms).

    The maximum is reduced from the same pixels, so XLA reads ``x`` once for
    both. A separate ``reduce_window`` for it made XLA write ``x`` to memory
    first (11 MB per MNIST CNN step) and read it twice. The maximum is exact,
    so it equals ``reduce_window``'s bit for bit.

    Returns:
      ``(maximum [N, H_out, W_out, C], winner int32 [N, H_out, W_out, C])``.
    """
    pixels = window_pixels(x, window, strides, pads)
    return jnp.max(pixels, axis=-1), first_max_index(pixels)


def window_pixels(x: jax.Array, window: Pair, strides: Pair, pads: Padding2D) -> jax.Array:
    """Every window's ``kh * kw`` pixels on a last axis, row-major: ``[N, H_out, W_out, C, kh*kw]``.

    Padded positions hold ``-inf``. Non-overlapping windows are a reshape and
    transpose of the input (no copies of overlapping pixels).
    """
    xp = pad_spatial(x, pads, -jnp.inf)
    n, _, _, c = xp.shape
    out_h = (xp.shape[1] - window[0]) // strides[0] + 1
    out_w = (xp.shape[2] - window[1]) // strides[1] + 1
    if strides == window:
        kh, kw = window
        tiles = xp[:, : out_h * kh, : out_w * kw].reshape(n, out_h, kh, out_w, kw, c)
        return jnp.transpose(tiles, (0, 1, 3, 5, 2, 4)).reshape(n, out_h, out_w, c, kh * kw)
    slices = [shifted(xp, offset, (out_h, out_w), strides) for offset in offsets(window)]
    return jnp.stack(slices, axis=-1)


def first_max_index(pixels: jax.Array) -> jax.Array:
    """``argmax`` over the last axis, the first one on ties, as ``int32``."""
    return jnp.argmax(pixels, axis=-1).astype(jnp.int32)


def route_to_winners(
    winner: jax.Array,
    g: jax.Array,
    x_shape: tuple[int, ...],
    window: Pair,
    strides: Pair,
    pads: Padding2D,
) -> jax.Array:
    """Send each window's ``g`` to pixel ``winner`` of the window: ``[N, H, W, C]``.

    ``winner``: ``int32 [N, H_out, W_out, C]``, a row-major offset in the window.
    Where windows overlap, a pixel that wins several of them receives the sum.
    """
    if strides == window:
        return _route_tiled(winner, g, x_shape, window, pads)
    zero = jnp.zeros((), g.dtype)
    parts = [jnp.where(winner == k, g, zero) for k in range(window[0] * window[1])]
    grid = scatter_windows(parts, padded_shape(x_shape, pads), window, strides)
    return crop_padding(grid, x_shape, pads)


def _route_tiled(
    winner: jax.Array, g: jax.Array, x_shape: tuple[int, ...], window: Pair, pads: Padding2D
) -> jax.Array:
    """``stride == size``: the windows tile the input, so build ``dx`` in a tiled view.

    ``[N, H_out, kh, W_out, kw, C]`` holds window ``(r, c)``'s offset ``(i, j)``
    at ``[:, r, i, c, j]``: one select against the winner, reshaped back (a
    single elementwise pass, no per-offset arrays).
    """
    n, out_h, out_w, c = g.shape
    kh, kw = window
    index = jnp.arange(kh * kw, dtype=jnp.int32).reshape(1, 1, kh, 1, kw, 1)
    hit = winner.reshape(n, out_h, 1, out_w, 1, c) == index
    spread = jnp.where(hit, g.reshape(n, out_h, 1, out_w, 1, c), jnp.zeros((), g.dtype))
    grid = spread.reshape(n, out_h * kh, out_w * kw, c)
    padded = padded_shape(x_shape, pads)[1:3]
    rest = ((0, 0), (0, padded[0] - out_h * kh), (0, padded[1] - out_w * kw), (0, 0))
    return crop_padding(jnp.pad(grid, rest), x_shape, pads)


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
    parts = [share] * (window[0] * window[1])
    grid = scatter_windows(parts, padded_shape(x_shape, pads), window, strides)
    return crop_padding(grid, x_shape, pads)
