"""Which loss training minimises: a name of :data:`jaxcnn.ops.LOSSES`, or a function.

``fit``, ``evaluate`` and ``make_epoch_fn`` take ``loss=``:

* ``None`` (the default): the model's own ``config["loss"]``, set with
  ``serial(..., loss=NAME)`` (the article's models name theirs);
* a name, ``"binary_cross_entropy"`` (one logit, labels 0/1) or
  ``"softmax_cross_entropy"`` (K logits, integer labels);
* a function ``loss(logits, labels, weights) -> scalar``: ``weights`` is 1 for
  real samples and 0 for the padding of a short last batch, so it must return
  the weighted mean ``sum(weights * per_example) / sum(weights)``.

With ``grads="manual"`` a named loss becomes its custom-VJP twin in
:mod:`jaxcnn.manual` (gradient "output - label", the article's formula); a
function has no hand-derived backward, so it is refused there. Compiled
epochs are keyed on the loss: the named losses are module functions (equal
names, one compile), a function by its identity (define it once).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import jax.numpy as jnp

from jaxcnn import manual, models, ops
from jaxcnn.errors import InputError
from jaxcnn.layers import Layer
from jaxcnn.ops import LossFn

Loss: TypeAlias = str | LossFn | None
"""What ``loss=`` accepts: None (the model's), a name of ``ops.LOSSES``, or a function."""


def resolve_loss(fn: str, model: Layer, loss: Loss = None, grads: str = "autodiff") -> LossFn:
    """The function ``loss(logits, labels, weights) -> scalar`` that ``fn`` uses.

    Raises:
      InputError: an unknown name, a model that names no loss (each lists
        the names and how to choose one), or a function with ``grads="manual"``.
    """
    if grads == "manual":
        return manual.loss_fn(model, fn, loss=loss)
    if callable(loss):
        return loss
    return ops.LOSSES[models.loss_name(model, loss, fn, or_function=True)]


def check_scalar(fn: str, value: Any) -> Any:
    """Require the loss of a batch to be one number (checked once, while tracing)."""
    if jnp.shape(value) != ():
        raise InputError(
            f"{fn}: loss must return a scalar (the weighted mean over the batch), "
            f"got shape {jnp.shape(value)}"
        )
    return value
