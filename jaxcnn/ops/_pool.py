"""Max, average and global-average pooling, all through ``lax.reduce_window``.

Pooling has no parameters: it shrinks each channel independently, keeping the
largest (max) or the mean (avg) value of every ``size`` window.

Max pooling's gradient is a ``jax.custom_vjp``: the routing formula of
``_pool_backward`` (each window's gradient to its first maximum,
row-major), 20-40x faster on CPU than the generic select-and-scatter gradient
JAX derives for ``reduce_window`` and identical to it (the same tie rule).
Reverse mode only; :func:`reference_max_pool2d` is the plain, autodiff-able
pooling (forward mode included), the independent reference of the tests.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn import _checks
from jaxcnn._checks import IntOrPair, Padding2D, PaddingLike, Pair
from jaxcnn.ops._pool_backward import route_to_winners, window_max_and_winner


def max_pool2d(
    x: Any,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    padding: PaddingLike = "valid",
) -> jax.Array:
    """Keep the maximum of every window, per channel.

    Padded positions hold ``-inf`` so they never win. The gradient goes, per
    window, to the first maximum in row-major order (the article's argmax).

    Args:
      x: ``[N, H, W, C]`` feature maps.
      size: window, int or ``(kh, kw)``.
      stride: int or ``(sh, sw)``; ``None`` means ``size`` (non-overlapping).
      padding: as for ``conv2d``.

    Returns:
      ``[N, H_out, W_out, C]``.
    """
    x, window, strides, pads = _checks.pool_arguments("max_pool2d", x, size, stride, padding)
    return _max_pool(x, window, strides, pads, tuple(x.shape))


def reference_max_pool2d(
    x: Any,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    padding: PaddingLike = "valid",
) -> jax.Array:
    """:func:`max_pool2d` without the custom VJP: JAX differentiates ``reduce_window``."""
    x, window, strides, pads = _checks.pool_arguments(
        "reference_max_pool2d", x, size, stride, padding
    )
    return _reduce_max(x, window, strides, pads)


def _reduce_max(x: jax.Array, window: Pair, strides: Pair, pads: Padding2D) -> jax.Array:
    # The identity must be a concrete (NumPy) scalar: lax only recognises the
    # max/sum monoids, whose gradients exist, for concrete init values. A
    # jnp.array here becomes a tracer under jit and the generic reduce_window
    # it selects has no reverse-mode rule (jit(grad(...)) fails).
    init = np.array(-np.inf, x.dtype)
    return lax.reduce_window(x, init, lax.max, *_window_args(window, strides, pads))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _max_pool(
    x: jax.Array, window: Pair, strides: Pair, pads: Padding2D, x_shape: tuple[int, ...]
) -> jax.Array:
    return _reduce_max(x, window, strides, pads)


def _max_pool_fwd(
    x: jax.Array, window: Pair, strides: Pair, pads: Padding2D, x_shape: tuple[int, ...]
) -> tuple[jax.Array, jax.Array]:
    # Keep each window's winner (an argmax, computed now), not x: see window_max_and_winner.
    return window_max_and_winner(x, window, strides, pads)


def _max_pool_bwd(
    window: Pair,
    strides: Pair,
    pads: Padding2D,
    x_shape: tuple[int, ...],
    winner: jax.Array,
    g: jax.Array,
) -> tuple[jax.Array]:
    return (route_to_winners(winner, g, x_shape, window, strides, pads),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def avg_pool2d(
    x: Any,
    size: IntOrPair = 2,
    stride: IntOrPair | None = None,
    padding: PaddingLike = "valid",
) -> jax.Array:
    """Mean of every window, per channel.

    Padded positions are not counted: a border window averages only the real
    pixels it covers (TensorFlow's convention; PyTorch's default counts them).

    Args:
      x: ``[N, H, W, C]`` feature maps.
      size: window, int or ``(kh, kw)``.
      stride: int or ``(sh, sw)``; ``None`` means ``size``.
      padding: as for ``conv2d``.

    Returns:
      ``[N, H_out, W_out, C]``.
    """
    x, window, strides, pads = _checks.pool_arguments("avg_pool2d", x, size, stride, padding)
    args = _window_args(window, strides, pads)
    sums = lax.reduce_window(x, np.array(0, x.dtype), lax.add, *args)
    return sums / window_counts(x.shape, window, strides, pads, x.dtype)


def global_avg_pool2d(x: Any) -> jax.Array:
    """Average each whole feature map to one number.

    Args:
      x: ``[N, H, W, C]``.

    Returns:
      ``[N, C]``.
    """
    x = _checks.as_float_array("global_avg_pool2d", "x", x)
    _checks.check_rank("global_avg_pool2d", "x", x, "N, H, W, C")
    n, h, w, c = x.shape
    return avg_pool2d(x, (h, w)).reshape(n, c)


def window_counts(
    shape: tuple[int, ...], window: Pair, strides: Pair, pads: Padding2D, dtype: Any
) -> jax.Array | float:
    """How many real (unpadded) pixels each output window covers.

    Returns a scalar when there is no padding, else a ``[1, H_out, W_out, 1]``
    array (computed on static shapes, so XLA folds it to a constant).
    """
    if pads == ((0, 0), (0, 0)):
        return float(window[0] * window[1])
    ones = jnp.ones((1, shape[1], shape[2], 1), dtype)
    args = _window_args(window, strides, pads)
    return lax.reduce_window(ones, np.array(0, dtype), lax.add, *args)


def _window_args(
    window: Pair, strides: Pair, pads: Padding2D
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[Pair, ...]]:
    return (
        (1, window[0], window[1], 1),
        (1, strides[0], strides[1], 1),
        ((0, 0), pads[0], pads[1], (0, 0)),
    )
