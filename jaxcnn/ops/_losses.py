"""Losses on logits (never on probabilities), stable for logits of any size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import _checks
from jaxcnn.errors import InputError, InputTypeError


def binary_cross_entropy(logits: Any, labels: Any, weights: Any = None) -> jax.Array:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against 0/1 labels.

    ``-y log sigmoid(z) - (1 - y) log(1 - sigmoid(z))``, written with
    ``log_sigmoid`` so that logits of +-1e4 give a finite loss and gradient.
    Its gradient in ``z`` is ``(sigmoid(z) - y) / N``, the article's
    "output - label".

    Args:
      logits: ``[N]`` or ``[N, 1]``.
      labels: ``[N]`` (or the same shape as ``logits``), values in [0, 1].
      weights: optional ``[N]`` per-example weights; the result is then
        ``sum(weights * loss) / sum(weights)`` (zero weights mask padding).

    Returns:
      scalar (weighted) mean loss.
    """
    fn = "binary_cross_entropy"
    logits = _checks.as_float_array(fn, "logits", logits)
    labels = _checks.as_array(fn, "labels", labels)
    z = binary_logits(fn, logits, labels)
    return _weighted_mean(fn, bce_terms(z, labels), weights)


def softmax_cross_entropy(logits: Any, labels: Any, weights: Any = None) -> jax.Array:
    """Mean cross-entropy of ``softmax(logits)`` against integer class labels.

    ``-log softmax(z)[y]`` via ``log_softmax`` (max-shifted, so stable).

    Args:
      logits: ``[N, K]``.
      labels: ``[N]`` integers in ``[0, K)``.
      weights: optional ``[N]`` per-example weights, as for
        :func:`binary_cross_entropy`.

    Returns:
      scalar (weighted) mean loss.
    """
    fn = "softmax_cross_entropy"
    logits = _checks.as_float_array(fn, "logits", logits)
    labels = _checks.as_array(fn, "labels", labels)
    check_class_labels(fn, logits, labels)
    return _weighted_mean(fn, softmax_ce_terms(logits, labels), weights)


LossFn: TypeAlias = Callable[..., jax.Array]
"""``loss(logits, labels, weights=None) -> scalar``: the (weighted) mean loss of a batch.

Training calls ``loss(logits, labels, weights)`` with ``weights`` 1 for real
samples and 0 for the padding of a short last batch, so a loss written by
hand must return ``sum(weights * per_example) / sum(weights)`` to ignore it.
"""

LOSSES: dict[str, LossFn] = {
    "binary_cross_entropy": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
}
"""Every loss by name: the names a model's ``config["loss"]`` and ``fit(loss=...)`` accept."""


def binary_logits(fn: str, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``logits`` in ``labels``' shape (``[N, 1]`` squeezed), after checking the labels are real."""
    z = _match_label_shape(fn, logits, labels)
    if jnp.issubdtype(labels.dtype, jnp.complexfloating):
        raise InputTypeError(f"{fn}: labels must be real (0/1), got dtype {labels.dtype}")
    return z


def bce_terms(z: jax.Array, labels: jax.Array) -> jax.Array:
    """Each logit's ``-y log sigmoid(z) - (1 - y) log sigmoid(-z)``, shaped like ``z``."""
    y = labels.astype(z.dtype)
    return -(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z))


def check_class_labels(fn: str, logits: jax.Array, labels: jax.Array) -> None:
    """``logits [N, K]`` and integer ``labels [N]`` in ``[0, K)`` (when concrete)."""
    _checks.check_rank(fn, "logits", logits, "N, K")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise InputTypeError(f"{fn}: labels must be integer class ids, got {labels.dtype}")
    if labels.shape != logits.shape[:1]:
        raise InputError(
            f"{fn}: labels must have shape (N,) = ({logits.shape[0]},), got {tuple(labels.shape)}"
        )
    _check_label_range(fn, labels, logits.shape[1])


def softmax_ce_terms(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Each example's ``-log softmax(z)[y]`` (max-shifted, so stable): ``[N]``."""
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=1, mode="fill")[:, 0]


def _weighted_mean(fn: str, losses: jax.Array, weights: Any) -> jax.Array:
    """``mean(losses)``, or ``sum(weights * losses) / sum(weights)``."""
    if weights is None:
        return jnp.mean(losses)
    weights = _checks.as_float_array(fn, "weights", weights)
    if weights.shape != losses.shape[:1]:
        raise InputError(
            f"{fn}: weights must have shape (N,) = ({losses.shape[0]},), got {tuple(weights.shape)}"
        )
    per_example = losses.reshape(losses.shape[0], -1).mean(axis=1)
    weights = weights.astype(losses.dtype)
    return jnp.sum(weights * per_example) / jnp.sum(weights)


def _match_label_shape(fn: str, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Squeeze ``[N, 1]`` logits to ``[N]``; refuse any silent broadcasting."""
    if logits.shape == labels.shape:
        return logits
    if logits.shape == (*labels.shape, 1):
        return logits.reshape(labels.shape)
    raise InputError(
        f"{fn}: labels must have the shape of logits ({tuple(logits.shape)}) or "
        f"logits must be labels' shape plus a trailing 1, got labels shape "
        f"{tuple(labels.shape)}"
    )


def _check_label_range(fn: str, labels: jax.Array, classes: int) -> None:
    """Check concrete labels lie in ``[0, classes)``; traced ones become NaN loss."""
    if isinstance(labels, jax.core.Tracer):
        return
    values = np.asarray(labels)
    if values.size and (values.min() < 0 or values.max() >= classes):
        raise InputError(
            f"{fn}: labels must lie in [0, {classes}), got values from "
            f"{values.min()} to {values.max()}"
        )
