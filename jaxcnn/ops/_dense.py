"""Flatten, dense (fully connected) layer and the activations."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn import _checks
from jaxcnn.errors import InputError


def flatten(x: Any) -> jax.Array:
    """Line every channel up into one vector, channel-major as in the article.

    All ``H * W`` values of channel 0 come first, then channel 1, ...:
    ``out[n, c * H * W + r * W + col] = x[n, r, col, c]``.

    Args:
      x: ``[N, H, W, C]``.

    Returns:
      ``[N, C * H * W]``.
    """
    x = _checks.as_array("flatten", "x", x)
    _checks.check_rank("flatten", "x", x, "N, H, W, C")
    n = x.shape[0]
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(n, -1)


def unflatten(flat: Any, shape: tuple[int, int, int]) -> jax.Array:
    """Inverse of :func:`flatten`: ``[N, C*H*W] -> [N, H, W, C]``.

    Args:
      flat: ``[N, C * H * W]``.
      shape: ``(H, W, C)`` of one example.
    """
    flat = _checks.as_array("unflatten", "flat", flat)
    _checks.check_rank("unflatten", "flat", flat, "N, D")
    h, w, c = shape
    if flat.shape[1] != c * h * w:
        raise InputError(
            f"unflatten: flat must have C*H*W = {c * h * w} columns for shape "
            f"{shape}, got shape {tuple(flat.shape)}"
        )
    return jnp.transpose(flat.reshape(flat.shape[0], c, h, w), (0, 2, 3, 1))


def dense(x: Any, w: Any, b: Any = None) -> jax.Array:
    """Fully connected layer ``y = x @ w + b``.

    Args:
      x: ``[N, n_in]``.
      w: ``[n_in, n_out]``.
      b: optional ``[n_out]``.

    Returns:
      ``[N, n_out]``.
    """
    x, w = _checks.dense_arguments("dense", x, w)
    y = jnp.matmul(x, w, precision=lax.Precision.HIGHEST)
    b = _checks.bias("dense", b, x, w.shape[1], "n_out")
    return y if b is None else y + b.reshape(1, -1)


def relu(x: Any) -> jax.Array:
    """``max(x, 0)`` elementwise; its gradient at 0 is 0 (the article's ``z > 0``)."""
    return jax.nn.relu(_checks.as_float_array("relu", "x", x))


def sigmoid(x: Any) -> jax.Array:
    """``1 / (1 + exp(-x))`` elementwise, computed without overflow."""
    return jax.nn.sigmoid(_checks.as_float_array("sigmoid", "x", x))


def softmax(x: Any, axis: int = -1) -> jax.Array:
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the max for stability."""
    return jax.nn.softmax(_checks.as_float_array("softmax", "x", x), axis=axis)
