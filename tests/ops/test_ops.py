"""Forward ops against the NumPy loop oracle, lax against sliding."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxcnn import ops
from jaxcnn.ops import reference_max_pool2d
from tests import oracle, rounding, strategies

Pads = tuple[tuple[int, int], tuple[int, int]]
IMPLS: list[Any] = ["lax", "sliding"]
FLOAT32_EXAMPLES = max(15, settings().max_examples // 2)  # float64 (above) is the exact check


def conv_cases() -> st.SearchStrategy[dict[str, Any]]:
    return strategies.conv_cases(max_side=9, max_c_in=4, max_batch=3, optional_bias=True)


def run_conv(case: dict[str, Any], impl: Any, dtype: Any) -> np.ndarray:
    b = None if case["b"] is None else jnp.asarray(case["b"], dtype)
    y = ops.conv2d(
        jnp.asarray(case["x"], dtype),
        jnp.asarray(case["w"], dtype),
        b,
        stride=case["stride"],
        padding=case["padding"],
        impl=impl,
    )
    return np.asarray(y)


def conv_oracle(case: dict[str, Any]) -> np.ndarray:
    return oracle.conv2d(case["x"], case["w"], case["b"], case["stride"], case["padding"])


def conv_abs_sum(x: Any, w: Any, b: Any, stride: Any, padding: Any) -> np.ndarray:
    """``sum(|terms|)`` of every output: the oracle on ``|x|``, ``|w|``, ``|b|``."""
    abs_b = None if b is None else np.abs(np.asarray(b, np.float64))
    return oracle.conv2d(
        np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(w, np.float64)), abs_b, stride, padding
    )


def conv_terms(w: Any, b: Any) -> int:
    """Terms one output pixel sums: ``kh * kw * C_in`` products, and the bias."""
    kh, kw, c_in, _ = np.shape(w)
    return kh * kw * c_in + (b is not None)


@pytest.mark.parametrize("impl", IMPLS)
@given(case=conv_cases())
@strategies.conv_corners
def test_conv2d_matches_oracle_float64(impl: Any, case: dict[str, Any]) -> None:
    with jax.enable_x64(True):
        got = run_conv(case, impl, jnp.float64)
    want = conv_oracle(case)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", [*IMPLS, "auto"])
@settings(max_examples=FLOAT32_EXAMPLES)
@given(case=conv_cases())
def test_conv2d_matches_oracle_float32(impl: Any, case: dict[str, Any]) -> None:
    # float32 sums of up to 64 products in an order that depends on impl, XLA and the CPU:
    # within the worst-case rounding bound of any summation order (tests/rounding.py).
    got = run_conv(case, impl, jnp.float32)
    assert got.dtype == np.float32
    x, w, b, stride, padding = (case[k] for k in ("x", "w", "b", "stride", "padding"))
    bound = rounding.float32_vs_exact(conv_abs_sum(x, w, b, stride, padding), conv_terms(w, b))
    rounding.assert_within(got, conv_oracle(case), bound)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv2d_jit_equals_eager(impl: Any, variant: Any) -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 9, 8, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 2, 3, 5)), jnp.float32)
    b = jnp.asarray(rng.normal(size=5), jnp.float32)
    conv = functools.partial(ops.conv2d, stride=(2, 1), padding="same", impl=impl)
    got = variant(conv)(x, w, b)
    # jit may fuse and order the sums otherwise than eager dispatch: the bound of two orders.
    abs_sum = conv_abs_sum(x, w, b, (2, 1), "same")
    rounding.assert_within(got, conv(x, w, b), rounding.float32_vs_float32(abs_sum, 3 * 2 * 3 + 1))


def test_article_stride_example_positions() -> None:
    """5x5 input, 3x3 kernel, stride 2: kernel placed at (0,0), (0,2), (2,0), (2,2)."""
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    w = np.zeros((3, 3, 1, 1))
    w[0, 0] = 1.0  # picks the top-left pixel of each placement
    for impl in IMPLS:
        y = ops.conv2d(
            jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), stride=2, impl=impl
        )
        np.testing.assert_array_equal(y[0, :, :, 0], [[0.0, 2.0], [10.0, 12.0]])


def test_multichannel_kernel_sums_per_channel_results() -> None:
    """A 2-channel kernel = the sum of each channel's own single-channel conv."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(1, 3, 3, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(2, 2, 2, 1)), jnp.float32)
    for impl in IMPLS:
        whole = ops.conv2d(x, w, impl=impl)
        first = ops.conv2d(x[..., :1], w[:, :, :1], impl=impl)
        second = ops.conv2d(x[..., 1:], w[:, :, 1:], impl=impl)
        parts = first + second
        # 8 products in one sum against two sums of 4 and one addition: two orders of the
        # same 8 terms (the extra addition is one of the n - 1 a sum of 8 may take).
        bound = rounding.float32_vs_float32(conv_abs_sum(x, w, None, 1, "valid"), 8)
        rounding.assert_within(whole, parts, bound)


def test_same_padding_keeps_size_and_even_kernels_pad_after() -> None:
    x = jnp.ones((1, 28, 28, 1), jnp.float32)
    assert ops.conv2d(x, jnp.ones((3, 3, 1, 2), jnp.float32), padding="same").shape == (
        1,
        28,
        28,
        2,
    )
    # Even kernel: one zero before, one after... for k=2 zero before, one after.
    x = jnp.ones((1, 3, 3, 1), jnp.float32)
    y = ops.conv2d(x, jnp.ones((2, 2, 1, 1), jnp.float32), padding="same")
    np.testing.assert_array_equal(y[0, :, :, 0], [[4, 4, 2], [4, 4, 2], [2, 2, 1]])


@pytest.mark.parametrize(
    ("args", "want"),
    [
        ((5, 3), 3),
        ((5, 3, 2), 2),
        ((28, 3), 26),
        ((28, 3, 1, "same"), 28),
        ((28, 3, 1, 1), 28),
        ((28, 5, 1, 2), 28),
        ((28, 2, 1, "same"), 28),
        ((28, 3, 2, "same"), 14),
        ((7, 3, 2, (0, 1)), 3),
        ((26, 2, 2), 13),
        ((11, 2, 2), 5),
    ],
)
def test_conv_output_size(args: tuple[Any, ...], want: int) -> None:
    assert ops.conv_output_size(*args) == want


def pool_cases() -> st.SearchStrategy[dict[str, Any]]:
    return strategies.pool_cases(max_side=8, max_batch=2, max_channels=3)


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(case=pool_cases())
@strategies.pool_corners
def test_pooling_matches_oracle(kind: str, case: dict[str, Any]) -> None:
    pool = {"max": ops.max_pool2d, "avg": ops.avg_pool2d}[kind]
    ref = {"max": oracle.max_pool2d, "avg": oracle.avg_pool2d}[kind]
    want = ref(case["x"], case["size"], case["stride"], case["padding"])
    with jax.enable_x64(True):
        got = pool(jnp.asarray(case["x"]), case["size"], case["stride"], case["padding"])
        assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)
    x32 = np.asarray(case["x"], np.float32)
    got32 = np.asarray(pool(jnp.asarray(x32), case["size"], case["stride"], case["padding"]))
    if kind == "max":  # a maximum only selects: exact on the float32 input
        np.testing.assert_array_equal(
            got32, ref(x32, case["size"], case["stride"], case["padding"])
        )
    else:  # a mean of at most kh * kw pixels: its sum in any order, then one division
        window = int(np.prod(np.broadcast_to(case["size"], (2,))))
        mean_abs = ref(np.abs(case["x"]), case["size"], case["stride"], case["padding"])
        rounding.assert_within(got32, want, rounding.float32_vs_exact(mean_abs, window + 1))


def test_pooling_under_jit(variant: Any) -> None:
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6, 5, 3)), jnp.float32)
    for pool in (ops.max_pool2d, ops.avg_pool2d):
        fn = functools.partial(pool, size=2, stride=1, padding="same")
        if pool is ops.max_pool2d:  # selection: the same pixels, exactly
            np.testing.assert_array_equal(variant(fn)(x), fn(x))
        else:  # means of 2x2 windows summed in two orders, each then divided once
            bound = rounding.float32_vs_float32(ops.avg_pool2d(jnp.abs(x), 2, 1, "same"), 4 + 1)
            rounding.assert_within(variant(fn)(x), fn(x), bound)


def test_article_max_pool_28_to_14() -> None:
    x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 28, 28, 2)), jnp.float32)
    y = ops.max_pool2d(x)
    assert y.shape == (1, 14, 14, 2)
    np.testing.assert_array_equal(y[0, 3, 5], x[0, 6:8, 10:12].max(axis=(0, 1)))


def test_global_avg_pool_is_mean_per_channel() -> None:
    x = jnp.asarray(np.random.default_rng(4).normal(size=(3, 5, 4, 2)), jnp.float32)
    # The exact mean (float64 of the float32 input), to the bound of a float32 sum of 20
    # pixels and a division: the pixels cancel, so no relative tolerance would be derived.
    x64 = np.asarray(x, np.float64)
    bound = rounding.float32_vs_exact(np.abs(x64).mean(axis=(1, 2)), 5 * 4 + 1)
    rounding.assert_within(ops.global_avg_pool2d(x), x64.mean(axis=(1, 2)), bound)


def test_flatten_is_channel_major() -> None:
    x = np.random.default_rng(5).normal(size=(2, 14, 14, 2))
    got = np.asarray(ops.flatten(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, oracle.flatten(x), rtol=1e-6)
    np.testing.assert_allclose(got[:, :196].reshape(2, 14, 14), x[..., 0], rtol=1e-6)


def test_unflatten_inverts_flatten() -> None:
    x = jnp.asarray(np.random.default_rng(6).normal(size=(2, 3, 4, 5)), jnp.float32)
    np.testing.assert_array_equal(ops.unflatten(ops.flatten(x), (3, 4, 5)), x)


def test_dense_matches_oracle(variant: Any) -> None:
    rng = np.random.default_rng(7)
    x, w, b = rng.normal(size=(3, 7)), rng.normal(size=(7, 4)), rng.normal(size=4)
    with jax.enable_x64(True):
        got = variant(ops.dense)(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    np.testing.assert_allclose(np.asarray(got), oracle.dense(x, w, b), rtol=1e-12)
    rounding.assert_within(
        ops.dense(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32)),
        oracle.dense(x, w, None),
        rounding.float32_vs_exact(np.abs(x) @ np.abs(w), 7),  # 7 products per output
    )


def test_activations() -> None:
    z = jnp.asarray([-1e4, -2.0, 0.0, 3.0, 1e4], jnp.float32)
    np.testing.assert_array_equal(ops.relu(z), [0, 0, 0, 3, 1e4])
    with np.errstate(over="ignore"):
        want = 1 / (1 + np.exp(-np.asarray(z, np.float64)))
    np.testing.assert_allclose(ops.sigmoid(z), want, rtol=1e-6)
    assert np.all(np.isfinite(ops.sigmoid(z)))
    probs = ops.softmax(jnp.asarray([[1e4, 0.0, -1e4], [1.0, 2.0, 3.0]], jnp.float32))
    np.testing.assert_allclose(probs.sum(axis=1), [1, 1], rtol=1e-6)
    np.testing.assert_allclose(probs[0], [1, 0, 0], atol=1e-6)
    assert float(jax.grad(lambda v: ops.relu(v).sum())(jnp.zeros(1))[0]) == 0.0


def test_losses_match_oracle() -> None:
    rng = np.random.default_rng(8)
    logits, labels = rng.normal(size=6) * 3, rng.integers(0, 2, size=6)
    with jax.enable_x64(True):
        got = ops.binary_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
        np.testing.assert_allclose(
            float(got), oracle.binary_cross_entropy(logits, labels), rtol=1e-12
        )
        z, k = rng.normal(size=(5, 4)) * 3, rng.integers(0, 4, size=5)
        got = ops.softmax_cross_entropy(jnp.asarray(z), jnp.asarray(k))
        np.testing.assert_allclose(float(got), oracle.softmax_cross_entropy(z, k), rtol=1e-12)


def test_bce_accepts_column_logits_without_broadcasting() -> None:
    logits = jnp.asarray([[2.0], [-1.0], [0.5]], jnp.float32)
    labels = jnp.asarray([1, 0, 1])
    # The same three elementwise losses; their mean may be summed in another order (an
    # [N, 1] and an [N] reduction): positive terms, so within 2 gamma(3) of each other.
    np.testing.assert_allclose(
        ops.binary_cross_entropy(logits, labels),
        ops.binary_cross_entropy(logits[:, 0], labels),
        rtol=2 * rounding.gamma(3),
    )


@pytest.mark.parametrize("big", [1e4, -1e4])
def test_losses_stable_at_huge_logits(big: float) -> None:
    logits = jnp.asarray([big, -big], jnp.float32)
    labels = jnp.asarray([big < 0, big > 0], jnp.float32)  # both predictions wrong
    loss, grad = jax.value_and_grad(ops.binary_cross_entropy)(logits, labels)
    np.testing.assert_allclose(loss, abs(big), rtol=1e-6)
    want = (np.array([big > 0, big < 0], np.float32) - np.asarray(labels)) / 2
    np.testing.assert_allclose(grad, want, atol=1e-7)
    z = jnp.asarray([[big, 0.0, -big]], jnp.float32)
    loss, grad = jax.value_and_grad(ops.softmax_cross_entropy)(z, jnp.asarray([1]))
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, abs(big), rtol=1e-6)


def test_loss_gradients_are_output_minus_label() -> None:
    rng = np.random.default_rng(9)
    with jax.enable_x64(True):
        z, y = jnp.asarray(rng.normal(size=4)), jnp.asarray([0.0, 1.0, 1.0, 0.0])
        grad = jax.grad(ops.binary_cross_entropy)(z, y)
        np.testing.assert_allclose(grad, (jax.nn.sigmoid(z) - y) / 4, rtol=1e-12)
        zz, k = jnp.asarray(rng.normal(size=(3, 5))), jnp.asarray([4, 0, 2])
        grad = jax.grad(ops.softmax_cross_entropy)(zz, k)
        want = (jax.nn.softmax(zz) - jax.nn.one_hot(k, 5, dtype=zz.dtype)) / 3
        np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-15)


def test_weighted_losses_mask_examples() -> None:
    rng = np.random.default_rng(10)
    z = jnp.asarray(rng.normal(size=5), jnp.float32)
    y = jnp.asarray([0, 1, 1, 0, 1])
    mask = jnp.asarray([1, 1, 1, 0, 0], jnp.float32)
    np.testing.assert_allclose(
        ops.binary_cross_entropy(z, y, weights=mask),
        ops.binary_cross_entropy(z[:3], y[:3]),
        rtol=1e-6,
    )
    zz = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    k = jnp.asarray([0, 2, 1, 1, 0])
    np.testing.assert_allclose(
        ops.softmax_cross_entropy(zz, k, weights=mask),
        ops.softmax_cross_entropy(zz[:3], k[:3]),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match=r"weights must have shape \(N,\) = \(5,\), got \(4,\)"):
        ops.binary_cross_entropy(z, y, weights=mask[:4])


@pytest.mark.parametrize("pool", [ops.max_pool2d, ops.avg_pool2d, reference_max_pool2d])
def test_pooling_is_differentiable_under_jit(pool: Any) -> None:
    """Regression: a traced init value made reduce_window non-differentiable."""
    x = jnp.asarray(np.random.default_rng(11).normal(size=(2, 4, 4, 3)), jnp.float32)
    grad = jax.jit(jax.grad(lambda v: pool(v, 2, 1, "same").sum()))(x)
    assert grad.shape == x.shape
    assert float(jnp.abs(grad).sum()) > 0
