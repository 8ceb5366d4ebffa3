"""Backward passes of ReLU, flatten and the dense layer, written out by hand."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn import _checks

_HIGHEST = lax.Precision.HIGHEST


def relu_backward(z: Any, g: Any) -> jax.Array:
    """Gradient of ``relu(z)``: ``g`` where ``z > 0``, else 0 (also at ``z == 0``).

    The article's ``upstream_gradient * (self.z > 0)``.

    Args:
      z: the forward input, any shape.
      g: upstream gradient, same shape and dtype as ``z``.

    Returns:
      ``dz``, the shape of ``z``.
    """
    fn = "relu_backward"
    z = _checks.as_float_array(fn, "z", z)
    g = _checks.as_float_array(fn, "g", g)
    _checks.check_grad_shape(fn, g, z.shape)
    _checks.check_same_dtype(fn, z=z, g=g)
    return jnp.where(z > 0, g, jnp.zeros((), g.dtype))


def flatten_backward(g: Any, x_shape: Sequence[int]) -> jax.Array:
    """Gradient of the channel-major ``flatten``: un-flatten the same way.

    ``flatten`` put ``x[n, r, c, ch]`` at column ``ch * H * W + r * W + c``,
    so ``dx[n, r, c, ch] = g[n, ch * H * W + r * W + c]``: reshape to
    ``[N, C, H, W]``, then move channels last. (The article's
    ``grad.reshape(14, 14, 2)`` reads the columns as ``(r * W + c) * C + ch``,
    the channels-last order its forward pass did not use.)

    Args:
      g: ``[N, C * H * W]``.
      x_shape: ``(N, H, W, C)`` of the forward input.

    Returns:
      ``[N, H, W, C]``.
    """
    fn = "flatten_backward"
    g = _checks.as_array(fn, "g", g)
    _checks.check_rank(fn, "g", g, "N, D")
    n, h, w, c = _checks.image_shape(fn, x_shape)
    _checks.check_grad_shape(fn, g, (n, c * h * w))
    return jnp.transpose(g.reshape(n, c, h, w), (0, 2, 3, 1))


def dense_backward(x: Any, w: Any, g: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gradients of ``dense(x, w, b) = x @ w + b``.

    ``dx = g @ w.T``, ``dw = x.T @ g`` (the article's ``np.outer(grad, x)``
    summed over the batch, transposed to our ``[n_in, n_out]`` layout),
    ``db = sum_n g``.

    Args:
      x: ``[N, n_in]``.
      w: ``[n_in, n_out]``.
      g: ``[N, n_out]``.

    Returns:
      ``(dx, dw, db)`` shaped ``[N, n_in]``, ``[n_in, n_out]``, ``[n_out]``.
    """
    fn = "dense_backward"
    x, w = _checks.dense_arguments(fn, x, w)
    g = _checks.upstream_gradient(fn, g, x, "N, n_out", (x.shape[0], w.shape[1]))
    dx = jnp.matmul(g, w.T, precision=_HIGHEST)
    dw = jnp.matmul(x.T, g, precision=_HIGHEST)
    return dx, dw, jnp.sum(g, axis=0)
