"""Gradients of the losses with respect to the logits, written out by hand.

Both losses are means over examples (or weighted means ``sum(w * l) / sum(w)``,
as in :mod:`jaxcnn.ops`), so every example's gradient carries the factor
``1 / N`` (or ``w_n / sum(w)``). The article's single-example "output - label"
is the ``N = 1`` case; its training loop divides by the batch size when it
averages the accumulated per-sample gradients.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxcnn import _checks
from jaxcnn.errors import InputError
from jaxcnn.ops._losses import binary_logits, check_class_labels


def sigmoid_bce_backward(logits: Any, labels: Any, *, weights: Any = None) -> jax.Array:
    """Gradient of ``binary_cross_entropy(logits, labels, weights=weights)``.

    ``d loss / d z = (sigmoid(z) - y) / N``: the article's ``output - label``,
    averaged. With weights, example ``n`` gets ``w_n (sigmoid(z) - y) / sum(w)``.
    If each example has ``m`` logits (``[N, m]``), divide by ``m`` as well.

    Args:
      logits: ``[N]`` or ``[N, 1]`` (or labels' shape).
      labels: ``[N]``, values in [0, 1].
      weights: optional ``[N]`` per-example weights.

    Returns:
      the gradient, shaped like ``logits``.
    """
    fn = "sigmoid_bce_backward"
    logits = _checks.as_float_array(fn, "logits", logits)
    labels = _checks.as_array(fn, "labels", labels)
    z = binary_logits(fn, logits, labels)
    diff = jax.nn.sigmoid(z) - labels.astype(z.dtype)
    per_example = diff.size // diff.shape[0] if diff.shape[0] else 1
    return (diff * example_scale(fn, weights, diff, per_example)).reshape(logits.shape)


def softmax_ce_backward(logits: Any, labels: Any, *, weights: Any = None) -> jax.Array:
    """Gradient of ``softmax_cross_entropy(logits, labels, weights=weights)``.

    ``d loss / d z = (softmax(z) - one_hot(y)) / N`` (``w_n / sum(w)`` per
    example with weights): the multi-class "output - label".

    Args:
      logits: ``[N, K]``.
      labels: ``[N]`` integers in ``[0, K)``.
      weights: optional ``[N]`` per-example weights.

    Returns:
      ``[N, K]``.
    """
    fn = "softmax_ce_backward"
    logits = _checks.as_float_array(fn, "logits", logits)
    labels = _checks.as_array(fn, "labels", labels)
    check_class_labels(fn, logits, labels)
    one_hot = jax.nn.one_hot(labels, logits.shape[1], dtype=logits.dtype)
    diff = jax.nn.softmax(logits, axis=-1) - one_hot
    return diff * example_scale(fn, weights, diff, 1)


def example_scale(fn: str, weights: Any, like: jax.Array, per_example: int) -> jax.Array:
    """The factor each logit's gradient carries in a (weighted) mean over examples.

    Each example's loss is the mean of its ``per_example`` terms, so a term's
    factor is ``1 / (N * per_example)``, or ``w_n / (per_example * sum(w))``.

    Args:
      fn: calling function's name, for errors.
      weights: ``None`` or ``[N]`` per-example weights.
      like: ``[N, ...]`` array whose rank and dtype the factor takes.
      per_example: how many loss terms one example averages (1 for softmax).

    Returns:
      a scalar, or ``[N, 1, ...]`` (the rank of ``like``).
    """
    n = like.shape[0]
    if weights is None:
        return jnp.asarray(1.0 / max(n * per_example, 1), like.dtype)
    weights = _checks.as_float_array(fn, "weights", weights)
    if weights.shape != (n,):
        raise InputError(f"{fn}: weights must have shape (N,) = ({n},), got {tuple(weights.shape)}")
    weights = weights.astype(like.dtype)
    scale = weights / (jnp.sum(weights) * per_example)
    return scale.reshape((n,) + (1,) * (like.ndim - 1))
