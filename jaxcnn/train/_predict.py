"""Class probabilities for new images: ``predict(model, params, images)``.

A model built by :func:`jaxcnn.layers.serial` with ``input_shape=(H, W, C)``
(the article's models record ``(28, 28, 1)``) says which images it takes, so
one image needs no batch axis and an image of another shape is refused with
an error naming that shape, before anything is traced, instead of failing
deep inside a dense layer (``fit`` and ``evaluate`` check the same in
:func:`jaxcnn.train.check_dataset`).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn import _checks
from jaxcnn.errors import InputError
from jaxcnn.layers import Layer, Params, Shape, input_shape_of
from jaxcnn.train._dataset import check_images
from jaxcnn.train._epoch import batch_plan
from jaxcnn.train._xla_options import EPOCH_COMPILER_OPTIONS


def predict(model: Layer, params: Params, images: Any, *, batch_size: int = 1000) -> jax.Array:
    """Class probabilities of ``model`` for one image or a batch.

    Runs one jitted ``lax.scan`` over padded batches of ``min(batch_size, N)``
    images, as :func:`jaxcnn.train.evaluate` does: one compile per model,
    batch size and input shape.

    Args:
      model: a model that records its input shape ``(H, W, C)`` (built by
        ``serial(..., input_shape=...)``; the named models do), returning
        logits ``[N, K]``.
      params: its parameters; the images are cast to their floating dtype.
      images: one image ``[H, W]`` (when ``C == 1``) or ``[H, W, C]``, or a
        batch ``[N, H, W, C]``, floating, scaled as in training.
      batch_size: images per forward pass (memory, not results).

    Returns:
      ``[N, K]`` probabilities, each row summing to 1: the softmax of ``K > 1``
      logits, or ``[1 - p, p]`` with ``p = sigmoid(logit)`` for a one-logit
      model (``K = 2``). ``N = 1`` for one image.

    Raises:
      InputError: a model without a recorded input shape, or images of
        another shape (the message names the shape the model was built for).
    """
    recorded = input_shape_of(model)
    if recorded is None:
        raise InputError(
            f"predict: model {model.kind!r} records no input shape; build it with "
            f"serial(..., input_shape=(H, W, C)) (the named models record (28, 28, 1))"
        )
    x = _as_batch(_checks.as_float_array("predict", "images", images), recorded)
    x = check_images("predict", "images", x)  # finite, at least one
    batch_size = _checks.positive_int("predict", "batch_size", batch_size)
    leaves = jax.tree.leaves(params)
    x = x.astype(leaves[0].dtype) if leaves else x
    return _predict_jit(params, x, model=model, batch_size=min(batch_size, x.shape[0]))


def probabilities(logits: jax.Array) -> jax.Array:
    """``[N, K]`` logits -> softmax; ``[N, 1]`` -> ``[1 - p, p]`` with ``p = sigmoid``.

    ``1 - p`` is computed as ``sigmoid(-logit)``, exact for logits of any size.
    """
    if logits.ndim != 2:
        raise InputError(
            f"predict: the model must return logits [N, K], got shape {tuple(logits.shape)}"
        )
    if logits.shape[1] == 1:
        return jnp.concatenate([jax.nn.sigmoid(-logits), jax.nn.sigmoid(logits)], axis=1)
    return jax.nn.softmax(logits, axis=1)


def _as_batch(images: jax.Array, recorded: Shape) -> jax.Array:
    shape = tuple(images.shape)
    if shape[1:] == recorded and images.ndim == len(recorded) + 1:
        return images
    if shape == recorded:
        return images[None]
    if recorded[-1] == 1 and shape == recorded[:-1]:
        return images[None, ..., None]
    one = f"[{_dims(recorded[:-1])}] or " if recorded[-1] == 1 else ""
    raise InputError(
        f"predict: images must be one image {one}[{_dims(recorded)}], or a batch "
        f"[N, {_dims(recorded)}], for this model (built for input shape {recorded}), "
        f"got shape {shape}"
    )


def _dims(shape: Shape) -> str:
    return ", ".join(str(size) for size in shape)


@functools.partial(
    jax.jit, static_argnames=("model", "batch_size"), compiler_options=EPOCH_COMPILER_OPTIONS
)
def _predict_jit(params: Params, images: jax.Array, *, model: Layer, batch_size: int) -> jax.Array:
    n = images.shape[0]
    index, _ = batch_plan(n, batch_size)

    def body(carry: None, batch: jax.Array) -> tuple[None, jax.Array]:
        return carry, probabilities(model.apply(params, images[batch]))

    _, probs = lax.scan(body, None, index)
    return probs.reshape(-1, probs.shape[-1])[:n]
