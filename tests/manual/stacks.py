"""Random ``serial`` stacks for the model-level gradient tests, and their NumPy oracle.

A stack is drawn as a *spec*: a flat list of leaf layers, each with its
constructor arguments exactly as drawn (``padding="same"``, ``stride=2``,
``kernel_size=(1, 3)``; before jaxcnn normalises any of them) and the path of
its parameters in the model, by the naming rule :func:`jaxcnn.layers.serial`
documents (``"<kind><index>"``, a nested stack ``"serial<index>"``). From the
spec :func:`stacks` builds the jaxcnn model and its float64 parameters; the
oracle (:func:`oracle_forward`, :func:`oracle_backward`) walks the spec, never
the model's ``config``, with the loops of :mod:`tests.oracle`. So a field that
is lost anywhere between a constructor's argument and a backward formula
makes the two disagree.

What is drawn: 0-4 body layers (Conv: 1-3 filters, kernel 1-3 per axis as an
int or a pair, stride 1-3 as an int or a pair, every padding form, every
``impl``; MaxPool and AvgPool: window 1-3 per axis, stride None/int/pair,
every padding form; Relu), then Flatten or GlobalAvgPool, an optional hidden
Dense (and Relu), and the logits: Dense(K) with softmax cross-entropy
(K = 2-4) or Dense(1) with binary cross-entropy. Sometimes a run of
consecutive layers is wrapped in a nested ``serial``. Images are
``[1-3, 1-6, 1-6, 1-3]``: every spatial size stays >= 1 because each window
is drawn to fit its padded input.

``jaxcnn.layers.MaxPool``/``AvgPool`` take no padding; a padded pool is the
:class:`jaxcnn.layers.Layer` record built here (:func:`padded_pool`) with the
kind and config keys ``jaxcnn.manual`` reads (``size``, ``stride``,
``padding``) and ``jaxcnn.ops``' pool as its ``apply``, the only way a pool's
padding reaches a model's config.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import jax
import numpy as np
from hypothesis import example
from hypothesis import strategies as st

from jaxcnn import layers, ops
from jaxcnn.layers import Layer
from tests import oracle

Spec = dict[str, Any]
Test = TypeVar("Test", bound=Callable[..., Any])
Hwc = tuple[int, int, int]

IMPLS = ("lax", "sliding", "auto")
LOSSES = ("softmax_cross_entropy", "binary_cross_entropy")
BODY_KINDS = ("conv", "max_pool", "conv", "avg_pool", "relu")  # conv twice as often


@dataclass(frozen=True)
class Stack:
    """One drawn model with its float64 data (NumPy; convert inside ``jax.enable_x64``).

    ``params`` are shaped as ``model.init`` makes them; ``y`` holds 0/1 floats
    (BCE) or class ids (softmax); ``target`` is None (the predicted class) or
    ``[N]`` classes for :func:`jaxcnn.manual.input_gradient`.
    """

    model: Layer
    spec: tuple[Spec, ...]
    loss: str
    classes: int  # logits per image: K >= 2 (softmax) or 1 (BCE)
    params: Any
    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    target: np.ndarray | None

    def __repr__(self) -> str:
        lines = [f"Stack(x {self.x.shape}, {self.loss}, target {self.target}, layers:"]
        for leaf in self.spec:
            args = {k: v for k, v in leaf.items() if k not in ("kind", "path")}
            lines.append(f"  {'/'.join(leaf['path'])}: {leaf['kind']} {args}")
        return "\n".join(lines) + ")"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints a failing example with this: the spec, not the Layer records."""
        del cycle
        printer.text(repr(self))


def out_length(n: int, k: int, stride: int, pads: tuple[int, int]) -> int:
    """Windows of ``k`` at ``stride`` over ``n`` padded by ``pads`` (the article's formula)."""
    return (n + pads[0] + pads[1] - k) // stride + 1


def padded_pool(kind: str, size: Any, stride: Any, padding: Any) -> Layer:
    """A pooling layer with ``padding`` (``jaxcnn.layers``' pools have none), built by hand."""
    op = {"max_pool": ops.max_pool2d, "avg_pool": ops.avg_pool2d}[kind]
    window = oracle.pair(size)
    strides = window if stride is None else oracle.pair(stride)
    pads = oracle.padding_pairs(padding, window)

    def init(key: jax.Array, input_shape: Any, *, dtype: Any = None) -> tuple[Any, Any]:
        del key, dtype
        n, h, w, c = input_shape
        sides = (out_length(s, window[a], strides[a], pads[a]) for a, s in enumerate((h, w)))
        return (n, *sides, c), {}

    def apply(params: Any, x: jax.Array) -> jax.Array:
        del params
        return op(x, size, stride, padding)

    config = {"size": window, "stride": strides, "padding": padding}
    return Layer(init, apply, kind, config)


def _int_or_pair(draw: st.DrawFn, pair: tuple[int, int]) -> Any:
    """``pair`` as drawn by a user: an int where both are equal (sometimes), else the pair."""
    if pair[0] == pair[1] and draw(st.booleans()):
        return pair[0]
    return pair


def _padding(draw: st.DrawFn, most: tuple[int, int]) -> Any:
    """Any padding form with at most ``most[axis]`` pixels per side of each axis."""
    forms = ["valid", "same", "int", "pairs"]
    form = draw(st.sampled_from(forms))
    if form in ("valid", "same"):
        return form
    if form == "int":
        return draw(st.integers(0, min(most)))
    return tuple(
        (draw(st.integers(0, most[axis])), draw(st.integers(0, most[axis]))) for axis in range(2)
    )


def _conv(draw: st.DrawFn, hwc: Hwc) -> Spec:
    padding = _padding(draw, (2, 2))
    kernel = []
    for axis in range(2):
        if padding == "same":
            room = 3
        else:
            room = hwc[axis] + sum(oracle.padding_pairs(padding, (1, 1))[axis])
        kernel.append(draw(st.integers(1, min(3, room))))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return {
        "kind": "conv",
        "filters": draw(st.integers(1, 3)),
        "kernel_size": _int_or_pair(draw, (kernel[0], kernel[1])),
        "stride": _int_or_pair(draw, stride),
        "padding": padding,
        "impl": draw(st.sampled_from(IMPLS)),
    }


def _pool(draw: st.DrawFn, kind: str, hwc: Hwc) -> Spec:
    window = (draw(st.integers(1, min(3, hwc[0]))), draw(st.integers(1, min(3, hwc[1]))))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    # At most size - 1 pixels per side: no window lies wholly in the padding (its max
    # would be -inf, its average 0/0).
    padding = _padding(draw, (window[0] - 1, window[1] - 1))
    return {
        "kind": kind,
        "size": _int_or_pair(draw, window),
        "stride": None if stride is None else _int_or_pair(draw, stride),
        "padding": padding,
    }


def leaf_output(leaf: Spec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape (no batch axis) of ``leaf`` on inputs of ``shape`` (oracle's rules)."""
    kind = leaf["kind"]
    if kind == "relu":
        return shape
    if kind == "flatten":
        return (math.prod(shape),)
    if kind == "global_avg_pool":
        return (shape[2],)
    if kind == "dense":
        return (leaf["n_out"],)
    if kind == "conv":
        window = oracle.pair(leaf["kernel_size"])
        strides, channels = oracle.pair(leaf["stride"]), leaf["filters"]
    else:
        window, channels = oracle.pair(leaf["size"]), shape[2]
        strides = window if leaf["stride"] is None else oracle.pair(leaf["stride"])
    pads = oracle.padding_pairs(leaf["padding"], window)
    h, w = (out_length(shape[a], window[a], strides[a], pads[a]) for a in range(2))
    return h, w, channels


def build_leaf(leaf: Spec) -> Layer:
    """The jaxcnn layer of a leaf spec, by its public constructor where there is one."""
    kind = leaf["kind"]
    if kind == "conv":
        return layers.Conv(
            leaf["filters"],
            leaf["kernel_size"],
            stride=leaf["stride"],
            padding=leaf["padding"],
            impl=leaf["impl"],
        )
    if kind in ("max_pool", "avg_pool"):
        if leaf["padding"] != "valid":
            return padded_pool(kind, leaf["size"], leaf["stride"], leaf["padding"])
        constructor = layers.MaxPool if kind == "max_pool" else layers.AvgPool
        return constructor(leaf["size"], leaf["stride"])
    if kind == "dense":
        return layers.Dense(leaf["n_out"])
    if kind == "global_avg_pool":
        return layers.GlobalAvgPool()
    return {"relu": layers.Relu, "flatten": layers.Flatten}[kind]


def _leaves(draw: st.DrawFn, hwc: Hwc, loss: str, require_conv: bool) -> list[Spec]:
    """The leaf specs (no paths yet), each drawn to fit the output of the one before."""
    count = draw(st.integers(0, 4))
    kinds = [draw(st.sampled_from(BODY_KINDS)) for _ in range(count)]
    if require_conv and "conv" not in kinds:
        kinds.insert(draw(st.integers(0, len(kinds))), "conv")
    leaves: list[Spec] = []
    shape: tuple[int, ...] = hwc
    for kind in kinds:
        if kind == "conv":
            leaf = _conv(draw, (shape[0], shape[1], shape[2]))
        elif kind == "relu":
            leaf = {"kind": "relu"}
        else:
            leaf = _pool(draw, kind, (shape[0], shape[1], shape[2]))
        leaves.append(leaf)
        shape = leaf_output(leaf, shape)
    leaves.append({"kind": draw(st.sampled_from(["flatten", "global_avg_pool"]))})
    if draw(st.booleans()):
        leaves.append({"kind": "dense", "n_out": draw(st.integers(1, 4))})
        if draw(st.booleans()):
            leaves.append({"kind": "relu"})
    classes = 1 if loss == "binary_cross_entropy" else draw(st.integers(2, 4))
    leaves.append({"kind": "dense", "n_out": classes})
    return leaves


def _nest(leaves: list[Spec], nest: tuple[int, int] | None) -> tuple[list[Layer], list[Spec]]:
    """Build the layers, wrapping ``leaves[i:j]`` in a nested ``serial`` if ``nest = (i, j)``.

    Returns the children of the top-level stack and the leaves with their
    ``path`` (the keys of their params) set.
    """
    built = [build_leaf(leaf) for leaf in leaves]
    i, j = nest or (0, 0)
    nested = j > i
    named = []
    for index, leaf in enumerate(leaves):
        if i <= index < j:
            path: tuple[str, ...] = (f"serial{i}", f"{leaf['kind']}{index - i}")
        else:
            # After the nested stack, the top level holds j - i fewer children plus the stack.
            position = index - (j - i) + 1 if nested and index >= j else index
            path = (f"{leaf['kind']}{position}",)
        named.append({**leaf, "path": path})
    children = built[:i] + ([layers.serial(*built[i:j])] if nested else []) + built[j:]
    return children, named


def _params(rng: np.random.Generator, leaves: list[Spec], hwc: Hwc) -> dict[str, Any]:
    """Normal float64 params (scaled by ``1/sqrt(fan_in)``; biases too), keyed by path."""
    params: dict[str, Any] = {}
    shape: tuple[int, ...] = hwc
    for leaf in leaves:
        w_shape: tuple[int, ...] = ()
        if leaf["kind"] == "conv":
            w_shape = (*oracle.pair(leaf["kernel_size"]), shape[2], leaf["filters"])
        elif leaf["kind"] == "dense":
            w_shape = (shape[0], leaf["n_out"])
        node = params
        for key in leaf["path"][:-1]:
            node = node.setdefault(key, {})
        if w_shape:
            scale = 1 / math.sqrt(math.prod(w_shape[:-1]))
            node[leaf["path"][-1]] = {
                "w": rng.normal(size=w_shape) * scale,
                "b": rng.normal(size=w_shape[-1]) * 0.5,
            }
        else:
            node[leaf["path"][-1]] = {}
        shape = leaf_output(leaf, shape)
    return params


def make_stack(
    leaves: list[Spec],
    shape: tuple[int, int, int, int],
    loss: str,
    *,
    nest: tuple[int, int] | None = None,
    seed: int = 0,
    target: bool = False,
) -> Stack:
    """A stack from leaf specs (without paths), with random float64 data from ``seed``.

    Args:
      leaves: the layers first to last, the last a Dense of K = 1 (BCE) or K >= 2 logits.
      shape: ``(N, H, W, C)`` of the images.
      loss: ``"softmax_cross_entropy"`` or ``"binary_cross_entropy"``.
      nest: ``(i, j)``: ``leaves[i:j]`` form a nested ``serial``.
      seed: seeds the params, images, labels, weights and targets.
      target: draw targets for ``input_gradient`` (else None: the predicted class).
    """
    children, named = _nest(leaves, nest)
    classes = named[-1]["n_out"]
    n, hwc = shape[0], (shape[1], shape[2], shape[3])
    out: tuple[int, ...] = hwc
    for leaf in named:
        out = leaf_output(leaf, out)
        if min(out) < 1:
            raise ValueError(f"stack: {leaf} leaves no output ({out})")
    rng = np.random.default_rng(seed)
    y: np.ndarray
    if loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=n).astype(np.float64)
    else:
        y = rng.integers(0, classes, size=n)
    return Stack(
        model=layers.serial(*children, kind="stack", loss=loss),
        spec=tuple(named),
        loss=loss,
        classes=classes,
        params=_params(rng, named, hwc),
        x=rng.normal(size=(n, *hwc)),
        y=y,
        weights=rng.random(size=n) + 0.2,
        target=rng.integers(0, max(2, classes), size=n) if target else None,
    )


@st.composite
def stacks(draw: st.DrawFn, *, require_conv: bool = False) -> Stack:
    """A random valid ``serial`` stack with float64 params, images, labels, weights, targets.

    Args:
      require_conv: at least one Conv in the body.
    """
    shape = (
        draw(st.integers(1, 3)),
        draw(st.integers(1, 6)),
        draw(st.integers(1, 6)),
        draw(st.integers(1, 3)),
    )
    loss = draw(st.sampled_from(LOSSES))
    leaves = _leaves(draw, (shape[1], shape[2], shape[3]), loss, require_conv)
    nest = None
    if draw(st.booleans()):
        i = draw(st.integers(0, len(leaves) - 1))
        nest = (i, draw(st.integers(i + 1, len(leaves))))
    return make_stack(
        leaves,
        shape,
        loss,
        nest=nest,
        seed=draw(st.integers(0, 2**32 - 1)),
        target=draw(st.booleans()),
    )


def _conv_leaf(filters: int, kernel: Any, stride: Any, padding: Any, impl: str) -> Spec:
    return {
        "kind": "conv",
        "filters": filters,
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "impl": impl,
    }


def _pool_leaf(kind: str, size: Any, stride: Any, padding: Any = "valid") -> Spec:
    return {"kind": kind, "size": size, "stride": stride, "padding": padding}


RELU, FLATTEN, GAP = {"kind": "relu"}, {"kind": "flatten"}, {"kind": "global_avg_pool"}


def _dense_leaf(n_out: int) -> Spec:
    return {"kind": "dense", "n_out": n_out}


STACK_CORNERS: dict[str, Stack] = {
    # Every conv field off its default, each impl, C_in > 1 (where "auto"'s dx is a
    # convolution); a 1x1 conv padded by 1 makes bias-only borders, so the overlapping
    # padded max pool after the ReLU sees ties; a nested stack in the middle.
    "convs": make_stack(
        [
            _conv_leaf(3, (3, 2), (2, 1), ((2, 0), (0, 1)), "lax"),
            RELU,
            _conv_leaf(2, 2, 2, "same", "sliding"),
            _conv_leaf(2, 1, 1, 1, "auto"),
            RELU,
            _pool_leaf("max_pool", 3, 1, 1),
            FLATTEN,
            _dense_leaf(3),
        ],
        (2, 7, 6, 2),
        "softmax_cross_entropy",
        nest=(2, 5),
        seed=1,
    ),
    # Every pool field off its default: windows of 3 and of (3, 2), strides of 1 and
    # (1, 2), "same" and asymmetric padding, by the constructors and by hand.
    "pools": make_stack(
        [
            _pool_leaf("avg_pool", 3, 1),
            _pool_leaf("avg_pool", (3, 2), (1, 2), "same"),
            _pool_leaf("max_pool", 2, None),
            _pool_leaf("max_pool", (2, 2), 1, ((1, 0), (0, 1))),
            _pool_leaf("max_pool", (3, 1), (2, 1)),
            RELU,
            GAP,
            _dense_leaf(1),
        ],
        (3, 8, 7, 2),
        "binary_cross_entropy",
        seed=2,
        target=True,
    ),
    # A stack nested first; one input channel (scatter dx), a hidden Dense + ReLU.
    "nested-first": make_stack(
        [
            _conv_leaf(2, 3, 2, "valid", "sliding"),
            RELU,
            _pool_leaf("max_pool", 2, 1),
            FLATTEN,
            _dense_leaf(4),
            RELU,
            _dense_leaf(2),
        ],
        (2, 6, 6, 1),
        "softmax_cross_entropy",
        nest=(0, 3),
        seed=3,
        target=True,
    ),
}
"""Stacks a random search may reach late, run by every test decorated with :func:`stack_corners`."""


def stack_corners(test: Test) -> Test:
    """Add every :data:`STACK_CORNERS` stack as an explicit example (``stack=``) of ``test``."""
    for stack in STACK_CORNERS.values():
        test = example(stack=stack)(test)
    return test


# ----------------------------------------------------------------- the oracle, over the spec


def _at(params: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        params = params[key]
    return params


def _pool_args(leaf: Spec) -> tuple[Any, Any, Any]:
    return leaf["size"], leaf["stride"], leaf["padding"]


def oracle_forward(spec: tuple[Spec, ...], params: Any, x: Any) -> tuple[np.ndarray, list[Any]]:
    """The logits of the stack by :mod:`tests.oracle`'s loops, and each leaf's input."""
    x = np.asarray(x, np.float64)
    inputs = []
    for leaf in spec:
        p, kind = _at(params, leaf["path"]), leaf["kind"]
        inputs.append(x)
        if kind == "conv":
            x = oracle.conv2d(x, p["w"], p["b"], leaf["stride"], leaf["padding"])
        elif kind == "max_pool":
            x = oracle.max_pool2d(x, *_pool_args(leaf))
        elif kind == "avg_pool":
            x = oracle.avg_pool2d(x, *_pool_args(leaf))
        elif kind == "dense":
            x = oracle.dense(x, p["w"], p["b"])
        elif kind == "relu":
            x = np.where(x > 0, x, 0.0)
        elif kind == "flatten":
            x = oracle.flatten(x)
        else:
            x = oracle.global_avg_pool2d(x)
    return x, inputs


def oracle_backward(
    spec: tuple[Spec, ...], params: Any, inputs: list[Any], g: Any
) -> tuple[np.ndarray, Any]:
    """``(dL/dx, param grads keyed like params)`` from ``g = dL/dlogits``, last leaf first."""
    g = np.asarray(g, np.float64)
    grads = jax.tree.map(np.zeros_like, params)
    for leaf, x in reversed(list(zip(spec, inputs, strict=True))):
        p, kind = _at(params, leaf["path"]), leaf["kind"]
        if kind == "conv":
            g, dw, db = oracle.conv2d_backward(x, p["w"], g, leaf["stride"], leaf["padding"])
            _at(grads, leaf["path"]).update(w=dw, b=db)
        elif kind == "dense":
            g, dw, db = oracle.dense_backward(x, p["w"], g)
            _at(grads, leaf["path"]).update(w=dw, b=db)
        elif kind == "max_pool":
            g = oracle.max_pool2d_backward(x, g, *_pool_args(leaf))
        elif kind == "avg_pool":
            g = oracle.avg_pool2d_backward(x, g, *_pool_args(leaf))
        elif kind == "relu":
            g = oracle.relu_backward(x, g)
        elif kind == "flatten":
            g = oracle.flatten_backward(g, x.shape)
        else:
            g = oracle.global_avg_pool2d_backward(g, x.shape)
    return g, grads


ORACLE_LOSSES = {
    "binary_cross_entropy": oracle.binary_cross_entropy,
    "softmax_cross_entropy": oracle.softmax_cross_entropy,
}
