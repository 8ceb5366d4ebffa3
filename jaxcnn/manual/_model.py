"""Whole-model backpropagation from the manual pieces, and manual-gradient models.

:func:`model_grads` is the article's ``forward`` / ``backward`` pair for any
``serial`` stack of Conv, Dense, MaxPool, AvgPool, GlobalAvgPool, Relu and
Flatten: a forward pass that keeps every layer's input and output (the
CS231n "cache"), the loss gradient "output - label", then every layer's
backward formula in reverse order, collecting parameter gradients into a
pytree shaped like ``params``.

:func:`with_manual_grads` instead rebuilds the model from the custom-VJP ops,
so that ``jax.grad`` of any loss through it runs the same manual formulas.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeAlias

import jax

from jaxcnn import models, ops
from jaxcnn.errors import InputError
from jaxcnn.layers import Layer, Params
from jaxcnn.manual import _vjp as vjp
from jaxcnn.manual import _vjp_losses as vjp_losses
from jaxcnn.manual._conv import conv2d_backward
from jaxcnn.manual._dense import dense_backward, flatten_backward, relu_backward
from jaxcnn.manual._losses import sigmoid_bce_backward, softmax_ce_backward
from jaxcnn.manual._pool import (
    avg_pool2d_backward,
    global_avg_pool2d_backward,
    max_pool2d_backward,
)

Config: TypeAlias = Any
# (config, params, x, y, g) -> (dx, param_grads)
LayerBackward: TypeAlias = Callable[
    [Config, Params, jax.Array, jax.Array, jax.Array], tuple[jax.Array, Params]
]


def model_grads(
    model: Layer,
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    weights: Any = None,
    loss: str | None = None,
) -> Params:
    """Gradient of ``loss_fn(model)(apply(params, x), y)`` by chained manual formulas.

    Args:
      model: a ``serial`` model (e.g. from :mod:`jaxcnn.models`).
      params: its parameters.
      x: ``[N, H, W, C]`` images.
      y: ``[N]`` labels (0/1 for BCE, class ids for softmax cross-entropy).
      weights: optional ``[N]`` per-example loss weights.
      loss: a name in :data:`jaxcnn.ops.LOSSES` (default: the model's
        ``config["loss"]``); only named losses have a manual backward.

    Returns:
      a pytree shaped like ``params``.
    """
    return model_loss_and_grads(model, params, x, y, weights=weights, loss=loss)[1]


def model_loss_and_grads(
    model: Layer,
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    weights: Any = None,
    loss: str | None = None,
) -> tuple[jax.Array, Params]:
    """``(loss, grads)`` in one forward and one manual backward pass.

    Args and returns as for :func:`model_grads`, plus the scalar loss.
    """
    fn = "model_grads"
    name = _loss_name(model, loss, fn)
    logits, cache = _forward(fn, model, params, x)
    g = _LOSS_BACKWARDS[name](logits, y, weights=weights)
    _, grads = _backward(fn, model, params, cache, g)
    return ops.LOSSES[name](logits, y, weights), grads


def loss_gradient(
    model: Layer, logits: jax.Array, y: jax.Array, *, weights: Any = None, loss: str | None = None
) -> jax.Array:
    """``dL/d logits`` of the model's named loss: the article's "output - label".

    Args:
      model: the model whose ``config["loss"]`` names the loss (or ``loss``).
      logits: ``[N, K]``.
      y: ``[N]`` labels.
      weights: optional ``[N]`` per-example loss weights.

    Returns:
      ``[N, K]``, the gradient :func:`backward` starts from.
    """
    name = _loss_name(model, loss, "loss_gradient")
    return _LOSS_BACKWARDS[name](logits, y, weights=weights)


def forward(layer: Layer, params: Params, x: jax.Array) -> tuple[jax.Array, Any]:
    """Run ``layer`` keeping what its backward needs.

    Returns:
      ``(y, cache)``: for a leaf layer the cache is ``(x, y)``; for ``serial``
      it is the list of its children's caches.
    """
    return _forward("forward", layer, params, x)


def backward(layer: Layer, params: Params, cache: Any, g: jax.Array) -> tuple[jax.Array, Params]:
    """Backpropagate ``g = dL/dy`` through ``layer``: ``(dL/dx, param grads)``."""
    return _backward("backward", layer, params, cache, g)


def _forward(fn: str, layer: Layer, params: Params, x: jax.Array) -> tuple[jax.Array, Any]:
    if layer.children:
        caches = []
        for name, child in zip(_names(fn, layer), layer.children, strict=True):
            x, cache = _forward(fn, child, params[name], x)
            caches.append(cache)
        return x, caches
    _leaf_backward(fn, layer)  # fail before any work on unknown layers
    y = layer.apply(params, x)
    return y, (x, y)


def _backward(
    fn: str, layer: Layer, params: Params, cache: Any, g: jax.Array
) -> tuple[jax.Array, Params]:
    if layer.children:
        grads = {}
        named = list(zip(_names(fn, layer), layer.children, cache, strict=True))
        for name, child, child_cache in reversed(named):
            g, grads[name] = _backward(fn, child, params[name], child_cache, g)
        return g, grads
    x, y = cache
    return _leaf_backward(fn, layer)(layer.config, params, x, y, g)


def with_manual_grads(model: Layer) -> Layer:
    """The same model whose ``apply`` differentiates through the manual formulas.

    Same ``kind``, ``config``, ``init`` and params structure, same outputs
    (but not equal to ``model``: it compares by identity, so no compiled
    function keyed on ``model`` is reused for it);
    only the ops are swapped for their custom-VJP twins in
    :mod:`jaxcnn.manual` (conv, dense, pooling, ReLU, flatten), so
    ``jax.grad``/``jax.value_and_grad`` of a loss of ``apply`` runs the hand
    derived backward rules, under ``jit``, ``vmap`` and ``lax.scan`` alike.
    Pair it with :func:`loss_fn` for a manual loss gradient too.
    """
    if model.children:
        children = tuple(with_manual_grads(child) for child in model.children)
        names = _names("with_manual_grads", model)
        apply = _serial_apply(names, children)
        return dataclasses.replace(model, apply=apply, children=children, by_value=False)
    if model.kind not in _MANUAL_APPLY:
        raise InputError(
            f"with_manual_grads: layer kind must be one of {sorted(_MANUAL_APPLY)}, "
            f"got {model.kind!r}"
        )
    apply = _MANUAL_APPLY[model.kind](model.config)
    return dataclasses.replace(model, apply=apply, by_value=False)


def loss_fn(model: Layer, fn: str = "loss_fn", *, loss: Any = None) -> Callable[..., jax.Array]:
    """``models.loss_fn(model, loss=loss)``'s custom-VJP twin (gradient = "output - label")."""
    return MANUAL_LOSSES[_loss_name(model, loss, fn)]


def _loss_name(model: Layer, loss: Any, fn: str) -> str:
    """:func:`jaxcnn.models.loss_name`, refusing a loss function: it has no manual backward."""
    if callable(loss):
        raise InputError(
            f"{fn}: manual gradients need a named loss, one of {sorted(MANUAL_LOSSES)} (the "
            f"article's backward formulas exist for those only), got the function {loss!r}; "
            f"train a loss function with grads='autodiff'"
        )
    return models.loss_name(model, loss, fn)


def _serial_apply(names: tuple[str, ...], children: tuple[Layer, ...]) -> Callable[..., jax.Array]:
    def apply(params: Params, x: jax.Array) -> jax.Array:
        for name, child in zip(names, children, strict=True):
            x = child.apply(params[name], x)
        return x

    return apply


def _names(fn: str, layer: Layer) -> tuple[str, ...]:
    names = layer.config.get("names")
    if names is None or len(names) != len(layer.children):
        raise InputError(
            f"{fn}: a layer with children must be a serial stack with "
            f"config['names'], got kind {layer.kind!r} with config {dict(layer.config)!r}"
        )
    return tuple(names)


def _leaf_backward(fn: str, layer: Layer) -> LayerBackward:
    if layer.kind not in _BACKWARDS:
        raise InputError(
            f"{fn}: layer kind must be one of {sorted(_BACKWARDS)}, got {layer.kind!r}"
        )
    return _BACKWARDS[layer.kind]


def _conv_backward(cfg: Config, p: Params, x: jax.Array, y: jax.Array, g: jax.Array) -> Any:
    del y
    dx, dw, db = conv2d_backward(
        x, p["w"], g, stride=cfg["stride"], padding=cfg["padding"], impl=cfg["impl"]
    )
    return dx, {"w": dw, "b": db}


def _dense_backward(cfg: Config, p: Params, x: jax.Array, y: jax.Array, g: jax.Array) -> Any:
    del cfg, y
    dx, dw, db = dense_backward(x, p["w"], g)
    return dx, {"w": dw, "b": db}


def _max_pool_backward(cfg: Config, p: Params, x: jax.Array, y: jax.Array, g: jax.Array) -> Any:
    del p, y
    padding = cfg.get("padding", "valid")
    return max_pool2d_backward(x, g, size=cfg["size"], stride=cfg["stride"], padding=padding), {}


def _avg_pool_backward(cfg: Config, p: Params, x: jax.Array, y: jax.Array, g: jax.Array) -> Any:
    del p, y
    padding = cfg.get("padding", "valid")
    return avg_pool2d_backward(x, g, size=cfg["size"], stride=cfg["stride"], padding=padding), {}


_BACKWARDS: dict[str, LayerBackward] = {
    "conv": _conv_backward,
    "dense": _dense_backward,
    "max_pool": _max_pool_backward,
    "avg_pool": _avg_pool_backward,
    "global_avg_pool": lambda cfg, p, x, y, g: (global_avg_pool2d_backward(g, x.shape), {}),
    "relu": lambda cfg, p, x, y, g: (relu_backward(x, g), {}),
    "flatten": lambda cfg, p, x, y, g: (flatten_backward(g, x.shape), {}),
}

_LOSS_BACKWARDS: dict[str, Callable[..., jax.Array]] = {
    "binary_cross_entropy": sigmoid_bce_backward,
    "softmax_cross_entropy": softmax_ce_backward,
}

MANUAL_LOSSES: dict[str, Callable[..., jax.Array]] = {
    "binary_cross_entropy": vjp_losses.binary_cross_entropy,
    "softmax_cross_entropy": vjp_losses.softmax_cross_entropy,
}
"""The custom-VJP twin of each loss of :data:`jaxcnn.ops.LOSSES`, by the same name."""

if set(MANUAL_LOSSES) != set(ops.LOSSES) or set(_LOSS_BACKWARDS) != set(ops.LOSSES):
    raise ImportError("jaxcnn.manual: every loss of jaxcnn.ops.LOSSES needs its manual backward")


def _pool_apply(pool: Callable[..., jax.Array]) -> Callable[[Config], Callable[..., jax.Array]]:
    def make(cfg: Config) -> Callable[..., jax.Array]:
        padding = cfg.get("padding", "valid")
        return lambda params, x: pool(x, cfg["size"], cfg["stride"], padding)

    return make


def _conv_apply(cfg: Config) -> Callable[..., jax.Array]:
    def apply(params: Params, x: jax.Array) -> jax.Array:
        return vjp.conv2d(
            x,
            params["w"],
            params["b"],
            stride=cfg["stride"],
            padding=cfg["padding"],
            impl=cfg["impl"],
        )

    return apply


_MANUAL_APPLY: dict[str, Callable[[Config], Callable[..., jax.Array]]] = {
    "conv": _conv_apply,
    "dense": lambda cfg: lambda params, x: vjp.dense(x, params["w"], params["b"]),
    "max_pool": _pool_apply(vjp.max_pool2d),
    "avg_pool": _pool_apply(vjp.avg_pool2d),
    "global_avg_pool": lambda cfg: lambda params, x: vjp.global_avg_pool2d(x),
    "relu": lambda cfg: lambda params, x: vjp.relu(x),
    "flatten": lambda cfg: lambda params, x: vjp.flatten(x),
}
