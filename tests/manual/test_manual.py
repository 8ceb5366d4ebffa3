"""Every manual backward formula and custom-VJP twin against the NumPy oracle, in float64.

The reference is :mod:`tests.oracle`: plain loops that share no code with
jaxcnn (not even its padding rule), and for the losses the complex-step
derivative of the loss itself, so no hand-derived formula is checked against
a copy of itself. The manual side never calls autodiff. Tolerance 1e-10
(float64 rounding is ~1e-14 at these sizes). The custom-VJP twins in
:mod:`jaxcnn.manual` are checked in the same examples, so "training on manual
gradients" is covered by the same evidence. Besides the random search, every
property test runs the corners of :mod:`tests.strategies`.
"""

from __future__ import annotations

from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jaxcnn import manual, ops
from tests import oracle, reference, strategies

RTOL = ATOL = 1e-10  # float64 rounding at these sizes is ~1e-14


def assert_close(got: Any, want: Any) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=RTOL, atol=ATOL)


# Each example compiles its own XLA program (new shapes), ~0.3-1 s on 2 cores:
# a quarter of the profile's examples keeps this file fast; the "ci" and
# "thorough" profiles (HYPOTHESIS_PROFILE) scale it up.
EXAMPLES = max(10, settings().max_examples // 4)
CORE_EXAMPLES = max(15, settings().max_examples * 3 // 8)  # conv and pooling: the heart of it


def conv_cases() -> st.SearchStrategy[dict[str, Any]]:
    """Kernel 1-4, stride 1-3, every padding form, 1-4 channels in/out, batch 1-5."""
    return strategies.conv_cases(max_side=9, max_c_in=4, max_batch=5)


def assert_trees_close(got: Any, want: Any) -> None:
    assert str(jax.tree.structure(got)) == str(jax.tree.structure(want))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.shape == b.shape
        assert_close(a, b)


@settings(max_examples=CORE_EXAMPLES)
@given(case=conv_cases())
@strategies.conv_corners
def test_conv2d_backward_equals_the_oracle(case: dict[str, Any]) -> None:
    """``conv2d_backward`` with every ``impl``, and the ``manual.conv2d`` twin's VJP."""
    conf = {"stride": case["stride"], "padding": case["padding"]}
    y = oracle.conv2d(case["x"], case["w"], None, case["stride"], case["padding"])
    g = np.random.default_rng(case["seed"]).normal(size=y.shape)
    want = oracle.conv2d_backward(case["x"], case["w"], g, case["stride"], case["padding"])

    def every_way(x: jax.Array, w: jax.Array, b: jax.Array, g: jax.Array) -> Any:
        formulas = [
            manual.conv2d_backward(x, w, g, **conf, impl=impl)
            for impl in ("lax", "sliding", "auto")
        ]
        # The twin runs conv2d_backward (default impl) as its VJP: its plumbing is what is new.
        twin = jax.vjp(lambda *a: manual.conv2d(*a, **conf), x, w, b)[1](g)
        return [*formulas, twin]

    with jax.enable_x64(True):
        x, w, b = (jnp.asarray(case[k]) for k in ("x", "w", "b"))
        for got in jax.jit(every_way)(x, w, b, jnp.asarray(g)):
            assert_trees_close(tuple(got), want)


@pytest.mark.parametrize(
    ("impl", "stride", "padding"),
    [("lax", 2, "same"), ("sliding", (1, 3), ((2, 0), (1, 2))), ("auto", 1, "valid")],
)
def test_conv2d_twin_equals_the_oracle_eagerly(impl: Any, stride: Any, padding: Any) -> None:
    """``manual.conv2d``: the forward of ops.conv2d with the manual backward (no jit)."""
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(2, 7, 8, 3)), rng.normal(size=(3, 2, 3, 4)), rng.normal(size=4)
    conf = {"stride": stride, "padding": padding}
    y_want = oracle.conv2d(x, w, b, stride, padding)
    g = rng.normal(size=y_want.shape)
    want = oracle.conv2d_backward(x, w, g, stride, padding)
    with jax.enable_x64(True):
        xj, wj, bj, gj = (jnp.asarray(a) for a in (x, w, b, g))
        y, vjp = jax.vjp(
            lambda *a: manual.conv2d(*a, **conf, impl=impl, backward_impl=impl), xj, wj, bj
        )
        np.testing.assert_array_equal(y, ops.conv2d(xj, wj, bj, **conf, impl=impl))
        assert_close(y, y_want)
        assert_trees_close(vjp(gj), want)
        no_bias = jax.vjp(lambda *a: manual.conv2d(*a, **conf, impl=impl), xj, wj)[1](gj)
        assert_trees_close(no_bias, want[:2])  # b=None: no bias, no bias gradient


def test_conv2d_backward_article_formula_by_loops() -> None:
    """``dw[kr, kc] = sum_(r,c) input[r+kr, c+kc] * grad[r, c]`` with the article's loops."""
    rng = np.random.default_rng(0)
    image, grad = rng.normal(size=(7, 6)), rng.normal(size=(5, 4))
    want = np.zeros((3, 3))
    for kr in range(3):
        for kc in range(3):
            for r in range(5):
                for c in range(4):
                    want[kr, kc] += image[r + kr, c + kc] * grad[r, c]
    with jax.enable_x64(True):
        x = jnp.asarray(image).reshape(1, 7, 6, 1)
        _, dw, db = manual.conv2d_backward(
            x, jnp.zeros((3, 3, 1, 1)), jnp.asarray(grad)[None, :, :, None]
        )
    assert_close(np.asarray(dw)[:, :, 0, 0], want)
    assert_close(float(db[0]), grad.sum())


@settings(max_examples=CORE_EXAMPLES)
@given(case=strategies.pool_cases(max_side=8, max_batch=5, max_channels=4))
@strategies.pool_corners
def test_pool_backward_equals_the_oracle(case: dict[str, Any]) -> None:
    """Max (first maximum wins, ties or not) and average pooling: formula and twin."""
    conf = {"size": case["size"], "stride": case["stride"], "padding": case["padding"]}
    g = np.random.default_rng(case["seed"]).random(size=oracle.max_pool2d(case["x"], **conf).shape)
    want_max = oracle.max_pool2d_backward(case["x"], g, **conf)
    want_avg = oracle.avg_pool2d_backward(case["x"], g, **conf)

    def every_way(x: jax.Array, g: jax.Array) -> Any:
        max_twin = jax.vjp(lambda x: manual.max_pool2d(x, **conf), x)[1](g)[0]
        avg_twin = jax.vjp(lambda x: manual.avg_pool2d(x, **conf), x)[1](g)[0]
        return (
            (manual.max_pool2d_backward(x, g, **conf), max_twin),
            (manual.avg_pool2d_backward(x, g, **conf), avg_twin),
        )

    with jax.enable_x64(True):
        maxes, avgs = jax.jit(every_way)(jnp.asarray(case["x"]), jnp.asarray(g))
    for got in maxes:
        assert_close(got, want_max)
    for got in avgs:
        assert_close(got, want_avg)


@settings(max_examples=EXAMPLES)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)),
    seed=st.integers(0, 2**32 - 1),
)
@example(shape=(3, 1, 1, 2), seed=0)  # a 1x1 image
def test_global_avg_pool2d_backward_equals_the_oracle(
    shape: tuple[int, int, int, int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x, g = rng.normal(size=shape), rng.normal(size=(shape[0], shape[3]))
    want = oracle.global_avg_pool2d_backward(g, shape)
    with jax.enable_x64(True):
        xj, gj = jnp.asarray(x), jnp.asarray(g)
        assert_close(ops.global_avg_pool2d(xj), oracle.global_avg_pool2d(x))
        assert_close(manual.global_avg_pool2d_backward(gj, shape), want)
        assert_close(jax.vjp(manual.global_avg_pool2d, xj)[1](gj)[0], want)
        assert_close(jax.vjp(ops.global_avg_pool2d, xj)[1](gj)[0], want)


@settings(max_examples=EXAMPLES)
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)),
    seed=st.integers(0, 2**32 - 1),
)
@example(shape=(2, 3, 4, 3), seed=0)  # H != W, several channels: an order slip shows
def test_flatten_and_relu_backward_equal_the_oracle(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    x[0, 0, 0, 0] = 0.0  # relu's kink: gradient 0 there
    g_flat = rng.normal(size=(shape[0], int(np.prod(shape[1:]))))
    g = rng.normal(size=shape)
    want_flat = oracle.flatten_backward(g_flat, shape)
    want_relu = oracle.relu_backward(x, g)

    def every_way(x: jax.Array, g_flat: jax.Array, g: jax.Array) -> Any:
        return (
            manual.flatten_backward(g_flat, x.shape),
            jax.vjp(manual.flatten, x)[1](g_flat)[0],
        ), (manual.relu_backward(x, g), jax.vjp(manual.relu, x)[1](g)[0])

    with jax.enable_x64(True):
        flats, relus = jax.jit(every_way)(*(jnp.asarray(a) for a in (x, g_flat, g)))
    for got in flats:
        np.testing.assert_array_equal(got, want_flat)  # pure data movement: exact
    for got in relus:
        np.testing.assert_array_equal(got, want_relu)


@settings(max_examples=EXAMPLES)
@given(
    n=st.integers(1, 5),
    n_in=st.integers(1, 6),
    n_out=st.integers(1, 4),
    bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_backward_equals_the_oracle(
    n: int, n_in: int, n_out: int, bias: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(n, n_in)), rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)
    g = rng.normal(size=(n, n_out))
    want = oracle.dense_backward(x, w, g)

    def every_way(x: jax.Array, w: jax.Array, b: Any, g: jax.Array) -> Any:
        return manual.dense_backward(x, w, g), jax.vjp(manual.dense, x, w, b)[1](g)

    with jax.enable_x64(True):
        xj, wj, gj = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)
        formula, twin = jax.jit(every_way)(xj, wj, jnp.asarray(b) if bias else None, gj)
    assert_trees_close(formula, want)
    assert_trees_close(twin if bias else twin[:2], want if bias else want[:2])
    assert bias or twin[2] is None


def bce_case(rng: np.random.Generator, shape: tuple[int, ...], soft: bool) -> Any:
    """Logits of ``shape`` (about +-3), labels of that shape (0/1 or soft), weights ``[N]``."""
    logits = rng.normal(size=shape) * 3
    labels = rng.random(size=shape) if soft else rng.integers(0, 2, size=shape) * 1.0
    weights = rng.random(size=shape[0]) + 0.1
    return logits, labels, weights


@settings(max_examples=EXAMPLES)
@given(
    n=st.integers(1, 5),
    logits_per_example=st.sampled_from([None, 1, 2, 3, 4]),
    weighted=st.booleans(),
    soft=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@example(n=4, logits_per_example=3, weighted=False, soft=False, seed=0)  # multi-logit BCE
@example(n=3, logits_per_example=2, weighted=True, soft=True, seed=1)
def test_sigmoid_bce_gradients_equal_the_complex_step(
    n: int, logits_per_example: int | None, weighted: bool, soft: bool, seed: int
) -> None:
    """Logits ``[N]``, ``[N, 1]`` or ``[N, m]``; with and without weights; 0/1 or soft labels.

    The formula, the twin's gradients in logits, labels and weights, and
    ``jax.grad`` of ``ops.binary_cross_entropy``, all against the complex-step
    derivative of the oracle's loss loop.
    """
    shape = (n,) if logits_per_example is None else (n, logits_per_example)
    z, y, w = bce_case(np.random.default_rng(seed), shape, soft)
    w_or_none = w if weighted else None
    want = [
        oracle.complex_step_grad(oracle.binary_cross_entropy, [z, y, w_or_none], argnum)
        for argnum in ((0, 1, 2) if weighted else (0, 1))
    ]
    argnums = (0, 1, 2) if weighted else (0, 1)

    def every_way(z: jax.Array, y: jax.Array, w: Any) -> Any:
        def twin(*a: Any) -> jax.Array:
            return manual.binary_cross_entropy(a[0], a[1], weights=a[2])

        def ops_loss(*a: Any) -> jax.Array:
            return ops.binary_cross_entropy(a[0], a[1], weights=a[2])

        return (
            manual.sigmoid_bce_backward(z, y, weights=w),
            jax.grad(twin, argnums)(z, y, w),
            jax.grad(ops_loss, argnums)(z, y, w),
        )

    with jax.enable_x64(True):
        zj, yj = jnp.asarray(z), jnp.asarray(y)
        formula, twin, by_ops = jax.jit(every_way)(zj, yj, None if w_or_none is None else w)
        assert_close(
            manual.binary_cross_entropy(zj, yj, weights=w_or_none),
            oracle.binary_cross_entropy(z, y, w_or_none),
        )
    assert formula.shape == z.shape
    assert_close(formula, want[0])
    for got in (twin, by_ops):
        assert_trees_close(got, tuple(want))


@settings(max_examples=EXAMPLES)
@given(
    n=st.integers(1, 5),
    k=st.integers(2, 6),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@example(n=3, k=4, weighted=True, seed=0)
def test_softmax_ce_gradients_equal_the_complex_step(
    n: int, k: int, weighted: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    z, labels = rng.normal(size=(n, k)) * 3, rng.integers(0, k, size=n)
    w = rng.random(size=n) + 0.1 if weighted else None
    argnums = (0, 2) if weighted else (0,)
    want = [
        oracle.complex_step_grad(oracle.softmax_cross_entropy, [z, labels, w], argnum)
        for argnum in argnums
    ]

    def every_way(z: jax.Array, y: jax.Array, w: Any) -> Any:
        def twin(*a: Any) -> jax.Array:
            return manual.softmax_cross_entropy(a[0], a[1], weights=a[2])

        def ops_loss(*a: Any) -> jax.Array:
            return ops.softmax_cross_entropy(a[0], a[1], weights=a[2])

        return (
            manual.softmax_ce_backward(z, y, weights=w),
            jax.grad(twin, argnums)(z, y, w),
            jax.grad(ops_loss, argnums)(z, y, w),
        )

    with jax.enable_x64(True):
        zj, yj = jnp.asarray(z), jnp.asarray(labels)
        formula, twin, by_ops = jax.jit(every_way)(zj, yj, None if w is None else jnp.asarray(w))
        assert_close(
            manual.softmax_cross_entropy(zj, yj, weights=w),
            oracle.softmax_cross_entropy(z, labels, w),
        )
    assert_close(formula, want[0])
    for got in (twin, by_ops):
        assert_trees_close(got, tuple(want))


def test_losses_gradient_is_output_minus_label_for_one_example() -> None:
    """The article's single example: d loss / d z = sigmoid(z) - label."""
    z = jnp.asarray([0.3], jnp.float32)
    for label in (0.0, 1.0):
        got = manual.sigmoid_bce_backward(z, jnp.asarray([label], jnp.float32))
        np.testing.assert_allclose(got, jax.nn.sigmoid(z) - label, rtol=1e-6)


def test_custom_vjp_ops_under_jit_keep_dtype() -> None:
    """float32 in, float32 gradients out, and not grossly off the float64 plain-lax gradient.

    The values are the float64 tests' business; here a wrong formula or a lost
    cast would move entries by a sizeable fraction of the largest, so 1e-3 of
    it is a robust margin (float32 rounding of these ~20-term sums is ~1e-6).
    """
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 6, 2))
    w = rng.normal(size=(3, 3, 2, 3))

    def loss(x: jax.Array, w: jax.Array) -> jax.Array:
        h = manual.relu(manual.conv2d(x, w, stride=1, padding="same"))
        return jnp.sum(manual.flatten(manual.max_pool2d(h)) ** 2)

    def plain(x: jax.Array, w: jax.Array) -> jax.Array:
        h = jax.nn.relu(reference.conv2d(x, w, None, 1, "same"))
        return jnp.sum(reference.flatten(reference.max_pool2d(h, 2)) ** 2)

    got = jax.jit(jax.grad(loss, (0, 1)))(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32))
    with jax.enable_x64(True):
        want = [np.asarray(b) for b in jax.jit(jax.grad(plain, (0, 1)))(x, w)]
    for a, b in zip(got, want, strict=True):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 * np.abs(b).max())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: manual.conv2d_backward(jnp.ones((28, 28)), jnp.ones((3, 3, 1, 2)), jnp.ones(2)),
            r"conv2d_backward: x must be 4-D \(N, H, W, C\), got shape \(28, 28\)",
        ),
        (
            lambda: manual.conv2d_backward(
                jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 2)), jnp.ones((1, 5, 5, 2))
            ),
            r"conv2d_backward: g must have the forward output's shape \(1, 3, 3, 2\), "
            r"got \(1, 5, 5, 2\)",
        ),
        (
            lambda: manual.conv2d_backward(
                jnp.ones((1, 5, 5, 1)),
                jnp.ones((3, 3, 1, 2)),
                jnp.ones((1, 3, 3, 2)),
                impl=cast(Any, "fft"),
            ),
            r"conv2d_backward: impl must be one of \('auto', 'lax', 'sliding'\), got 'fft'",
        ),
        (
            lambda: manual.max_pool2d_backward(jnp.ones((1, 4, 4, 1)), jnp.ones((1, 3, 3, 1))),
            r"max_pool2d_backward: g must have the forward output's shape \(1, 2, 2, 1\)",
        ),
        (
            lambda: manual.flatten_backward(jnp.ones((2, 392)), (2, 14, 14)),
            r"flatten_backward: x_shape must be \(N, H, W, C\), got \(2, 14, 14\)",
        ),
        (
            lambda: manual.flatten_backward(jnp.ones((2, 390)), (2, 14, 14, 2)),
            r"flatten_backward: g must have the forward output's shape \(2, 392\), got \(2, 390\)",
        ),
        (
            lambda: manual.dense_backward(jnp.ones((2, 3)), jnp.ones((4, 5)), jnp.ones((2, 5))),
            r"dense_backward: x's features \(x.shape\[1\] = 3\) must equal w's rows",
        ),
        (
            lambda: manual.relu_backward(jnp.ones(3), jnp.ones(4)),
            r"relu_backward: g must have the forward output's shape \(3,\), got \(4,\)",
        ),
        (
            lambda: manual.softmax_ce_backward(jnp.ones((2, 3)), jnp.asarray([0.0, 1.0])),
            r"softmax_ce_backward: labels must be integer class ids, got float32",
        ),
        (
            lambda: manual.sigmoid_bce_backward(jnp.ones(3), jnp.ones(3), weights=jnp.ones(2)),
            r"sigmoid_bce_backward: weights must have shape \(N,\) = \(3,\), got \(2,\)",
        ),
    ],
)
def test_errors_name_function_argument_and_values(call: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_mixed_dtypes_are_refused_not_promoted() -> None:
    x = jnp.ones((1, 4, 4, 1), jnp.float32)
    with pytest.raises(TypeError, match="conv2d_backward: expected arguments of one dtype"):
        manual.conv2d_backward(
            x, jnp.ones((3, 3, 1, 1), jnp.float32), jnp.ones((1, 2, 2, 1), jnp.float16)
        )
