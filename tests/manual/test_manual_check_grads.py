"""Finite differences: ``jax.test_util.check_grads`` on the forward ops and their custom-VJP twins.

The ops in :mod:`jaxcnn.ops` are checked in forward and reverse mode, to first
order in the default run and to second order in the slow one (conv and
max-pool, whose ``custom_vjp`` is reverse-only, in reverse mode; the library's
plain ``ops.reference_conv2d`` / ``ops.reference_max_pool2d`` in both); the
:mod:`jaxcnn.manual` twins (whose reverse rule is the hand-written formula)
in reverse mode, likewise; their second order differentiates through the
manual backward formulas themselves. Inputs are spread apart (no ties, no
ReLU kinks within the finite-difference step) and everything runs in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxcnn import manual, ops
from jaxcnn.ops import reference_conv2d, reference_max_pool2d

Op = Callable[..., jax.Array]


def spread(rng: np.random.Generator, shape: tuple[int, ...]) -> jax.Array:
    """Distinct values at least ~0.05 apart: safe for max and ReLU under a 1e-4 step."""
    size = int(np.prod(shape))
    return jnp.asarray((rng.permutation(size) - size / 2 + 0.5) * 0.05).reshape(shape)


def conv_args(rng: np.random.Generator) -> tuple[jax.Array, ...]:
    return (
        jnp.asarray(rng.normal(size=(2, 6, 5, 2))),
        jnp.asarray(rng.normal(size=(3, 2, 2, 3))),
        jnp.asarray(rng.normal(size=3)),
    )


FORWARD_OPS: dict[str, tuple[Op, Callable[[np.random.Generator], tuple[jax.Array, ...]]]] = {
    "conv-lax": (
        lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding="same", impl="lax"),
        conv_args,
    ),
    "conv-sliding": (
        lambda x, w, b: ops.conv2d(x, w, b, stride=(1, 2), padding=1, impl="sliding"),
        conv_args,
    ),
    "max-pool": (lambda x: ops.max_pool2d(x, 3, 2, "same"), lambda r: (spread(r, (2, 7, 6, 2)),)),
    "max-pool-tiled": (lambda x: ops.max_pool2d(x, 2), lambda r: (spread(r, (2, 5, 4, 2)),)),
    "conv-lax-reference": (
        lambda x, w, b: reference_conv2d(x, w, b, stride=2, padding="same", impl="lax"),
        conv_args,
    ),
    "conv-sliding-reference": (
        lambda x, w, b: reference_conv2d(x, w, b, stride=(1, 2), padding=1, impl="sliding"),
        conv_args,
    ),
    "max-pool-reference": (
        lambda x: reference_max_pool2d(x, 3, 2, "same"),
        lambda r: (spread(r, (2, 7, 6, 2)),),
    ),
    "avg-pool": (lambda x: ops.avg_pool2d(x, 2, 1, 1), lambda r: (spread(r, (2, 5, 4, 2)),)),
    "global-avg-pool": (ops.global_avg_pool2d, lambda r: (spread(r, (2, 4, 3, 2)),)),
    "dense": (
        ops.dense,
        lambda r: tuple(jnp.asarray(r.normal(size=s)) for s in ((3, 5), (5, 2), (2,))),
    ),
    "relu-flatten": (
        lambda x: ops.flatten(ops.relu(x)),
        lambda r: (spread(r, (2, 3, 3, 2)),),
    ),
    "bce": (
        lambda z, w: ops.binary_cross_entropy(z, jnp.asarray([0.0, 1.0, 1.0]), weights=w),
        lambda r: (jnp.asarray(r.normal(size=3) * 2), jnp.asarray(r.random(size=3) + 0.5)),
    ),
    "softmax-ce": (
        lambda z, w: ops.softmax_cross_entropy(z, jnp.asarray([2, 0, 1]), weights=w),
        lambda r: (jnp.asarray(r.normal(size=(3, 4)) * 2), jnp.asarray(r.random(size=3) + 0.5)),
    ),
}

REVERSE_ONLY = {"conv-lax", "conv-sliding", "max-pool", "max-pool-tiled"}
"""The ops with a ``custom_vjp`` (the fast backward formulas): no forward mode."""


def modes(name: str) -> tuple[str, ...]:
    return ("rev",) if name in REVERSE_ONLY else ("fwd", "rev")


MANUAL_TWINS: dict[str, Op] = {
    "conv-lax": lambda x, w, b: manual.conv2d(x, w, b, stride=2, padding="same", impl="lax"),
    "conv-sliding": lambda x, w, b: manual.conv2d(
        x, w, b, stride=(1, 2), padding=1, impl="sliding"
    ),
    "max-pool": lambda x: manual.max_pool2d(x, 3, 2, "same"),
    "avg-pool": lambda x: manual.avg_pool2d(x, 2, 1, 1),
    "global-avg-pool": manual.global_avg_pool2d,
    "dense": manual.dense,
    "relu-flatten": lambda x: manual.flatten(manual.relu(x)),
    "bce": lambda z, w: manual.binary_cross_entropy(z, jnp.asarray([0.0, 1.0, 1.0]), weights=w),
    "softmax-ce": lambda z, w: manual.softmax_cross_entropy(z, jnp.asarray([2, 0, 1]), weights=w),
}


@pytest.mark.parametrize("name", list(FORWARD_OPS))
def test_forward_ops_pass_check_grads(name: str) -> None:
    op, make_args = FORWARD_OPS[name]
    with jax.enable_x64(True):
        args = make_args(np.random.default_rng(0))
        check_grads(jax.jit(op), args, order=1, modes=modes(name), eps=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FORWARD_OPS))
def test_forward_ops_pass_second_order_check_grads(name: str) -> None:
    op, make_args = FORWARD_OPS[name]
    with jax.enable_x64(True):
        args = make_args(np.random.default_rng(0))
        check_grads(jax.jit(op), args, order=2, modes=modes(name), eps=1e-4)


@pytest.mark.parametrize(
    "order", [1, pytest.param(2, marks=pytest.mark.slow)], ids=["order1", "order2"]
)
@pytest.mark.parametrize("name", list(MANUAL_TWINS))
def test_manual_twins_pass_check_grads_in_reverse_mode(name: str, order: int) -> None:
    _, make_args = FORWARD_OPS[name]
    with jax.enable_x64(True):
        args = make_args(np.random.default_rng(1))
        check_grads(jax.jit(MANUAL_TWINS[name]), args, order=order, modes=("rev",), eps=1e-4)


def test_manual_twins_have_no_forward_mode() -> None:
    """A ``custom_vjp`` defines reverse mode only; forward mode fails loudly, not silently."""
    x = jnp.ones((1, 4, 4, 1))
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(manual.max_pool2d, (x,), (x,))


def test_check_grads_catches_a_wrong_gradient() -> None:
    """The finite-difference check is not vacuous: a custom VJP off by 10% fails it."""

    @jax.custom_vjp
    def square(x: Any) -> Any:
        return x**2

    square.defvjp(lambda x: (x**2, x), lambda x, g: (2.2 * x * g,))
    with jax.enable_x64(True), pytest.raises(AssertionError):
        check_grads(square, (jnp.asarray([1.0, 2.0]),), order=1, modes=("rev",))
