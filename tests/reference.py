"""Gradient references that share no code with the hand-written backward formulas.

``ops.conv2d`` and ``ops.max_pool2d`` have custom VJPs built from the same
kernels as :mod:`jaxcnn.manual` (:mod:`jaxcnn._conv_grad`,
:mod:`jaxcnn._pool_grad`), so ``jax.grad`` of ``ops`` would agree with the
manual formulas even if a formula were wrong. The reference is instead the
forward op as JAX differentiates it itself: ``lax.conv_general_dilated`` (or
the sliding offset sum) and ``lax.reduce_window``, through
:func:`jaxcnn._conv.reference_conv2d` and
:func:`jaxcnn._pool.reference_max_pool2d`; :func:`plain_autodiff` rebuilds a
whole model from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from jaxcnn.layers import Layer, Params
from jaxcnn.ops import reference_conv2d, reference_max_pool2d

__all__ = ["plain_autodiff", "reference_conv2d", "reference_max_pool2d"]


def plain_autodiff(model: Layer) -> Layer:
    """The same model (same params, same outputs) whose conv and max-pool layers
    have no custom VJP: ``jax.grad`` of it is JAX's own derivation throughout."""
    if model.children:
        children = tuple(plain_autodiff(child) for child in model.children)
        names = tuple(model.config["names"])
        return dataclasses.replace(model, apply=_serial(names, children), children=children)
    if model.kind == "conv":
        return dataclasses.replace(model, apply=_conv(model.config))
    if model.kind == "max_pool":
        return dataclasses.replace(model, apply=_max_pool(model.config))
    return model


def _serial(names: tuple[str, ...], children: tuple[Layer, ...]) -> Callable[..., jax.Array]:
    def apply(params: Params, x: jax.Array) -> jax.Array:
        for name, child in zip(names, children, strict=True):
            x = child.apply(params[name], x)
        return x

    return apply


def _conv(config: Any) -> Callable[..., jax.Array]:
    impl = "lax" if config["impl"] == "auto" else config["impl"]

    def apply(params: Params, x: jax.Array) -> jax.Array:
        return reference_conv2d(
            x,
            params["w"],
            params["b"],
            stride=config["stride"],
            padding=config["padding"],
            impl=impl,
        )

    return apply


def _max_pool(config: Any) -> Callable[..., jax.Array]:
    return lambda params, x: reference_max_pool2d(x, config["size"], config["stride"])
