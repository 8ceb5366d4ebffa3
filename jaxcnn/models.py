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
from typing import Any

import jax

from jaxcnn import _checks, ops
from jaxcnn.errors import InputError, InputTypeError
from jaxcnn.layers import (
    Conv,
    Dense,
    Flatten,
    Layer,
    MaxPool,
    Params,
    Relu,
    Shape,
    input_shape_of,
    scaled_normal,
    serial,
)

IMAGE_SHAPE = (28, 28, 1)
"""``(H, W, C)`` of one input image for every model here (shapes and MNIST)."""


def shapes_cnn(impl: ops.ConvImpl = "auto", *, input_shape: Shape = IMAGE_SHAPE) -> Layer:
    """The article's squares-vs-circles CNN, 413 parameters.

    ``[N, 28, 28, 1]`` -> conv 2 filters 3x3 "same" (weights ``N(0,1)*0.1``,
    20 params) -> ReLU -> max-pool 2 -> ``[N, 14, 14, 2]`` -> flatten (392) ->
    dense 1 (He init, 393 params) -> ``[N, 1]`` logit of "circle". A binary
    classifier: labels are 0 and 1. ``input_shape`` is the ``(H, W, C)`` of
    one image (the model records it; see :func:`jaxcnn.layers.serial`).
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
        input_shape=input_shape,
    )


def mnist_cnn(
    impl: ops.ConvImpl = "auto", *, classes: int = 10, input_shape: Shape = IMAGE_SHAPE
) -> Layer:
    """The article's MNIST CNN, 225,034 parameters (He init throughout).

    ``[N, 28, 28, 1]`` -> conv 32 3x3 -> ReLU -> pool 2 -> ``[N, 13, 13, 32]``
    -> conv 64 3x3 -> ReLU -> pool 2 -> ``[N, 5, 5, 64]`` -> flatten 1600 ->
    dense 128 -> ReLU -> dense ``classes`` (10) -> ``[N, classes]`` logits.
    ``input_shape`` is the ``(H, W, C)`` of one image.
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
        Dense(_classes("mnist_cnn", classes)),
        kind="mnist_cnn",
        loss="softmax_cross_entropy",
        impl=impl,
        input_shape=input_shape,
    )


def mnist_dense(*, classes: int = 10, input_shape: Shape = IMAGE_SHAPE) -> Layer:
    """The dense-only MNIST net of the previous article: 784 -> 128 ReLU -> 10.

    101,770 parameters; ``[N, 28, 28, 1]`` -> ``[N, classes]`` logits (10).
    """
    return serial(
        Flatten,
        Dense(128),
        Relu,
        Dense(_classes("mnist_dense", classes)),
        kind="mnist_dense",
        loss="softmax_cross_entropy",
        input_shape=input_shape,
    )


def _classes(fn: str, classes: int) -> int:
    classes = _checks.positive_int(fn, "classes", classes)
    if classes < 2:
        raise InputError(f"{fn}: classes must be >= 2 (softmax over the classes), got {classes}")
    return classes


MODELS: dict[str, Callable[..., Layer]] = {
    "shapes": shapes_cnn,
    "mnist-cnn": mnist_cnn,
    "mnist-dense": mnist_dense,
}
"""Command-line model names."""


def get_model(name: str, *, impl: str = "auto", classes: int | None = None) -> Layer:
    """Build a model by its command-line name (``"shapes"``, ``"mnist-cnn"``, ...).

    ``impl`` is the convolution implementation; a model without convolutions
    (``"mnist-dense"``) accepts only the default ``"auto"``. ``classes`` sizes
    the output layer of the MNIST models (default 10); ``"shapes"`` is binary
    (one logit), so it accepts only ``None`` or 2.
    """
    if name not in MODELS:
        raise InputError(f"get_model: name must be one of {sorted(MODELS)}, got {name!r}")
    if impl not in ops.CONV_IMPLS:
        raise InputError(f"get_model: impl must be one of {ops.CONV_IMPLS}, got {impl!r}")
    options: dict[str, Any] = {}
    if name in _BINARY:
        if classes not in (None, 2):
            raise InputError(
                f"get_model: model {name!r} is a binary classifier (one logit; labels 0 and "
                f"1), so classes must be 2, got {classes!r}"
            )
    elif classes is not None:
        options["classes"] = classes
    if name in _WITHOUT_CONV:
        if impl != "auto":
            raise InputError(
                f"get_model: model {name!r} has no convolution, so impl must stay 'auto', "
                f"got {impl!r}"
            )
        return MODELS[name](**options)
    return MODELS[name](impl=impl, **options)  # checked against ops.CONV_IMPLS above


_WITHOUT_CONV = ("mnist-dense",)
_BINARY = ("shapes",)


def loss_name(
    model: Layer, loss: str | None = None, fn: str = "loss_fn", *, or_function: bool = False
) -> str:
    """The name (in :data:`jaxcnn.ops.LOSSES`) of the loss to train ``model`` with.

    ``loss`` when given, else the model's own ``config["loss"]`` (set with
    ``serial(..., loss=NAME)``; the article's models name theirs). Every error
    lists the names and says how to choose one. ``fn`` names the caller;
    ``or_function`` says that the caller also takes a loss function.
    """
    names = sorted(ops.LOSSES)
    if loss is not None:
        if isinstance(loss, str) and loss in ops.LOSSES:
            return loss
        functions = " or a function (logits, labels, weights) -> scalar" if or_function else ""
        error = InputError if isinstance(loss, str) else InputTypeError
        raise error(f"{fn}: loss must be one of {names}{functions}, got {loss!r}")
    name = model.config.get("loss")
    how = (
        f"pass {fn}(..., loss=NAME) or build the model with serial(..., loss=NAME), "
        f"NAME one of {names}"
    )
    if name is None:
        raise InputError(f"{fn}: model {model.kind!r} names no loss (config['loss']); {how}")
    if name not in ops.LOSSES:
        raise InputError(
            f"{fn}: model {model.kind!r} names an unknown loss {name!r} in config['loss']; {how}"
        )
    return str(name)


def loss_fn(model: Layer, fn: str = "loss_fn", *, loss: str | None = None) -> ops.LossFn:
    """The loss function :func:`loss_name` names: ``loss(logits, labels, weights=None)``.

    ``binary_cross_entropy`` for one-logit models (labels 0/1),
    ``softmax_cross_entropy`` for multi-class ones (integer labels).
    """
    return ops.LOSSES[loss_name(model, loss, fn)]


def init_params(
    model: Layer, key: jax.Array, input_shape: Shape | None = None, *, dtype: Any = None
) -> Params:
    """``model.init(key, input_shape, dtype=dtype)[1]`` compiled once per (equal) model and shape.

    The initial parameters of a run, computed by one jitted function rather
    than op by op (the article's models: 1 call instead of dozens of
    dispatches); equal models built by :mod:`jaxcnn.layers` share it.
    ``input_shape`` defaults to the model's recorded one
    (:func:`jaxcnn.layers.input_shape_of`), else ``(-1, 28, 28, 1)``;
    ``dtype`` to float32.
    """
    if input_shape is None:
        input_shape = (-1, *(input_shape_of(model) or IMAGE_SHAPE))
    dtype = None if dtype is None else _checks.float_dtype("init_params", dtype)
    return _jitted_init(model, key, tuple(input_shape), dtype)


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _jitted_init(model: Layer, key: jax.Array, input_shape: Shape, dtype: Any) -> Params:
    if dtype is None:  # a layer built by hand may take no dtype
        return model.init(key, input_shape)[1]
    return model.init(key, input_shape, dtype=dtype)[1]


def count_params(params: Params) -> int:
    """Total number of scalars in a params pytree."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
