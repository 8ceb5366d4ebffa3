"""The custom VJPs of ``ops.conv2d`` and ``ops.max_pool2d`` against JAX's own derivation.

The fast backward rules (:mod:`jaxcnn._conv_grad`, :mod:`jaxcnn._pool_grad`)
must equal ``jax.vjp`` of the plain ops (:mod:`tests.reference`: lax
convolution or sliding sum, ``reduce_window``) in float64 on random
configurations: strides, every padding form, channel counts on both sides of
the patches/offsets threshold, max-pool ties (first maximum, row-major) and
overlapping windows. Every backward formula is checked on its own too, not
only the one :func:`choose_backward` picks. A mutated kernel makes them fail.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxcnn import ops
from jaxcnn._checks import padding_pairs
from jaxcnn.ops import _conv_backward as _conv_grad
from jaxcnn.ops import _pool_backward as _pool_grad
from jaxcnn.ops import _windows
from jaxcnn.ops._conv_backward import BackwardPlan, choose_backward, conv_backward
from tests import strategies
from tests.manual.test_manual_pool import route_to_first_max
from tests.reference import reference_conv2d, reference_max_pool2d

EXAMPLES = max(10, settings().max_examples // 4)  # each example compiles its own programs
TOL = 1e-10  # float64


def conv_cases() -> st.SearchStrategy[dict[str, Any]]:
    """Kernel 1-4, stride 1-3, any padding, 1-9 input channels (depth 1-144), batch 1-3."""
    return strategies.conv_cases(max_side=8, max_c_in=9, max_batch=3)


def assert_close(got: Any, want: Any) -> None:
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.shape == b.shape
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL, atol=TOL)


@settings(max_examples=EXAMPLES)
@given(case=conv_cases(), impl=st.sampled_from(["lax", "sliding", "auto"]))
def test_conv2d_custom_vjp_equals_plain_lax_vjp(case: dict[str, Any], impl: Any) -> None:
    conf = {"stride": case["stride"], "padding": case["padding"]}

    def both(x: jax.Array, w: jax.Array, b: jax.Array, g: jax.Array) -> Any:
        fast = jax.vjp(lambda *a: ops.conv2d(*a, **conf, impl=impl), x, w, b)[1](g)
        plain = jax.vjp(lambda *a: reference_conv2d(*a, **conf, impl="lax"), x, w, b)[1](g)
        return fast, plain

    with jax.enable_x64(True):
        x, w, b = (jnp.asarray(case[k]) for k in ("x", "w", "b"))
        y = reference_conv2d(x, w, b, **conf)
        g = jnp.asarray(case["rng"].normal(size=y.shape))
        fast, plain = jax.jit(both)(x, w, b, g)
        assert_close(fast, plain)


PLANS = [BackwardPlan(dx, dw) for dx in _conv_grad.INPUT_GRADS for dw in _conv_grad.KERNEL_GRADS]


@settings(max_examples=EXAMPLES)
@given(case=conv_cases())
def test_every_backward_formula_equals_the_plain_vjp(case: dict[str, Any]) -> None:
    """Each (dx, dw) pair, not only the one ``choose_backward`` picks for the shape."""
    strides = (case["stride"],) * 2 if isinstance(case["stride"], int) else case["stride"]
    pads = padding_pairs("test", case["padding"], case["w"].shape[:2])

    def every_plan(x: jax.Array, w: jax.Array, g: jax.Array) -> Any:
        return [conv_backward(x, w, g, strides, pads, plan) for plan in PLANS]

    with jax.enable_x64(True):
        x, w = jnp.asarray(case["x"]), jnp.asarray(case["w"])
        y, vjp = jax.vjp(lambda x, w: reference_conv2d(x, w, stride=strides, padding=pads), x, w)
        g = jnp.asarray(case["rng"].normal(size=y.shape))
        want = (*vjp(g), jnp.sum(g, axis=(0, 1, 2)))  # dx, dw, db
        for got in jax.jit(every_plan)(x, w, g):
            assert_close(got, want)


def test_the_article_layers_get_the_measured_plans() -> None:
    """The rule of docs/benchmarks.md: im2col patches for shallow inputs, offsets for deep."""
    assert choose_backward((32, 28, 28, 1), (3, 3, 1, 2), (1, 1)).dw == "patches"
    assert choose_backward((128, 28, 28, 1), (3, 3, 1, 32), (1, 1)).dw == "patches"
    assert choose_backward((128, 13, 13, 32), (3, 3, 32, 64), (1, 1)).dw == "offsets"


@st.composite
def pool_cases(draw: st.DrawFn) -> dict[str, Any]:
    """Window 1-3, stride None/1-3 (overlapping, tiling, gapped), padding; values in {0, 1, 2}."""
    case = draw(
        strategies.pool_geometry(
            strides=st.one_of(st.none(), strategies.strides),
            paddings=st.sampled_from(["valid", "same", 1]),
            max_side=8,
            max_batch=3,
            max_channels=3,
        )
    )
    # Most windows hold tied maxima.
    case["x"] = case["rng"].integers(0, 3, size=case["shape"]).astype(np.float64)
    return case


@settings(max_examples=EXAMPLES)
@given(case=pool_cases())
def test_max_pool2d_custom_vjp_equals_plain_reduce_window_vjp(case: dict[str, Any]) -> None:
    """With ties everywhere: both route each window to its first maximum, row-major."""
    conf = {"size": case["size"], "stride": case["stride"], "padding": case["padding"]}

    def both(x: jax.Array, g: jax.Array) -> Any:
        fast = jax.vjp(lambda x: ops.max_pool2d(x, **conf), x)[1](g)[0]
        plain = jax.vjp(lambda x: reference_max_pool2d(x, **conf), x)[1](g)[0]
        return fast, plain

    with jax.enable_x64(True):
        x = jnp.asarray(case["x"])
        y = ops.max_pool2d(x, **conf)
        np.testing.assert_array_equal(y, reference_max_pool2d(x, **conf))
        g = jnp.asarray(case["rng"].random(size=y.shape) + 0.5)
        fast, plain = jax.jit(both)(x, g)
        assert_close(fast, plain)
    stride = case["size"] if case["stride"] is None else case["stride"]
    stride = (stride, stride) if isinstance(stride, int) else stride
    want = route_to_first_max(case["x"], np.asarray(g), case["size"], stride, case["pads"])
    np.testing.assert_allclose(np.asarray(fast), want, rtol=1e-12, atol=1e-12)


def test_max_pool2d_overlapping_windows_add_through_the_custom_vjp() -> None:
    """One pixel, the maximum of four 3x3 windows at stride 1, collects all four gradients."""
    with jax.enable_x64(True):
        x = jnp.zeros((1, 4, 4, 1)).at[0, 2, 2, 0].set(1.0)
        g = jnp.arange(1.0, 5.0).reshape(1, 2, 2, 1)
        dx = np.asarray(jax.vjp(lambda x: ops.max_pool2d(x, 3, 1), x)[1](g)[0])
    assert dx[0, 2, 2, 0] == 10.0
    assert dx.sum() == 10.0


@pytest.mark.parametrize(
    ("op", "args"),
    [
        (lambda x, w: ops.conv2d(x, w, padding="same"), ((1, 5, 5, 2), (3, 3, 2, 2))),
        (lambda x: ops.max_pool2d(x), ((1, 4, 4, 2),)),
    ],
    ids=["conv2d", "max_pool2d"],
)
def test_custom_vjp_ops_have_no_forward_mode_but_the_reference_has(op: Any, args: Any) -> None:
    """Reverse mode only: ``jax.jvp`` fails loudly; the reference ops still support it."""
    arrays = tuple(jnp.ones(shape) for shape in args)
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(op, arrays, arrays)
    plain = {1: reference_max_pool2d, 2: lambda x, w: reference_conv2d(x, w, padding="same")}
    y, dy = jax.jvp(plain[len(args)], arrays, arrays)
    assert dy.shape == y.shape


def swapped_offsets(padded: jax.Array, offset: Any, out: Any, strides: Any) -> jax.Array:
    """The article's ``input[r+kr][c+kc]`` with ``kr`` and ``kc`` swapped."""
    return _windows.shifted(padded, (offset[1], offset[0]), out, strides)


def last_max_index(pixels: jax.Array) -> jax.Array:
    """The tie rule flipped: the *last* maximum of the window wins."""
    last = pixels.shape[-1] - 1
    return (last - jnp.argmax(pixels[..., ::-1], axis=-1)).astype(jnp.int32)


@pytest.mark.parametrize("c_in", [1, 8])  # the patches and the offsets formula
def test_a_wrong_kernel_gradient_fails_the_comparison(
    monkeypatch: pytest.MonkeyPatch, c_in: int
) -> None:
    monkeypatch.setattr(_conv_grad, "shifted", swapped_offsets)
    rng = np.random.default_rng(c_in)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(2, 6, 6, c_in)))
        w = jnp.asarray(rng.normal(size=(3, 3, c_in, 2)))
        g = jnp.asarray(rng.normal(size=(2, 6, 6, 2)))
        fast = jax.vjp(lambda w: ops.conv2d(x, w, padding="same"), w)[1](g)[0]
        plain = jax.vjp(lambda w: reference_conv2d(x, w, padding="same"), w)[1](g)[0]
    assert not np.allclose(fast, plain, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("stride", [2, 1])  # tiling and overlapping windows
def test_a_wrong_tie_rule_fails_the_comparison(
    monkeypatch: pytest.MonkeyPatch, stride: int
) -> None:
    monkeypatch.setattr(_pool_grad, "first_max_index", last_max_index)
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(stride).integers(0, 2, size=(2, 6, 6, 2)) * 1.0)
        y, plain_vjp = jax.vjp(lambda x: reference_max_pool2d(x, 2, stride), x)
        g = jnp.ones_like(y)
        fast = jax.vjp(lambda x: ops.max_pool2d(x, 2, stride), x)[1](g)[0]
        assert not np.allclose(fast, plain_vjp(g)[0])
