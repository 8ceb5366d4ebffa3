"""Which pixels decided: the gradient of a class score with respect to the input image.

The article's ``Conv2D.backward`` stops at the kernel gradient: the first
layer's input is the image, and nothing is learned there. Chaining every
layer's backward formula one step further gives ``dx``, the change in a class
score per change in each pixel (a saliency map, Simonyan et al. 2014).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import _checks
from jaxcnn.errors import InputError, InputTypeError
from jaxcnn.layers import Layer, Params
from jaxcnn.manual._model import _backward, _forward


def input_gradient(model: Layer, params: Params, x: Any, *, target: Any = None) -> jax.Array:
    """``d score / d x`` of each image by the chained manual backward formulas.

    The score of image ``n`` is its logit for class ``target[n]``: with ``K``
    logits ``logits[n, target[n]]``; with one logit (a sigmoid model, logit
    ``z`` = log-odds of class 1) ``z`` for class 1 and ``-z`` for class 0, the
    log-odds of the target class. Images do not interact, so row ``n`` is the
    gradient of image ``n``'s score alone (what ``jax.grad`` of that score
    w.r.t. ``x`` gives).

    Args:
      model: a ``serial`` model built from :mod:`jaxcnn.layers`.
      params: its parameters.
      x: ``[N, H, W, C]`` images.
      target: ``[N]`` integer classes; default the predicted class of each image.

    Returns:
      ``[N, H, W, C]``, shaped and typed like ``x``.
    """
    fn = "input_gradient"
    x = _checks.as_float_array(fn, "x", x)
    _checks.check_rank(fn, "x", x, "N, H, W, C")
    target = None if target is None else _check_target(fn, target, x.shape[0])
    logits, cache = _forward(fn, model, params, x)
    if target is None:
        target = predicted_class(logits)
    else:
        _check_classes(fn, target, max(2, logits.shape[-1]))
    dx, _ = _backward(fn, model, params, cache, score_gradient(logits, target))
    return dx


def predicted_class(logits: jax.Array) -> jax.Array:
    """``[N]`` int32: ``logit > 0`` for one logit, the argmax for several."""
    if logits.shape[-1] == 1:
        return (logits[:, 0] > 0).astype(jnp.int32)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def score_gradient(logits: jax.Array, target: jax.Array) -> jax.Array:
    """``d score / d logits``: one-hot of ``target``; ``+1``/``-1`` for one logit.

    Args:
      logits: ``[N, K]``.
      target: ``[N]`` integer classes (0 or 1 when ``K == 1``).
    """
    if logits.shape[-1] == 1:
        return (2 * target - 1).astype(logits.dtype)[:, None]
    return jax.nn.one_hot(target, logits.shape[-1], dtype=logits.dtype)


def _check_target(fn: str, target: Any, count: int) -> jax.Array:
    target = _checks.as_array(fn, "target", target)
    if not jnp.issubdtype(target.dtype, jnp.integer):
        raise InputTypeError(f"{fn}: target must hold integer classes, got dtype {target.dtype}")
    if target.shape != (count,):
        raise InputError(f"{fn}: target must have shape (N,) = ({count},), got {target.shape}")
    return target


def _check_classes(fn: str, target: jax.Array, classes: int) -> None:
    """Values in ``[0, classes)``, where they are known (not under ``jit``)."""
    if isinstance(target, jax.core.Tracer) or target.size == 0:
        return
    values = np.asarray(target)
    if values.min() < 0 or values.max() >= classes:
        raise InputError(
            f"{fn}: target classes must be in [0, {classes}), got values from "
            f"{values.min()} to {values.max()}"
        )
