"""The article's three models, as ``(init_fn, apply_fn)`` pairs returning logits.

>>> init, apply = shapes_cnn()
>>> _, params = init(jax.random.key(0), (-1, *IMAGE_SHAPE))
>>> count_params(params)
413
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax

from jaxcnn import ops
from jaxcnn.errors import InputError
from jaxcnn.layers import (
    Conv,
    Dense,
    Flatten,
    Layer,
    MaxPool,
    Params,
    Relu,
    Shape,
    scaled_normal,
    serial,
)

IMAGE_SHAPE = (28, 28, 1)
"""``(H, W, C)`` of one input image for every model here (shapes and MNIST)."""


def shapes_cnn(impl: ops.ConvImpl = "auto") -> Layer:
    """The article's squares-vs-circles CNN, 413 parameters.

    ``[N, 28, 28, 1]`` -> conv 2 filters 3x3 "same" (weights ``N(0,1)*0.1``,
    20 params) -> ReLU -> max-pool 2 -> ``[N, 14, 14, 2]`` -> flatten (392) ->
    dense 1 (He init, 393 params) -> ``[N, 1]`` logit of "circle".
    """
    return serial(
        Conv(2, 3, padding="same", impl=impl, w_init=scaled_normal(0.1)),
        Relu,
        MaxPool(2),
        Flatten,
        Dense(1),
        kind="shapes_cnn",
        loss="binary_cross_entropy",
        impl=impl,
    )


def mnist_cnn(impl: ops.ConvImpl = "auto") -> Layer:
    """The article's MNIST CNN, 225,034 parameters (He init throughout).

    ``[N, 28, 28, 1]`` -> conv 32 3x3 -> ReLU -> pool 2 -> ``[N, 13, 13, 32]``
    -> conv 64 3x3 -> ReLU -> pool 2 -> ``[N, 5, 5, 64]`` -> flatten 1600 ->
    dense 128 -> ReLU -> dense 10 -> ``[N, 10]`` logits.
    """
    return serial(
        Conv(32, 3, impl=impl),
        Relu,
        MaxPool(2),
        Conv(64, 3, impl=impl),
        Relu,
        MaxPool(2),
        Flatten,
        Dense(128),
        Relu,
        Dense(10),
        kind="mnist_cnn",
        loss="softmax_cross_entropy",
        impl=impl,
    )


def mnist_dense() -> Layer:
    """The dense-only MNIST net of the previous article: 784 -> 128 ReLU -> 10.

    101,770 parameters; ``[N, 28, 28, 1]`` -> ``[N, 10]`` logits.
    """
    return serial(
        Flatten,
        Dense(128),
        Relu,
        Dense(10),
        kind="mnist_dense",
        loss="softmax_cross_entropy",
    )


MODELS: dict[str, Callable[..., Layer]] = {
    "shapes": shapes_cnn,
    "mnist-cnn": mnist_cnn,
    "mnist-dense": mnist_dense,
}
"""Command-line model names."""


def get_model(name: str, *, impl: str = "auto") -> Layer:
    """Build a model by its command-line name (``"shapes"``, ``"mnist-cnn"``, ...).

    ``impl`` is the convolution implementation; a model without convolutions
    (``"mnist-dense"``) accepts only the default ``"auto"``.
    """
    if name not in MODELS:
        raise InputError(f"get_model: name must be one of {sorted(MODELS)}, got {name!r}")
    if impl not in ops.CONV_IMPLS:
        raise InputError(f"get_model: impl must be one of {ops.CONV_IMPLS}, got {impl!r}")
    if name in _WITHOUT_CONV:
        if impl != "auto":
            raise InputError(
                f"get_model: model {name!r} has no convolution, so impl must stay 'auto', "
                f"got {impl!r}"
            )
        return MODELS[name]()
    return MODELS[name](impl=impl)  # checked against ops.CONV_IMPLS above


_WITHOUT_CONV = ("mnist-dense",)


def loss_fn(model: Layer, fn: str = "loss_fn") -> ops.LossFn:
    """The loss a model is trained with, from ``model.config["loss"]``.

    ``binary_cross_entropy`` for one-logit models (labels 0/1),
    ``softmax_cross_entropy`` for multi-class ones (integer labels); the
    names are those of :data:`jaxcnn.ops.LOSSES`. ``fn`` names the caller in
    errors.
    """
    name = model.config.get("loss")
    if name not in ops.LOSSES:
        raise InputError(
            f"{fn}: model {model.kind!r} names no known loss in config['loss'] "
            f"(expected one of {sorted(ops.LOSSES)}; build it with "
            f"serial(..., loss=NAME) or pass loss=NAME), got {name!r}"
        )
    return ops.LOSSES[name]


def init_params(model: Layer, key: jax.Array, input_shape: Shape = (-1, *IMAGE_SHAPE)) -> Params:
    """``model.init(key, input_shape)[1]`` compiled once per (equal) model and shape.

    The initial parameters of a run, computed by one jitted function rather
    than op by op (the article's models: 1 call instead of dozens of
    dispatches); equal models built by :mod:`jaxcnn.layers` share it.
    """
    return _jitted_init(model, key, tuple(input_shape))


@functools.partial(jax.jit, static_argnums=(0, 2))
def _jitted_init(model: Layer, key: jax.Array, input_shape: Shape) -> Params:
    return model.init(key, input_shape)[1]


def count_params(params: Params) -> int:
    """Total number of scalars in a params pytree."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
