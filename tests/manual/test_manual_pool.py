"""Max-pool backward: the tie rule, overlapping windows, and what jax.grad picks.

Tie rule (``max_pool2d_backward``): a window's whole gradient goes to its
*first* maximum in row-major order, as the article's ``np.argmax`` does;
overlapping windows add what they route to a shared pixel. The property tests
(tests/manual/test_manual.py, tests/ops/test_ops_vjp.py) check that against
the oracle's argmax loop on inputs full of ties; here are the invariants of
the rule, hand-made cases, and what JAX's own ``reduce_window`` gradient picks.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import manual, ops
from tests import reference


def test_tie_invariants_for_non_overlapping_windows() -> None:
    """Each window's gradient sums to its upstream value, on one pixel: its first max."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(4, 8, 8, 3)).astype(np.float32)  # about half are ties
    y = ops.max_pool2d(jnp.asarray(x))
    g = rng.random(size=y.shape).astype(np.float32) + 0.5
    dx = np.asarray(manual.max_pool2d_backward(jnp.asarray(x), jnp.asarray(g)))
    windows = x.reshape(4, 4, 2, 4, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(4, 4, 4, 3, 4)
    grads = dx.reshape(4, 4, 2, 4, 2, 3).transpose(0, 1, 3, 5, 2, 4).reshape(4, 4, 4, 3, 4)
    np.testing.assert_allclose(grads.sum(axis=-1), g, rtol=1e-6)  # nothing lost, nothing added
    assert np.all(np.count_nonzero(grads, axis=-1) == 1)  # one pixel per window
    is_max = windows == windows.max(axis=-1, keepdims=True)
    assert np.all(is_max[grads != 0])  # ... which is a maximum
    first = np.argmax(is_max, axis=-1)  # index of the first max, row-major
    np.testing.assert_array_equal(np.argmax(grads != 0, axis=-1), first)
    assert np.mean(is_max.sum(axis=-1) > 1) > 0.3  # the input really is full of ties


@pytest.mark.parametrize(
    ("dtype", "mode"),
    [
        (jnp.float32, "jit"),
        (jnp.float32, "eager"),
        pytest.param(jnp.float64, "jit", marks=pytest.mark.slow),
        pytest.param(jnp.float64, "eager", marks=pytest.mark.slow),
    ],
)
def test_jax_grad_of_reduce_window_also_picks_the_first_max(dtype: Any, mode: str) -> None:
    """Documented comparison: JAX's select-and-scatter gradient, same tie rule.

    ``jax.grad`` of ``lax.reduce_window(max)`` transposes ``select_and_gather_add``
    with a ``>=`` selector, which keeps the earliest maximum of the window as
    XLA scans it (row-major). On this CPU backend, eager and jitted, float32
    and float64, it therefore routes ties exactly like the article's argmax,
    also for overlapping windows. If a future JAX/XLA changed that, this test
    (not the manual formula's test above) would fail.
    """
    rng = np.random.default_rng(1)
    tol = 1e-12 if dtype == jnp.float64 else 1e-6
    with jax.enable_x64(dtype == jnp.float64):
        x = jnp.asarray(rng.integers(0, 2, size=(2, 7, 6, 2)), dtype)
        for size, stride in [(2, 2), (3, 1)]:  # touching and overlapping windows
            y = ops.max_pool2d(x, size, stride)
            g = jnp.asarray(rng.random(size=y.shape) + 0.5, dtype)

            def autodiff(x: jax.Array, g: jax.Array, size: int = size, stride: int = stride) -> Any:
                return jax.vjp(lambda x: reference.max_pool2d(x, size, stride), x)[1](g)[0]

            run = jax.jit(autodiff) if mode == "jit" else autodiff
            # Same pixels; overlapping windows may add in another order (1 ulp).
            np.testing.assert_allclose(
                run(x, g), manual.max_pool2d_backward(x, g, size=size, stride=stride), rtol=tol
            )


def test_overlapping_windows_add_instead_of_overwrite() -> None:
    """A pixel that is the max of four 2x2 windows (stride 1) collects all four."""
    x = jnp.asarray([[0.0, 1.0, 0.0], [1.0, 5.0, 1.0], [0.0, 1.0, 0.0]]).reshape(1, 3, 3, 1)
    g = jnp.asarray([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    dx = manual.max_pool2d_backward(x, g, size=2, stride=1)
    want = np.zeros((3, 3))
    want[1, 1] = 10.0  # the article's "out[...] = gradient" would keep only one of them
    np.testing.assert_array_equal(dx[0, :, :, 0], want)
    for pool in (reference.max_pool2d, ops.max_pool2d):  # JAX's own gradient, ops' custom VJP
        np.testing.assert_array_equal(jax.grad(lambda x, p=pool: jnp.sum(p(x, 2, 1) * g))(x), dx)


def test_odd_sizes_drop_the_last_row_and_column_like_the_forward() -> None:
    """11x11 -> 5x5 (the MNIST CNN's second pool): row/column 10 get no gradient."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 11, 11, 3)), jnp.float32)
    g = jnp.ones((2, 5, 5, 3), jnp.float32)
    dx = manual.max_pool2d_backward(x, g)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx[:, 10, :, :], 0)
    np.testing.assert_array_equal(dx[:, :, 10, :], 0)
    np.testing.assert_array_equal(jax.vjp(lambda x: reference.max_pool2d(x, 2), x)[1](g)[0], dx)


def test_windows_entirely_in_the_padding_send_nothing_back() -> None:
    x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 2, 2, 1)))
    y, vjp = jax.vjp(lambda x: reference.max_pool2d(x, 2, 2, 2), x)  # 6x6 padded: 9 windows
    assert np.isneginf(np.asarray(y)).sum() == 8  # only the centre window sees real pixels
    g = jnp.ones_like(y)
    dx = manual.max_pool2d_backward(x, g, size=2, stride=2, padding=2)
    np.testing.assert_array_equal(dx, vjp(g)[0])
    assert float(dx.sum()) == 1.0


@pytest.mark.parametrize("pool", [ops.max_pool2d, ops.avg_pool2d, ops.global_avg_pool2d])
def test_jit_of_grad_through_pooling_works(pool: Any) -> None:
    """Regression: a traced pooling identity used to break ``jit(grad(...))``."""
    # Jitted and eager are two programs; the averages' pixels cancel, so float32 has no
    # relative tolerance to derive: float64, where they agree to ~1e-16 of |x|.
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 6, 6, 2)))
        np.testing.assert_allclose(
            jax.jit(jax.grad(lambda x: jnp.sum(pool(x) ** 2)))(x),
            jax.grad(lambda x: jnp.sum(pool(x) ** 2))(x),
            rtol=1e-12,
            atol=1e-14,
        )


@pytest.mark.parametrize("shape", [(4, 26, 26, 8), (4, 11, 11, 16)])
def test_custom_vjp_max_pool_is_a_drop_in_for_the_models_pools(shape: tuple[int, ...]) -> None:
    """``manual.max_pool2d`` and ``ops.max_pool2d`` under jit: JAX's own gradient (tie-free)."""
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.permutation(np.prod(shape)).reshape(shape), jnp.float32)
    g = jnp.asarray(rng.normal(size=(shape[0], shape[1] // 2, shape[2] // 2, shape[3])))
    g = g.astype(jnp.float32)

    def grad_of(pool: Any) -> Any:
        return jax.jit(lambda x: jax.vjp(pool, x)[1](g)[0])

    np.testing.assert_array_equal(manual.max_pool2d(x), ops.max_pool2d(x))
    want = grad_of(lambda x: reference.max_pool2d(x, 2))(x)  # select-and-scatter, as JAX derives it
    np.testing.assert_array_equal(grad_of(manual.max_pool2d)(x), want)
    np.testing.assert_array_equal(grad_of(ops.max_pool2d)(x), want)
