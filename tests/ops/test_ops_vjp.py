"""The custom VJPs of ``ops.conv2d`` and ``ops.max_pool2d`` against the NumPy loop oracle.

The fast backward rules (``jaxcnn/ops/_conv_backward.py``,
``jaxcnn/ops/_pool_backward.py``) must equal :mod:`tests.oracle`'s loops in
float64 on random configurations and on the corners of :mod:`tests.strategies`:
strides, every padding form, channel counts on both sides of the
patches/offsets threshold, max-pool ties (first maximum, row-major) and
overlapping windows. Every backward formula is checked on its own too, not
only the one :func:`choose_backward` picks; strides and paddings are then
resolved by the oracle's rule, not the library's.
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
from jaxcnn.ops import _conv_backward
from jaxcnn.ops._conv_backward import BackwardPlan, choose_backward, conv_backward
from tests import oracle, strategies

EXAMPLES = max(10, settings().max_examples // 4)  # each example compiles its own programs
TOL = 1e-10  # float64 rounding at these sizes is ~1e-14


def conv_cases() -> st.SearchStrategy[dict[str, Any]]:
    """Kernel 1-4, stride 1-3, any padding, 1-9 input channels (depth 1-144), batch 1-3."""
    return strategies.conv_cases(max_side=8, max_c_in=9, max_batch=3, optional_bias=True)


def assert_close(got: Any, want: Any) -> None:
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL, atol=TOL)


def conv_gradient(case: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """A random upstream gradient ``g`` and the oracle's ``(dx, dw, db)`` for it."""
    y = oracle.conv2d(case["x"], case["w"], None, case["stride"], case["padding"])
    g = np.random.default_rng(case["seed"]).normal(size=y.shape)
    return g, oracle.conv2d_backward(case["x"], case["w"], g, case["stride"], case["padding"])


@settings(max_examples=EXAMPLES)
@given(case=conv_cases())
@strategies.conv_corners
def test_conv2d_custom_vjp_equals_the_oracle(case: dict[str, Any]) -> None:
    """Both forward implementations (one custom VJP), with and without a bias."""
    conf = {"stride": case["stride"], "padding": case["padding"]}

    def vjps(x: jax.Array, w: jax.Array, b: Any, g: jax.Array) -> Any:
        return [
            jax.vjp(lambda *a, impl=impl: ops.conv2d(*a, **conf, impl=impl), x, w, b)[1](g)
            for impl in ("lax", "sliding")
        ]

    g, (dx, dw, db) = conv_gradient(case)
    with jax.enable_x64(True):
        x, w = jnp.asarray(case["x"]), jnp.asarray(case["w"])
        b = None if case["b"] is None else jnp.asarray(case["b"])
        for got in jax.jit(vjps)(x, w, b, jnp.asarray(g)):
            assert got[2] is None if b is None else got[2].dtype == jnp.float64
            assert_close(got[:2], (dx, dw))
            if b is not None:
                assert_close(got[2], db)


PLANS = [
    BackwardPlan(dx, dw) for dx in _conv_backward.INPUT_GRADS for dw in _conv_backward.KERNEL_GRADS
]


@settings(max_examples=EXAMPLES)
@given(case=conv_cases())
@strategies.conv_corners
def test_every_backward_formula_equals_the_oracle(case: dict[str, Any]) -> None:
    """Each (dx, dw) pair, not only the one ``choose_backward`` picks for the shape."""
    strides = oracle.pair(case["stride"])

    def every_plan(x: jax.Array, w: jax.Array, g: jax.Array) -> Any:
        return [conv_backward(x, w, g, strides, case["pads"], plan) for plan in PLANS]

    g, want = conv_gradient(case)
    with jax.enable_x64(True):
        x, w = jnp.asarray(case["x"]), jnp.asarray(case["w"])
        for got in jax.jit(every_plan)(x, w, jnp.asarray(g)):
            assert_close(got, want)


def test_the_article_layers_get_the_measured_plans() -> None:
    """The rule of docs/benchmarks.md: im2col patches for shallow inputs, offsets for deep."""
    assert choose_backward((32, 28, 28, 1), (3, 3, 1, 2), (1, 1)).dw == "patches"
    assert choose_backward((128, 28, 28, 1), (3, 3, 1, 32), (1, 1)).dw == "patches"
    assert choose_backward((128, 13, 13, 32), (3, 3, 32, 64), (1, 1)).dw == "offsets"


@settings(max_examples=EXAMPLES)
@given(
    case=strategies.pool_cases(
        max_side=8, max_batch=3, max_channels=3, ties=st.sampled_from([True, True, False])
    )
)
@strategies.pool_corners
def test_max_pool2d_custom_vjp_equals_the_oracle(case: dict[str, Any]) -> None:
    """Ties in most cases: each window's gradient goes to its first maximum, row-major."""
    conf = {"size": case["size"], "stride": case["stride"], "padding": case["padding"]}
    want_y = oracle.max_pool2d(case["x"], **conf)
    g = np.random.default_rng(case["seed"]).random(size=want_y.shape) + 0.5
    want = oracle.max_pool2d_backward(case["x"], g, **conf)

    def forward_and_vjp(x: jax.Array, g: jax.Array) -> Any:
        y, vjp = jax.vjp(lambda x: ops.max_pool2d(x, **conf), x)
        return y, vjp(g)[0]

    with jax.enable_x64(True):
        y, dx = jax.jit(forward_and_vjp)(jnp.asarray(case["x"]), jnp.asarray(g))
    np.testing.assert_array_equal(np.asarray(y), want_y)
    assert_close(dx, want)


@settings(max_examples=EXAMPLES)
@given(case=strategies.pool_cases(max_side=8, max_batch=3, max_channels=3))
@strategies.pool_corners
def test_avg_pool2d_gradient_equals_the_oracle(case: dict[str, Any]) -> None:
    """Not a custom VJP (JAX differentiates ``reduce_window``): the padding counts are."""
    conf = {"size": case["size"], "stride": case["stride"], "padding": case["padding"]}
    want_y = oracle.avg_pool2d(case["x"], **conf)
    g = np.random.default_rng(case["seed"]).normal(size=want_y.shape)
    want = oracle.avg_pool2d_backward(case["x"], g, **conf)
    with jax.enable_x64(True):
        x = jnp.asarray(case["x"])
        dx = jax.jit(lambda x, g: jax.vjp(lambda x: ops.avg_pool2d(x, **conf), x)[1](g)[0])
        assert_close(dx(x, jnp.asarray(g)), want)


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
def test_custom_vjp_ops_have_no_forward_mode_but_the_reference_ops_have(op: Any, args: Any) -> None:
    """Reverse mode only: ``jax.jvp`` fails loudly; ``ops.reference_*`` still support it."""
    arrays = tuple(jnp.ones(shape) for shape in args)
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(op, arrays, arrays)
    plain = {
        1: ops.reference_max_pool2d,
        2: lambda x, w: ops.reference_conv2d(x, w, padding="same"),
    }
    y, dy = jax.jvp(plain[len(args)], arrays, arrays)
    assert dy.shape == y.shape
