"""Break one piece of a formula inside the library and watch the checks fail.

Each test monkeypatches one named step of a manual backward (the kernel flip,
the stride, the offset index, the tie rule, overlap accumulation, the 1/N of
the loss) with a plausible mistake, then asserts that the comparison the
suite relies on (manual vs ``jax.vjp`` of the plain-lax reference, or vs the
article's argmax loop) now disagrees. A check that could not fail would pass
here too. The kernels are shared with the custom VJPs of :mod:`jaxcnn.ops`,
so the reference is never ``jax.vjp`` of ``ops`` (it would break along with
them) but :func:`jaxcnn._conv.reference_conv2d` /
:func:`jaxcnn._pool.reference_max_pool2d`, which JAX differentiates itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import manual, ops
from jaxcnn._checks import Pair
from jaxcnn.manual import _conv as _manual_conv
from jaxcnn.manual import _losses as _manual_losses
from jaxcnn.ops import _conv_backward as _conv_grad
from jaxcnn.ops import _pool_backward as _pool_grad
from jaxcnn.ops import _windows, reference_conv2d, reference_max_pool2d


def disagrees(got: Any, want: Any) -> bool:
    return not np.allclose(np.asarray(got), np.asarray(want), rtol=1e-8, atol=1e-8)


def conv_case(stride: int) -> tuple[jax.Array, ...]:
    """Random float64 ``(x, w, g, dx, dw, db)`` with ``jax.vjp``'s plain-lax gradients."""
    rng = np.random.default_rng(stride)
    x = jnp.asarray(rng.normal(size=(2, 7, 7, 2)))
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 3)))
    y, vjp = jax.vjp(lambda x, w: reference_conv2d(x, w, stride=stride, padding="same"), x, w)
    g = jnp.asarray(rng.normal(size=y.shape))
    dx, dw = vjp(g)
    return x, w, g, dx, dw, g.sum(axis=(0, 1, 2))


def test_unmutated_formulas_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline for every mutation below: the real formulas pass the same checks."""
    del monkeypatch
    with jax.enable_x64(True):
        for stride in (1, 2):
            x, w, g, dx, dw, db = conv_case(stride)

            def both(x: Any, w: Any, g: Any, stride: int = stride) -> Any:
                return [
                    manual.conv2d_backward(x, w, g, stride=stride, padding="same", impl=impl)
                    for impl in ("lax", "sliding", "auto")
                ]

            for got in jax.jit(both)(x, w, g):
                assert not any(map(disagrees, got, (dx, dw, db)))


def test_unflipped_kernel_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """dx is a correlation with the kernel rotated 180 degrees; forget the rotation."""
    monkeypatch.setattr(_conv_grad, "flip_kernel", lambda w: jnp.transpose(w, (0, 1, 3, 2)))
    with jax.enable_x64(True):
        x, w, g, dx, dw, _ = conv_case(1)
        got_dx, got_dw, _ = manual.conv2d_backward(x, w, g, padding="same", impl="lax")
    assert disagrees(got_dx, dx)
    assert not disagrees(got_dw, dw)  # only the broken part breaks


def test_missing_stride_in_dx_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scatter each window's contribution as if the stride were 1."""
    scatter = _windows.scatter_windows

    def stride_one(parts: Sequence[jax.Array], shape: Any, window: Pair, strides: Pair) -> Any:
        return scatter(parts, shape, window, (1, 1))

    monkeypatch.setattr(_conv_grad, "scatter_windows", stride_one)
    with jax.enable_x64(True):
        x, w, g, dx, _, _ = conv_case(2)
        got = manual.conv2d_backward(x, w, g, stride=2, padding="same", impl="sliding")[0]
    assert disagrees(got, dx)


def test_missing_stride_dilation_in_the_correlation_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The full correlation without dilating g by the stride: wrong (or not even fitting)."""
    spread = _conv_grad.spread_gradient

    def undilated(g: jax.Array, window: Pair, strides: Pair, padded: Pair) -> jax.Array:
        full = spread(g, window, (1, 1), (padded[0], padded[1]))
        return full[:, : padded[0] + window[0] - 1, : padded[1] + window[1] - 1]

    monkeypatch.setattr(_conv_grad, "spread_gradient", undilated)
    with jax.enable_x64(True):
        x, w, g, dx, _, _ = conv_case(2)
        try:
            got = manual.conv2d_backward(x, w, g, stride=2, padding="same", impl="lax")[0]
        except (ValueError, TypeError):
            return  # a shape check caught it
    assert got.shape != dx.shape or disagrees(got, dx)


def test_swapped_offset_index_in_dw_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The article's ``input[r+kr][c+kc]`` with ``kr`` and ``kc`` swapped."""
    shifted = _windows.shifted

    def swapped(padded: jax.Array, offset: Pair, out: Pair, strides: Pair) -> jax.Array:
        return shifted(padded, (offset[1], offset[0]), out, strides)

    monkeypatch.setattr(_conv_grad, "shifted", swapped)
    with jax.enable_x64(True):
        x, w, g, _, dw, _ = conv_case(1)
        got = manual.conv2d_backward(x, w, g, padding="same", impl="sliding")[1]
    assert disagrees(got, dw)


def test_missing_bias_gradient_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The article's ``grad_biases`` is used in ``update`` but never computed."""
    backward = _manual_conv.conv2d_backward

    def no_bias(*args: Any, **kwargs: Any) -> tuple[jax.Array, ...]:
        dx, dw, db = backward(*args, **kwargs)
        return dx, dw, jnp.zeros_like(db)

    monkeypatch.setattr("jaxcnn.manual._vjp.conv2d_backward", no_bias)
    with jax.enable_x64(True):
        x, w, g, _, _, db = conv_case(1)
        b = jnp.zeros(3)
        _, vjp = jax.vjp(lambda b: manual.conv2d(x, w, b, padding="same"), b)
        assert disagrees(vjp(g)[0], db)


def last_max(candidates: Sequence[jax.Array]) -> jax.Array:
    """The tie rule flipped: ``>=`` lets a later equal value take over."""
    best, winner = candidates[0], jnp.zeros(candidates[0].shape, jnp.int32)
    for k, candidate in enumerate(candidates[1:], start=1):
        better = candidate >= best
        best = jnp.where(better, candidate, best)
        winner = jnp.where(better, jnp.int32(k), winner)
    return winner


def test_last_max_tie_rule_is_caught_only_by_the_tie_tests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_pool_grad, "first_max", last_max)
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        tie_free = jnp.asarray(rng.permutation(64).reshape(1, 8, 8, 1) * 1.0)
        ties = jnp.asarray(rng.integers(0, 2, size=(1, 8, 8, 1)) * 1.0)
        for x, caught in ((tie_free, False), (ties, True)):
            g = jnp.asarray(rng.random(size=(1, 4, 4, 1)) + 0.5)
            want = jax.vjp(reference_max_pool2d, x)[1](g)[0]  # first max, like the argmax loop
            assert disagrees(manual.max_pool2d_backward(x, g), want) == caught


def overwrite(parts: Sequence[jax.Array], shape: Any, window: Pair, strides: Pair) -> jax.Array:
    """The article's ``out[...] = gradient``: overlapping windows overwrite, not add."""
    placed = [
        _windows.scatter_windows(
            [p if k == j else jnp.zeros_like(p) for j, p in enumerate(parts)],
            shape,
            window,
            strides,
        )
        for k in range(len(parts))
    ]
    return functools.reduce(lambda acc, new: jnp.where(new != 0, new, acc), placed)


def test_overwriting_overlapping_windows_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool_grad, "scatter_windows", overwrite)
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.permutation(49).reshape(1, 7, 7, 1) * 1.0)
        for stride, caught in ((3, False), (1, True)):  # touching vs overlapping windows
            y, vjp = jax.vjp(lambda x, s=stride: reference_max_pool2d(x, 3, s), x)
            g = jnp.asarray(rng.random(size=y.shape) + 0.5)
            got = manual.max_pool2d_backward(x, g, size=3, stride=stride)
            assert disagrees(got, vjp(g)[0]) == caught


def test_loss_gradient_without_the_batch_mean_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The article's per-sample ``output - label``, not divided by the batch size."""
    monkeypatch.setattr(
        _manual_losses, "example_scale", lambda fn, w, like, per: jnp.ones((), like.dtype)
    )
    with jax.enable_x64(True):
        z, y = jnp.asarray([0.5, -1.0, 2.0]), jnp.asarray([1.0, 0.0, 0.0])
        want = jax.grad(ops.binary_cross_entropy)(z, y)
        assert disagrees(manual.sigmoid_bce_backward(z, y), want)
        np.testing.assert_allclose(manual.sigmoid_bce_backward(z, y) / 3, want, rtol=1e-12)
