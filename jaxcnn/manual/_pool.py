"""Pooling backward passes, written out by hand (no autodiff, no select-and-scatter).

Pooling has no parameters, so its backward only routes ``g = dL/dy`` back to
the input. Both formulas loop over the ``kh * kw`` window offsets ``(i, j)``
(never over pixels): at offset ``(i, j)`` window ``(r, c)`` reads the padded
input pixel ``(r*sh + i, c*sw + j)``, so one strided slice gives that pixel
for every window at once, and the gradient it receives is put back in place
by ``scatter_windows`` (non-overlapping windows: one
select in a ``[N, H_out, kh, W_out, kw, C]`` view, reshaped back).
The formulas live in ``jaxcnn/ops/_pool_backward.py``, shared with
:func:`jaxcnn.ops.max_pool2d`'s custom VJP; this module validates.

Tie rule for max pooling: each window's gradient goes, whole, to the **first**
maximum of the window in row-major order (smallest ``i``, then smallest
``j``), as the article's ``np.argmax`` does. Where windows overlap
(``stride < size``) a pixel collects the sum of what every window routed to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxcnn import _checks
from jaxcnn._checks import IntOrPair, Padding2D, PaddingLike, Pair
from jaxcnn.ops._pool import window_counts
from jaxcnn.ops._pool_backward import avg_pool_backward, max_pool_backward


def max_pool2d_backward(
    x: Any,
    g: Any,
    *,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    padding: PaddingLike = "valid",
) -> jax.Array:
    """Gradient of ``max_pool2d(x, size, stride, padding)``: route to the first max.

    ``dx[p] = sum over windows W containing p of g[W] * [p is W's first maximum]``,
    first in row-major order inside the window. Padded positions never win.

    The winner is found by one running comparison over the window offsets
    (``>``, so an equal later value never displaces an earlier one), and only
    its *index* is used afterwards. Comparing pixels with a separately
    computed maximum (``x == max_pool2d(x)``) would be fragile: under ``jit``
    XLA may recompute ``x`` (say ``relu(conv(...))``) in two fusions with
    different rounding, and a window whose pixels all miss the recomputed
    maximum would lose its gradient.

    Args:
      x: ``[N, H, W, C]`` the forward input.
      g: ``[N, H_out, W_out, C]`` upstream gradient.
      size: window, int or ``(kh, kw)``.
      stride: int or ``(sh, sw)``; ``None`` means ``size``.
      padding: as for :func:`jaxcnn.ops.max_pool2d`.

    Returns:
      ``[N, H, W, C]``.
    """
    fn = "max_pool2d_backward"
    x, g, window, strides, pads = _prepare(fn, x, g, size, stride, padding)
    return max_pool_backward(x, g, window, strides, pads)


def avg_pool2d_backward(
    x: Any,
    g: Any,
    *,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    padding: PaddingLike = "valid",
) -> jax.Array:
    """Gradient of ``avg_pool2d``: each window spreads ``g / count`` evenly.

    ``dx[p] = sum over windows W containing p of g[W] / count[W]``, where
    ``count`` is the number of real (unpadded) pixels in ``W``.

    Args:
      x: ``[N, H, W, C]`` the forward input (only its shape and dtype matter).
      g: ``[N, H_out, W_out, C]``.
      size, stride, padding: as for :func:`jaxcnn.ops.avg_pool2d`.

    Returns:
      ``[N, H, W, C]``.
    """
    x, g, window, strides, pads = _prepare("avg_pool2d_backward", x, g, size, stride, padding)
    counts = window_counts(x.shape, window, strides, pads, g.dtype)
    return avg_pool_backward(g, counts, x.shape, window, strides, pads)


def global_avg_pool2d_backward(g: Any, x_shape: Sequence[int]) -> jax.Array:
    """Gradient of ``global_avg_pool2d``: ``dx[n, r, c, ch] = g[n, ch] / (H * W)``.

    Args:
      g: ``[N, C]``.
      x_shape: ``(N, H, W, C)`` of the forward input.

    Returns:
      ``[N, H, W, C]``.
    """
    fn = "global_avg_pool2d_backward"
    g = _checks.as_float_array(fn, "g", g)
    _checks.check_rank(fn, "g", g, "N, C")
    n, h, w, c = _checks.image_shape(fn, x_shape)
    _checks.check_grad_shape(fn, g, (n, c))
    share = g / jnp.asarray(h * w, g.dtype)
    return jnp.broadcast_to(share.reshape(n, 1, 1, c), (n, h, w, c))


def _prepare(
    fn: str, x: Any, g: Any, size: Any, stride: Any, padding: Any
) -> tuple[jax.Array, jax.Array, Pair, Pair, Padding2D]:
    x, window, strides, pads = _checks.pool_arguments(fn, x, size, stride, padding)
    expected = _checks.conv_output_shape(x.shape, window, strides, pads, x.shape[3])
    g = _checks.upstream_gradient(fn, g, x, "N, H_out, W_out, C", expected)
    return x, g, window, strides, pads
