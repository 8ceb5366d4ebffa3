"""The two losses with the hand-written "output - label" gradients as their VJPs.

Besides the logits' gradient (:func:`sigmoid_bce_backward`,
:func:`softmax_ce_backward`), the rules also return the exact gradients with
respect to float labels and to the per-example weights, so differentiating
through any argument is correct, not silently zero:

* BCE in the label: ``d l / d y = log sigmoid(-z) - log sigmoid(z) = -z``;
* weighted mean in the weights: ``d/dw_n [sum(w l) / sum(w)] = (l_n - L) / sum(w)``.

Integer labels get no gradient (``None``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxcnn import _checks, ops
from jaxcnn.manual._losses import example_scale, sigmoid_bce_backward, softmax_ce_backward
from jaxcnn.ops._losses import bce_terms, binary_logits, softmax_ce_terms


def binary_cross_entropy(logits: Any, labels: Any, weights: Any = None) -> jax.Array:
    """``ops.binary_cross_entropy`` whose gradient is :func:`sigmoid_bce_backward`.

    Args:
      logits: ``[N]`` or ``[N, 1]``.
      labels: ``[N]``, values in [0, 1].
      weights: optional ``[N]`` per-example weights.

    Returns:
      scalar (weighted) mean loss.
    """
    fn = "binary_cross_entropy"
    logits = _checks.as_float_array(fn, "logits", logits)
    labels = _checks.as_array(fn, "labels", labels)
    weights = None if weights is None else _checks.as_float_array(fn, "weights", weights)
    return _bce(logits, labels, weights)


@jax.custom_vjp
def _bce(logits: jax.Array, labels: jax.Array, weights: Any) -> jax.Array:
    return ops.binary_cross_entropy(logits, labels, weights=weights)


def _bce_fwd(logits: jax.Array, labels: jax.Array, weights: Any) -> tuple[jax.Array, Any]:
    loss = ops.binary_cross_entropy(logits, labels, weights=weights)
    return loss, (logits, labels, weights, loss)


def _bce_bwd(res: Any, g: jax.Array) -> Any:
    logits, labels, weights, loss = res
    fn = "binary_cross_entropy"
    dlogits = g * sigmoid_bce_backward(logits, labels, weights=weights)
    z = binary_logits(fn, logits, labels)
    dlabels = None
    if jnp.issubdtype(labels.dtype, jnp.floating):
        per_example = z.size // z.shape[0] if z.shape[0] else 1
        dlabels = (-g * z * example_scale(fn, weights, z, per_example)).astype(labels.dtype)
    return dlogits, dlabels, _weights_grad(weights, bce_terms(z, labels), loss, g)


_bce.defvjp(_bce_fwd, _bce_bwd)


def softmax_cross_entropy(logits: Any, labels: Any, weights: Any = None) -> jax.Array:
    """``ops.softmax_cross_entropy`` whose gradient is :func:`softmax_ce_backward`.

    Args:
      logits: ``[N, K]``.
      labels: ``[N]`` integers in ``[0, K)``.
      weights: optional ``[N]`` per-example weights.

    Returns:
      scalar (weighted) mean loss.
    """
    fn = "softmax_cross_entropy"
    logits = _checks.as_float_array(fn, "logits", logits)
    labels = _checks.as_array(fn, "labels", labels)
    weights = None if weights is None else _checks.as_float_array(fn, "weights", weights)
    return _softmax_ce(logits, labels, weights)


@jax.custom_vjp
def _softmax_ce(logits: jax.Array, labels: jax.Array, weights: Any) -> jax.Array:
    return ops.softmax_cross_entropy(logits, labels, weights=weights)


def _softmax_ce_fwd(logits: jax.Array, labels: jax.Array, weights: Any) -> tuple[jax.Array, Any]:
    loss = ops.softmax_cross_entropy(logits, labels, weights=weights)
    return loss, (logits, labels, weights, loss)


def _softmax_ce_bwd(res: Any, g: jax.Array) -> Any:
    logits, labels, weights, loss = res
    dlogits = g * softmax_ce_backward(logits, labels, weights=weights)
    losses = softmax_ce_terms(logits, labels)
    return dlogits, None, _weights_grad(weights, losses, loss, g)


_softmax_ce.defvjp(_softmax_ce_fwd, _softmax_ce_bwd)


def _weights_grad(weights: Any, losses: jax.Array, loss: jax.Array, g: jax.Array) -> Any:
    """``g (l_n - L) / sum(w)``: how the weighted mean moves with each weight."""
    if weights is None:
        return None
    per_example = losses.reshape(losses.shape[0], -1).mean(axis=1)
    total = jnp.sum(weights.astype(losses.dtype))
    return (g * (per_example - loss) / total).astype(weights.dtype)
