"""Op-level benchmarks: the article's convolutions and per-sample gradients.

Every op is timed inside a jitted ``lax.scan`` (:func:`time_in_loop`), the way
a training epoch runs it, so that per-call dispatch does not hide small ops and
XLA's in-loop behaviour (its weight-gradient convolution is 25-55x slower in a
loop on CPU) shows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import median, time_in_loop, timed_calls
from jaxcnn import manual, models, ops
from jaxcnn.ops import reference_conv2d
from jaxcnn.train import EPOCH_COMPILER_OPTIONS


class ConvLayer(NamedTuple):
    """One of the article's convolution layers at its training batch size."""

    name: str
    batch: int
    size: int  # H = W of the input
    c_in: int
    c_out: int
    padding: str


ARTICLE_LAYERS = (
    ConvLayer("shapes conv", 32, 28, 1, 2, "same"),
    ConvLayer("MNIST conv 1", 128, 28, 1, 32, "valid"),
    ConvLayer("MNIST conv 2", 128, 13, 32, 64, "valid"),
)
KERNEL = 3


def conv_flops(layer: ConvLayer) -> int:
    """Multiply-adds x 2 of the forward convolution (3x3, stride 1)."""
    out = layer.size if layer.padding == "same" else layer.size - KERNEL + 1
    return 2 * layer.batch * out * out * KERNEL * KERNEL * layer.c_in * layer.c_out


def conv_benchmarks(*, length: int, repeats: int) -> list[dict[str, Any]]:
    """Forward and forward+backward ms of every implementation for each article layer.

    ``fwd_bwd`` is ``jax.vjp`` of ``ops.conv2d`` applied to a cotangent: the
    forward of ``impl`` and the library's custom-VJP backward. ``autodiff`` is
    ``jax.vjp`` of the plain ``lax.conv_general_dilated`` (JAX's own gradient);
    ``manual`` is :func:`jaxcnn.manual.conv2d`'s (the article's formulas).
    """
    return [_conv_row(layer, length=length, repeats=repeats) for layer in ARTICLE_LAYERS]


def _conv_row(layer: ConvLayer, *, length: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(
        rng.standard_normal((layer.batch, layer.size, layer.size, layer.c_in)), jnp.float32
    )
    w = jnp.asarray(
        rng.standard_normal((KERNEL, KERNEL, layer.c_in, layer.c_out)) * 0.1, jnp.float32
    )
    b = jnp.zeros(layer.c_out, jnp.float32)
    g = jnp.ones_like(ops.conv2d(x, w, b, padding=layer.padding))
    timer = functools.partial(time_in_loop, length=length, repeats=repeats)
    ms: dict[str, float] = {}
    for impl in ("lax", "sliding"):
        conv = functools.partial(ops.conv2d, padding=layer.padding, impl=impl)
        ms[f"{impl}_fwd"] = 1e3 * timer(conv, (x, w, b))
        ms[f"{impl}_fwd_bwd"] = 1e3 * timer(_vjp_of(conv), (x, w, b, g))
    plain = functools.partial(reference_conv2d, padding=layer.padding, impl="lax")
    ms["autodiff_fwd_bwd"] = 1e3 * timer(_vjp_of(plain), (x, w, b, g))
    twin = functools.partial(manual.conv2d, padding=layer.padding)
    ms["manual_fwd_bwd"] = 1e3 * timer(_vjp_of(twin), (x, w, b, g))
    auto = ops.choose_impl(x.shape, w.shape)
    flops = conv_flops(layer)
    best_fwd = min(ms["lax_fwd"], ms["sliding_fwd"])
    best_fwd_bwd = min(ms["lax_fwd_bwd"], ms["sliding_fwd_bwd"])
    return {
        "layer": layer.name,
        "x": [layer.batch, layer.size, layer.size, layer.c_in],
        "w": [KERNEL, KERNEL, layer.c_in, layer.c_out],
        "padding": layer.padding,
        "auto": auto,
        "ms": ms,
        "fwd_gflop": flops / 1e9,
        "gflops": {
            "fwd": flops / ms[f"{auto}_fwd"] / 1e6,
            "fwd_bwd": 3 * flops / ms[f"{auto}_fwd_bwd"] / 1e6,
        },
        "sliding_vs_best": {
            "fwd": ms["sliding_fwd"] / best_fwd,
            "fwd_bwd": ms["sliding_fwd_bwd"] / best_fwd_bwd,
        },
    }


def _vjp_of(conv: Callable[..., jax.Array]) -> Callable[..., Any]:
    def fwd_bwd(x: jax.Array, w: jax.Array, b: jax.Array, g: jax.Array) -> Any:
        y, pullback = jax.vjp(conv, x, w, b)
        return y, pullback(g)

    return fwd_bwd


def per_sample_benchmarks(*, repeats: int) -> list[dict[str, Any]]:
    """``vmap(grad)`` of one-sample losses vs ``grad`` of the batch loss (same batch).

    Both jitted; the per-sample result is ``[B, ...]`` per parameter, the batch
    result its mean (tests/manual/test_manual_model.py checks the equality).
    """
    return [
        _per_sample_row(name, batch, repeats)
        for name, batch in (("shapes", 32), ("mnist-cnn", 128))
    ]


def _per_sample_row(name: str, batch: int, repeats: int) -> dict[str, Any]:
    model = models.get_model(name)
    loss = models.loss_fn(model)
    _, params = model.init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.random((batch, *models.IMAGE_SHAPE)), jnp.float32)
    classes = 2 if model.config["loss"] == "binary_cross_entropy" else 10
    y = jnp.asarray(rng.integers(0, classes, batch), jnp.int32)

    def one(p: Any, xi: jax.Array, yi: jax.Array) -> Any:
        return jax.grad(lambda p: loss(model.apply(p, xi[None]), yi[None]))(p)

    def whole(p: Any, x: jax.Array, y: jax.Array) -> Any:
        return jax.grad(lambda p: loss(model.apply(p, x), y))(p)

    per_sample = jax.jit(
        jax.vmap(one, in_axes=(None, 0, 0)), compiler_options=EPOCH_COMPILER_OPTIONS
    )
    batched = jax.jit(whole, compiler_options=EPOCH_COMPILER_OPTIONS)

    def time_of(fn: Callable[..., Any]) -> float:
        def call() -> Any:
            return fn(params, x, y)

        return 1e3 * median(timed_calls(call, repeats))

    per_ms, batch_ms = time_of(per_sample), time_of(batched)
    return {
        "model": name,
        "batch": batch,
        "vmap_grad_ms": per_ms,
        "batch_grad_ms": batch_ms,
        "ratio": per_ms / batch_ms,
    }


def model_flops(name: str) -> int:
    """Training FLOPs per image: forward, kernel and input gradients of every conv/dense.

    The first layer needs no input gradient. Elementwise ops, pooling and the
    optimizer are not counted (they are memory-bound and small).
    """
    model = models.get_model(name)
    shape: tuple[int, ...] = (1, *models.IMAGE_SHAPE)
    total, first = 0, True
    for child in model.children:
        out_shape, _ = child.init(jax.random.key(0), shape)
        forward = 0
        if child.kind == "conv":
            kh, kw = child.config["kernel_size"]
            forward = 2 * int(np.prod(out_shape)) * kh * kw * shape[3]
        elif child.kind == "dense":
            forward = 2 * shape[1] * out_shape[1]
        if forward:
            total += forward * (2 if first else 3)
            first = False
        shape = out_shape
    return total


__all__ = [
    "ARTICLE_LAYERS",
    "conv_benchmarks",
    "conv_flops",
    "model_flops",
    "per_sample_benchmarks",
]
