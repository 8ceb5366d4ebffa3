"""Views 3 and 4: one image through every layer of a model, and back again by the formulas.

:func:`forward_view` runs each layer's own ``apply`` and keeps every output,
then the class probabilities (:func:`jaxcnn.train.probabilities`) and the
saliency (:func:`jaxcnn.manual.input_gradient`). :func:`backward_view` chains
the article's backward formulas layer by layer (:func:`jaxcnn.manual.forward`,
:func:`jaxcnn.manual.backward`, starting from :func:`jaxcnn.manual.loss_gradient`,
"output - label") and, beside them, ``jax.grad`` of the plain forward pass of
:mod:`._plain`, probed after every layer, so that each step has its
autodiff twin. Both are jitted once per model (:class:`ModelViews`); the
parameters are arguments, so a run that saves new ones after an epoch
compiles nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import manual, models, ops, train
from jaxcnn.explore._plain import Leaf, leaves, params_at, plain_apply
from jaxcnn.layers import Layer, Params

FORMULAS = {
    "binary_cross_entropy": "dL/dz = sigmoid(z) - y   (output - label)",
    "softmax_cross_entropy": "dL/dz = softmax(z) - onehot(y)   (output - label)",
    "dense": "dx = g Wᵀ,   dW = xᵀ g,   db = Σ g",
    "relu": "dx = g · [z > 0]",
    "flatten": "dx = unflatten(g)   (channel-major, back to H x W x C)",
    "max_pool": "dx = g routed to the first maximum of each window (row-major); 0 elsewhere",
    "avg_pool": "dx = g / window size, spread over each window",
    "global_avg_pool": "dx = g / (H·W) at every pixel",
    "conv": "dx = g ⋆ rot180(W) (full),   dW = x ⋆ g,   db = Σ g",
}
"""The backward formula of each layer kind and loss, as the backward view writes it."""


class Forward(NamedTuple):
    """What :func:`forward_view` returns (one image, batch axis kept)."""

    outputs: tuple[jax.Array, ...]  # each layer's output, [1, ...]
    logits: jax.Array  # [1, K]
    probabilities: jax.Array  # [1, classes]
    target: jax.Array  # int32 scalar: the class the saliency is for
    saliency: jax.Array  # [1, H, W, C]: d logit[target] / d x


class Step(NamedTuple):
    """One layer of the backward pass, the formula's answer beside autodiff's."""

    grad: jax.Array  # dL/d (this layer's input), by the formula
    diff: jax.Array  # max |formula - jax.grad| of it
    params: dict[str, jax.Array]  # dL/d each parameter, by the formula
    param_diffs: dict[str, jax.Array]


class Backward(NamedTuple):
    """What :func:`backward_view` returns: the loss, then one :class:`Step` per layer."""

    loss: jax.Array
    dlogits: jax.Array  # [1, K]: output - label
    dlogits_diff: jax.Array
    steps: tuple[Step, ...]  # in forward order; the page shows them from the last


def forward_view(model: Layer, params: Params, x: jax.Array, target: jax.Array) -> Forward:
    """Every layer's output for one image, its class probabilities and its saliency.

    Args:
      model: a ``serial`` model.
      params: its parameters.
      x: ``[1, H, W, C]``.
      target: int32 scalar: the class whose score the saliency explains, or
        ``-1`` for the predicted class.
    """
    outputs = []
    h = x
    for leaf in leaves(model):
        h = leaf.layer.apply(params_at(params, leaf.path), h)
        outputs.append(h)
    logits = h
    probabilities = train.probabilities(logits)
    predicted = jnp.argmax(probabilities[0]).astype(jnp.int32)
    chosen = jnp.where(target < 0, predicted, target.astype(jnp.int32))
    saliency = manual.input_gradient(model, params, x, target=chosen[None])
    return Forward(tuple(outputs), logits, probabilities, chosen, saliency)


def backward_view(model: Layer, params: Params, x: jax.Array, label: jax.Array) -> Backward:
    """The backward pass of one labelled image by the formulas, each step checked by autodiff.

    Args:
      x: ``[1, H, W, C]``.
      label: ``[1]`` int32.
    """
    layers = leaves(model)
    caches, h = [], x
    for leaf in layers:
        h, cache = manual.forward(leaf.layer, params_at(params, leaf.path), h)
        caches.append(cache)
    dlogits = manual.loss_gradient(model, h, label)
    auto_inputs, auto_logits, auto_params = _autodiff(model, layers, params, x, label, caches)
    g, steps = dlogits, []
    for i in reversed(range(len(layers))):
        g, grads = manual.backward(layers[i].layer, params_at(params, layers[i].path), caches[i], g)
        twin = params_at(auto_params, layers[i].path)
        param_diffs = {name: _max_diff(grads[name], twin[name]) for name in grads}
        steps.append(Step(g, _max_diff(g, auto_inputs[i]), grads, param_diffs))
    loss = ops.LOSSES[models.loss_name(model, None, "explore")](h, label)
    return Backward(loss, dlogits, _max_diff(dlogits, auto_logits), tuple(reversed(steps)))


def _autodiff(
    model: Layer, layers: list[Leaf], params: Params, x: jax.Array, label: jax.Array, caches: list
) -> tuple[list[jax.Array], jax.Array, Params]:
    """``jax.grad`` of the plain forward pass: dL/d each layer's input, dL/d logits, dL/d params.

    A zero probe is added to every layer's output; the gradient with respect
    to a probe is the gradient with respect to that output.
    """
    loss_fn = ops.LOSSES[models.loss_name(model, None, "explore")]
    applies = [plain_apply(leaf.layer) for leaf in layers]
    probes = [jnp.zeros_like(y) for _, y in caches]

    def loss(params: Params, x: jax.Array, probes: list[jax.Array]) -> jax.Array:
        h = x
        for leaf, apply, probe in zip(layers, applies, probes, strict=True):
            h = apply(params_at(params, leaf.path), h) + probe
        return loss_fn(h, label)

    d_params, d_x, d_probes = jax.grad(loss, argnums=(0, 1, 2))(params, x, probes)
    return [d_x, *d_probes[:-1]], d_probes[-1], d_params


def _max_diff(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.max(jnp.abs(a - b)) if a.size else jnp.zeros((), a.dtype)


class ModelViews:
    """:func:`forward_view` and :func:`backward_view` of one model, jitted and warmed up."""

    def __init__(self, model: Layer, input_shape: tuple[int, ...]) -> None:
        self.model = model
        self.input_shape = tuple(input_shape)
        self.leaves = leaves(model)
        for leaf in self.leaves:
            plain_apply(leaf.layer)  # refuse unknown layer kinds now, not on a click
        self.forward = jax.jit(lambda p, x, t: forward_view(model, p, x, t))
        self.backward = jax.jit(lambda p, x, y: backward_view(model, p, x, y))

    def warm_up(self, params: Params) -> None:
        """Compile both views with the model's real parameters' shapes."""
        x = jnp.zeros((1, *self.input_shape), jnp.float32)
        jax.block_until_ready(self.forward(params, x, np.int32(-1)))
        jax.block_until_ready(self.backward(params, x, np.zeros((1,), np.int32)))

    def output_shapes(self, params: Params) -> list[tuple[int, ...]]:
        """Each layer's output shape for one image (no batch axis), computed abstractly."""
        x = jax.ShapeDtypeStruct((1, *self.input_shape), jnp.float32)
        target = jax.ShapeDtypeStruct((), jnp.int32)
        shapes = jax.eval_shape(self.forward, params, x, target).outputs
        return [tuple(shape.shape[1:]) for shape in shapes]

    def __repr__(self) -> str:
        return f"ModelViews({self.model.kind!r}, input_shape={self.input_shape})"


def describe(layer: Layer) -> str:
    """One line on a leaf layer's settings, e.g. ``3x3, 32 filters, stride 1, padding 0``."""
    cfg: Any = layer.config
    if layer.kind == "conv":
        (kh, kw), (sh, sw) = cfg["kernel_size"], cfg["stride"]
        stride, padding = _pair(sh, sw), _pads(cfg["padding"])
        return f"{kh}x{kw}, {cfg['filters']} filters, stride {stride}, padding {padding}"
    if layer.kind in ("max_pool", "avg_pool"):
        (kh, kw), (sh, sw) = cfg["size"], cfg["stride"]
        return f"{kh}x{kw} windows, stride {_pair(sh, sw)}"
    if layer.kind == "dense":
        return f"{cfg['n_out']} output" + ("" if cfg["n_out"] == 1 else "s")
    return ""


def _pair(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}x{b}"


def _pads(padding: Any) -> str:
    (top, bottom), (left, right) = padding
    return str(top) if top == bottom == left == right else str(padding)
