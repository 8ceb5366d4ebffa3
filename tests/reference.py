"""Plain-lax forward passes that JAX differentiates itself: the second gradient reference.

What it is for: ``jax.grad``/``jax.vjp`` of these functions is JAX's own
derivation of XLA's convolution and ``reduce_window``, sharing no code with
jaxcnn (not its padding rule, window helpers, forward kernels or custom VJPs),
so it checks jaxcnn's hand-written gradients where the NumPy loops of
:mod:`tests.oracle` would be too slow: whole models (:func:`plain_model`),
float32 training runs, MNIST-sized layers. Every single-op gradient test
compares against :mod:`tests.oracle` (float64 loops); this module is never
the only reference of a backward formula.

Only the layer *configurations* (kernel sizes, strides, paddings as the
layers recorded them) come from jaxcnn; everything computed from them is
written here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tests import oracle

Apply = Callable[[Any, jax.Array], jax.Array]


def conv2d(x: jax.Array, w: jax.Array, b: Any, stride: Any, padding: Any) -> jax.Array:
    """``lax.conv_general_dilated`` (NHWC, HWIO), padding resolved by :mod:`tests.oracle`."""
    pads = oracle.padding_pairs(padding, (w.shape[0], w.shape[1]))
    y = lax.conv_general_dilated(
        x,
        w,
        oracle.pair(stride),
        pads,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,
    )
    return y if b is None else y + b.reshape(1, 1, 1, -1)


def max_pool2d(x: jax.Array, size: Any, stride: Any = None, padding: Any = "valid") -> jax.Array:
    """``lax.reduce_window(max)`` with ``-inf`` padding; ``stride=None`` means ``size``."""
    window = oracle.pair(size)
    strides = oracle.pair(size if stride is None else stride)
    pads = oracle.padding_pairs(padding, window)
    # A concrete NumPy identity: lax then recognises the max monoid, whose gradient exists.
    init = np.array(-np.inf, x.dtype)
    return lax.reduce_window(
        x, init, lax.max, (1, *window, 1), (1, *strides, 1), ((0, 0), *pads, (0, 0))
    )


def avg_pool2d(x: jax.Array, size: Any, stride: Any = None, padding: Any = "valid") -> jax.Array:
    """Window sums over the counts of real pixels, both by ``reduce_window(add)``."""
    window = oracle.pair(size)
    args = (
        (1, *window, 1),
        (1, *oracle.pair(size if stride is None else stride), 1),
        ((0, 0), *oracle.padding_pairs(padding, window), (0, 0)),
    )
    zero = np.array(0, x.dtype)
    sums = lax.reduce_window(x, zero, lax.add, *args)
    counts = lax.reduce_window(jnp.ones_like(x), zero, lax.add, *args)
    return sums / counts


def flatten(x: jax.Array) -> jax.Array:
    """Channel-major: ``[N, H, W, C] -> [N, C*H*W]``."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


def binary_cross_entropy(logits: jax.Array, labels: jax.Array, weights: Any = None) -> jax.Array:
    """Mean of ``-y log sigmoid(z) - (1 - y) log sigmoid(-z)`` per example, then over examples."""
    z = logits.reshape(labels.shape) if logits.size == labels.size else logits
    y = labels.astype(z.dtype)
    terms = -(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z))
    return _weighted_mean(terms.reshape(terms.shape[0], -1).mean(axis=1), weights)


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array, weights: Any = None) -> jax.Array:
    """Mean of ``-log softmax(z)[y]``."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]
    return _weighted_mean(-picked, weights)


def _weighted_mean(values: jax.Array, weights: Any) -> jax.Array:
    if weights is None:
        return jnp.mean(values)
    weights = weights.astype(values.dtype)
    return jnp.sum(weights * values) / jnp.sum(weights)


LOSSES: dict[str, Callable[..., jax.Array]] = {
    "binary_cross_entropy": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
}


def plain_model(model: Any) -> Apply:
    """``apply(params, x)`` of a ``serial`` model rebuilt from the functions above.

    Same parameters, same outputs as ``model.apply``; no custom VJP anywhere,
    so ``jax.grad`` of it is JAX's own derivation throughout.
    """
    if model.children:
        names = tuple(model.config["names"])
        children = tuple(plain_model(child) for child in model.children)

        def apply(params: Any, x: jax.Array) -> jax.Array:
            for name, child in zip(names, children, strict=True):
                x = child(params[name], x)
            return x

        return apply
    return _LEAVES[model.kind](model.config)


def plain_loss(model: Any) -> Callable[..., jax.Array]:
    """The model's loss (``config["loss"]``), written here: ``loss(logits, labels, weights)``."""
    return LOSSES[model.config["loss"]]


def _conv(cfg: Any) -> Apply:
    return lambda p, x: conv2d(x, p["w"], p["b"], cfg["stride"], cfg["padding"])


def _pool(pool: Callable[..., jax.Array]) -> Callable[[Any], Apply]:
    return lambda cfg: lambda p, x: pool(x, cfg["size"], cfg["stride"], cfg.get("padding", "valid"))


_LEAVES: dict[str, Callable[[Any], Apply]] = {
    "conv": _conv,
    "dense": lambda cfg: (
        lambda p, x: jnp.dot(x, p["w"], precision=lax.Precision.HIGHEST) + p["b"].reshape(1, -1)
    ),
    "max_pool": _pool(max_pool2d),
    "avg_pool": _pool(avg_pool2d),
    "global_avg_pool": lambda cfg: lambda p, x: jnp.mean(x, axis=(1, 2)),
    # where, not maximum: the gradient at 0 is 0 (the article's z > 0), not maximum's 1/2.
    "relu": lambda cfg: lambda p, x: jnp.where(x > 0, x, jnp.zeros((), x.dtype)),
    "flatten": lambda cfg: lambda p, x: flatten(x),
}
