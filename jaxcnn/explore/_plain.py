"""A model's forward pass that JAX differentiates itself: the page's reference gradient.

:mod:`jaxcnn.ops` gives max pooling and convolution hand-written backward
passes (``jax.custom_vjp``), so ``jax.grad`` of ``model.apply`` would run the
very formulas the backward view checks. Here each layer is rebuilt from the
ops' ``reference_*`` twins, which have no custom VJP, so ``jax.grad`` of
:func:`plain_apply` is JAX's own derivation throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax

from jaxcnn import ops
from jaxcnn.errors import InputError
from jaxcnn.layers import Layer, Params

Apply = Callable[[Params, jax.Array], jax.Array]


class Leaf(NamedTuple):
    """One layer of a model, with where its parameters are."""

    name: str  # "conv0"; "block/conv0" inside a nested serial
    layer: Layer
    path: tuple[str, ...]  # keys from the model's params down to this layer's


def leaves(model: Layer, prefix: tuple[str, ...] = ()) -> list[Leaf]:
    """The model's layers in forward order, nested ``serial`` stacks flattened."""
    if not model.children:
        return [Leaf("/".join(prefix) or model.kind, model, prefix)]
    names = model.config.get("names") or ()
    if len(names) != len(model.children):
        raise InputError(
            f"explore: a layer with children must be a serial stack, got {model.kind!r}"
        )
    found: list[Leaf] = []
    for name, child in zip(names, model.children, strict=True):
        found += leaves(child, (*prefix, name))
    return found


def params_at(params: Params, path: tuple[str, ...]) -> Params:
    """The parameters of the layer at ``path``."""
    for key in path:
        params = params[key]
    return params


def plain_apply(layer: Layer) -> Apply:
    """``apply(params, x)`` of one leaf layer, from ops without custom VJPs.

    Raises:
      InputError: a layer kind the page does not know.
    """
    if layer.kind not in _PLAIN:
        raise InputError(f"explore: layer kind must be one of {sorted(_PLAIN)}, got {layer.kind!r}")
    return _PLAIN[layer.kind](layer.config)


def _conv(cfg: Mapping[str, Any]) -> Apply:
    def apply(p: Params, x: jax.Array) -> jax.Array:
        return ops.reference_conv2d(x, p["w"], p["b"], stride=cfg["stride"], padding=cfg["padding"])

    return apply


def _pool(pool: Callable[..., jax.Array]) -> Callable[[Mapping[str, Any]], Apply]:
    def make(cfg: Mapping[str, Any]) -> Apply:
        padding = cfg.get("padding", "valid")
        return lambda p, x: pool(x, cfg["size"], cfg["stride"], padding)

    return make


_PLAIN: dict[str, Callable[[Mapping[str, Any]], Apply]] = {
    "conv": _conv,
    "dense": lambda cfg: lambda p, x: ops.dense(x, p["w"], p["b"]),
    "max_pool": _pool(ops.reference_max_pool2d),
    "avg_pool": _pool(ops.avg_pool2d),
    "global_avg_pool": lambda cfg: lambda p, x: ops.global_avg_pool2d(x),
    "relu": lambda cfg: lambda p, x: ops.relu(x),
    "flatten": lambda cfg: lambda p, x: ops.flatten(x),
}
