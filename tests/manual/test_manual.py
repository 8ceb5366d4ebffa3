"""Every manual backward formula against jax.vjp, in float64, on random configurations.

The reference is always ``jax.vjp`` of the forward op as JAX differentiates
it itself (:mod:`tests.reference`: ``lax.conv_general_dilated`` or the sliding
offset sum, ``lax.reduce_window``), never of :mod:`jaxcnn.ops`' conv and
max-pool, whose custom VJPs share the manual formulas' kernels; the manual
side never calls autodiff. Tolerance 1e-10 (float64 rounding is
~1e-14 at these sizes). The custom-VJP twins in :mod:`jaxcnn.manual` are
checked in the same examples, so "training on manual gradients" is covered by
the same evidence.
"""

from __future__ import annotations

from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxcnn import manual, ops
from tests import strategies
from tests.reference import reference_conv2d, reference_max_pool2d

RTOL = ATOL = 1e-10  # float64 rounding at these sizes is ~1e-14


def assert_close(got: Any, want: Any) -> None:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=RTOL, atol=ATOL)


# Each example compiles its own XLA program (new shapes), ~0.5-1.5 s on 2 cores:
# a quarter of the profile's examples keeps this file fast; the "thorough"
# profile (HYPOTHESIS_PROFILE=thorough) still scales it up.
EXAMPLES = max(10, settings().max_examples // 4)
CORE_EXAMPLES = max(15, settings().max_examples * 3 // 8)  # conv and pooling: the heart of it


def conv_cases() -> st.SearchStrategy[dict[str, Any]]:
    """Kernel 1-4, stride 1-3, every padding form, 1-4 channels in/out, batch 1-5."""
    return strategies.conv_cases(max_side=9, max_c_in=4, max_batch=5)


@st.composite
def pool_cases(draw: st.DrawFn) -> dict[str, Any]:
    """Window 1-3, stride None/1-3 (overlapping, touching, gapped), padding, batch 1-5."""
    case = draw(
        strategies.pool_geometry(
            strides=st.one_of(st.none(), strategies.strides),
            paddings=st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 1)),
            max_side=8,
            max_batch=5,
            max_channels=4,
        )
    )
    # A permutation of distinct values: no two pixels tie, so every window has
    # one maximum and the gradient is unambiguous.
    count = np.prod(case["shape"])
    case["x"] = case["rng"].permutation(count).reshape(case["shape"]) / count
    return case


def random_like(rng: np.random.Generator, array: jax.Array) -> jax.Array:
    return jnp.asarray(rng.normal(size=array.shape), array.dtype)


def assert_trees_close(got: Any, want: Any) -> None:
    assert str(jax.tree.structure(got)) == str(jax.tree.structure(want))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.shape == b.shape
        assert a.dtype == b.dtype
        assert_close(a, b)


@settings(max_examples=CORE_EXAMPLES)
@given(
    case=conv_cases(),
    impl=st.sampled_from(["lax", "sliding", "auto"]),
    forward_impl=st.sampled_from(["lax", "sliding"]),
)
def test_conv2d_backward_matches_vjp(case: dict[str, Any], impl: Any, forward_impl: Any) -> None:
    """Manual backward (any ``impl``) vs ``jax.vjp`` of either plain forward implementation."""
    conf = {"stride": case["stride"], "padding": case["padding"]}

    def both(x: jax.Array, w: jax.Array, b: jax.Array, g: jax.Array) -> Any:
        forward = lambda x, w, b: reference_conv2d(x, w, b, **conf, impl=forward_impl)  # noqa: E731
        return jax.vjp(forward, x, w, b)[1](g), manual.conv2d_backward(x, w, g, **conf, impl=impl)

    with jax.enable_x64(True):
        x, w, b = (jnp.asarray(case[k]) for k in ("x", "w", "b"))
        g = random_like(np.random.default_rng(case["seed"]), ops.conv2d(x, w, b, **conf))
        want, got = jax.jit(both)(x, w, b, g)
        assert_trees_close(got, want)


@pytest.mark.parametrize(
    ("impl", "stride", "padding"),
    [("lax", 2, "same"), ("sliding", (1, 3), ((2, 0), (1, 2))), ("auto", 1, "valid")],
)
def test_conv2d_custom_vjp_matches_vjp(impl: Any, stride: Any, padding: Any) -> None:
    """``manual.conv2d``: the forward of ops.conv2d with the manual backward (eager)."""
    rng = np.random.default_rng(3)
    conf = {"stride": stride, "padding": padding}
    with jax.enable_x64(True):
        x, w = (
            jnp.asarray(rng.normal(size=(2, 7, 8, 3))),
            jnp.asarray(rng.normal(size=(3, 2, 3, 4))),
        )
        b = jnp.asarray(rng.normal(size=4))
        forward = "lax" if impl == "auto" else impl
        y, vjp = jax.vjp(lambda x, w, b: reference_conv2d(x, w, b, **conf, impl=forward), x, w, b)
        y_custom, custom_vjp = jax.vjp(
            lambda x, w, b: manual.conv2d(x, w, b, **conf, impl=impl, backward_impl=impl), x, w, b
        )
        np.testing.assert_array_equal(y_custom, ops.conv2d(x, w, b, **conf, impl=impl))
        assert_close(y_custom, y)
        g = random_like(rng, y)
        assert_trees_close(custom_vjp(g), vjp(g))
        dx, dw = jax.vjp(lambda x, w: manual.conv2d(x, w, **conf, impl=impl), x, w)[1](g)
        assert_trees_close((dx, dw), vjp(g)[:2])  # b=None: no bias, no bias gradient


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
@given(case=pool_cases(), kind=st.sampled_from(["max", "avg"]))
def test_pool_backward_matches_vjp(case: dict[str, Any], kind: str) -> None:
    forward = {"max": reference_max_pool2d, "avg": ops.avg_pool2d}[kind]
    backward = {"max": manual.max_pool2d_backward, "avg": manual.avg_pool2d_backward}[kind]
    custom = {"max": manual.max_pool2d, "avg": manual.avg_pool2d}[kind]
    conf = {"size": case["size"], "stride": case["stride"], "padding": case["padding"]}

    def all_three(x: jax.Array, g: jax.Array) -> Any:
        y, vjp = jax.vjp(lambda x: forward(x, **conf), x)
        y_custom, custom_vjp = jax.vjp(lambda x: custom(x, **conf), x)
        return (y, vjp(g)[0]), (y_custom, custom_vjp(g)[0]), backward(x, g, **conf)

    with jax.enable_x64(True):
        x = jnp.asarray(case["x"])
        g = random_like(case["rng"], forward(x, **conf))
        want, custom_got, got = jax.jit(all_three)(x, g)
        assert_close(got, want[1])
        assert_trees_close(custom_got, want)


def test_global_avg_pool2d_backward_matches_vjp() -> None:
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(3, 5, 4, 2)))
        y, vjp = jax.vjp(ops.global_avg_pool2d, x)
        g = random_like(rng, y)
        assert_close(manual.global_avg_pool2d_backward(g, x.shape), vjp(g)[0])
        assert_close(jax.vjp(manual.global_avg_pool2d, x)[1](g)[0], vjp(g)[0])


@settings(max_examples=EXAMPLES)
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)),
    seed=st.integers(0, 2**32 - 1),
)
def test_flatten_and_relu_backward_match_vjp(shape: tuple[int, ...], seed: int) -> None:
    def compare(x: jax.Array, g_flat: jax.Array, g: jax.Array) -> Any:
        flat_want = jax.vjp(ops.flatten, x)[1](g_flat)[0]
        flat_custom = jax.vjp(manual.flatten, x)[1](g_flat)[0]
        relu_want = jax.vjp(ops.relu, x)[1](g)[0]
        relu_custom = jax.vjp(manual.relu, x)[1](g)[0]
        return (
            (manual.flatten_backward(g_flat, x.shape), flat_custom, flat_want),
            (manual.relu_backward(x, g), relu_custom, relu_want),
        )

    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=shape)).at[0, 0, 0, 0].set(0.0)  # relu's kink
        g_flat = jnp.asarray(rng.normal(size=(shape[0], int(np.prod(shape[1:])))))
        g = random_like(rng, x)
        for got, custom, want in jax.jit(compare)(x, g_flat, g):
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(custom, want)
        assert float(manual.relu_backward(x, g)[0, 0, 0, 0]) == 0.0  # gradient 0 at z == 0


@settings(max_examples=EXAMPLES)
@given(
    n=st.integers(1, 5),
    n_in=st.integers(1, 6),
    n_out=st.integers(1, 4),
    bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_backward_matches_vjp(n: int, n_in: int, n_out: int, bias: bool, seed: int) -> None:
    def compare(x: jax.Array, w: jax.Array, b: Any, g: jax.Array) -> Any:
        want = jax.vjp(ops.dense, x, w, b)[1](g)
        custom = jax.vjp(manual.dense, x, w, b)[1](g)
        return manual.dense_backward(x, w, g), custom, want

    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        x, w = jnp.asarray(rng.normal(size=(n, n_in))), jnp.asarray(rng.normal(size=(n_in, n_out)))
        b = jnp.asarray(rng.normal(size=n_out)) if bias else None
        g = jnp.asarray(rng.normal(size=(n, n_out)))
        (dx, dw, db), custom, want = jax.jit(compare)(x, w, b, g)
        assert_trees_close((dx, dw), want[:2])
        if bias:
            assert_close(db, want[2])
        assert_trees_close(custom, want)


@settings(max_examples=EXAMPLES)
@given(
    n=st.integers(1, 5),
    column=st.booleans(),
    weighted=st.booleans(),
    scale=st.sampled_from([1.0, 30.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_sigmoid_bce_backward_matches_grad(
    n: int, column: bool, weighted: bool, scale: float, seed: int
) -> None:
    argnums = (0, 1, 2) if weighted else (0, 1)

    def compare(z: jax.Array, y: jax.Array, w: Any) -> Any:
        want = jax.grad(lambda *a: ops.binary_cross_entropy(a[0], a[1], weights=a[2]), argnums)
        custom = jax.grad(lambda *a: manual.binary_cross_entropy(a[0], a[1], weights=a[2]), argnums)
        return manual.sigmoid_bce_backward(z, y, weights=w), custom(z, y, w), want(z, y, w)

    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        logits = jnp.asarray(rng.normal(size=(n, 1) if column else (n,)) * scale)
        labels = jnp.asarray(rng.integers(0, 2, size=n).astype(np.float64))
        weights = jnp.asarray(rng.random(size=n) + 0.1) if weighted else None
        got, custom, want = jax.jit(compare)(logits, labels, weights)
        assert got.shape == logits.shape
        assert_close(got, want[0])
        # The custom-VJP loss: exact gradients in the logits, float labels and weights.
        assert_trees_close(custom, want)


@settings(max_examples=EXAMPLES)
@given(
    n=st.integers(1, 5),
    k=st.integers(2, 6),
    weighted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_softmax_ce_backward_matches_grad(n: int, k: int, weighted: bool, seed: int) -> None:
    argnums = (0, 2) if weighted else (0,)

    def compare(z: jax.Array, y: jax.Array, w: Any) -> Any:
        want = jax.grad(lambda *a: ops.softmax_cross_entropy(a[0], a[1], weights=a[2]), argnums)
        custom = jax.grad(
            lambda *a: manual.softmax_cross_entropy(a[0], a[1], weights=a[2]), argnums
        )
        return manual.softmax_ce_backward(z, y, weights=w), custom(z, y, w), want(z, y, w)

    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        logits = jnp.asarray(rng.normal(size=(n, k)) * 3)
        labels = jnp.asarray(rng.integers(0, k, size=n))
        weights = jnp.asarray(rng.random(size=n) + 0.1) if weighted else None
        got, custom, want = jax.jit(compare)(logits, labels, weights)
        assert_close(got, want[0])
        one_hot = np.eye(k)[np.asarray(labels)]
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        assert_close(got, (probs - one_hot) * _scale(weights, n))
        assert_trees_close(custom, want)


def _scale(weights: jax.Array | None, n: int) -> Any:
    """Each example's share of a (weighted) mean: ``1/N`` or ``w_n / sum(w)``."""
    if weights is None:
        return 1.0 / n
    w = np.asarray(weights)
    return (w / w.sum()).reshape(n, 1)


def test_losses_gradient_is_output_minus_label_for_one_example() -> None:
    """The article's single example: d loss / d z = sigmoid(z) - label."""
    z = jnp.asarray([0.3], jnp.float32)
    for label in (0.0, 1.0):
        got = manual.sigmoid_bce_backward(z, jnp.asarray([label], jnp.float32))
        np.testing.assert_allclose(got, jax.nn.sigmoid(z) - label, rtol=1e-6)


def test_custom_vjp_ops_under_jit_keep_dtype() -> None:
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 6, 6, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 3)), jnp.float32)

    def loss(x: jax.Array, w: jax.Array) -> jax.Array:
        h = manual.relu(manual.conv2d(x, w, stride=1, padding="same"))
        return jnp.sum(manual.flatten(manual.max_pool2d(h)) ** 2)

    def reference(x: jax.Array, w: jax.Array) -> jax.Array:
        h = ops.relu(reference_conv2d(x, w, stride=1, padding="same"))
        return jnp.sum(ops.flatten(reference_max_pool2d(h)) ** 2)

    got = jax.jit(jax.grad(loss, (0, 1)))(x, w)
    want = jax.jit(jax.grad(reference, (0, 1)))(x, w)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


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
