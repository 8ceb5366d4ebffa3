"""The forward ops with the hand-written backward formulas as their VJPs.

Each function here computes exactly what its namesake in :mod:`jaxcnn.ops`
computes, but is a ``jax.custom_vjp`` whose backward rule is the manual
formula, so ``jax.grad`` through it runs the article's backpropagation rather
than JAX's derivation. They compose with ``jit``, ``vmap`` and ``lax.scan``.
``max_pool2d`` doubles as a fast path: its manual backward is several times
faster than ``reduce_window``'s generic select-and-scatter gradient on CPU.

Reverse mode only: a ``custom_vjp`` function has no forward-mode (``jvp``)
derivative.
"""

from __future__ import annotations

import functools
from typing import Any

import jax

from jaxcnn import _checks, ops
from jaxcnn._checks import IntOrPair, Padding2D, PaddingLike, Pair
from jaxcnn.errors import InputError
from jaxcnn.manual._conv import conv2d_backward
from jaxcnn.manual._dense import dense_backward, flatten_backward, relu_backward
from jaxcnn.manual._pool import (
    avg_pool2d_backward,
    global_avg_pool2d_backward,
    max_pool2d_backward,
)

Shape = tuple[int, ...]


def conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    stride: IntOrPair = 1,
    padding: PaddingLike = "valid",
    impl: ops.ConvImpl = "auto",
    backward_impl: ops.ConvImpl = "auto",
) -> jax.Array:
    """``ops.conv2d`` whose gradient is :func:`conv2d_backward`.

    Args:
      x: ``[N, H, W, C_in]``.
      w: ``[kh, kw, C_in, C_out]``.
      b: optional ``[C_out]``.
      stride, padding, impl: as for :func:`jaxcnn.ops.conv2d` (``impl`` is
        the forward pass's).
      backward_impl: ``impl`` of :func:`conv2d_backward`; independent of the
        forward's, because the fastest choices differ (docs/gradients.md).

    Returns:
      ``[N, H_out, W_out, C_out]``.
    """
    x, w, strides, pads = _checks.conv_arguments("conv2d", x, w, stride, padding)
    b = _checks.bias("conv2d", b, x, w.shape[3], "C_out")
    for name, value in (("impl", impl), ("backward_impl", backward_impl)):
        if value not in ops.CONV_IMPLS:
            raise InputError(f"conv2d: {name} must be one of {ops.CONV_IMPLS}, got {value!r}")
    return _conv(x, w, b, strides, pads, impl, backward_impl)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _conv(
    x: jax.Array,
    w: jax.Array,
    b: Any,
    strides: Pair,
    pads: Padding2D,
    impl: ops.ConvImpl,
    backward_impl: ops.ConvImpl,
) -> jax.Array:
    return ops.conv2d(x, w, b, stride=strides, padding=pads, impl=impl)


def _conv_fwd(
    x: jax.Array,
    w: jax.Array,
    b: Any,
    strides: Pair,
    pads: Padding2D,
    impl: ops.ConvImpl,
    backward_impl: ops.ConvImpl,
) -> tuple[jax.Array, Any]:
    y = ops.conv2d(x, w, b, stride=strides, padding=pads, impl=impl)
    return y, (x, w, b is None)


def _conv_bwd(
    strides: Pair,
    pads: Padding2D,
    impl: ops.ConvImpl,
    backward_impl: ops.ConvImpl,
    res: Any,
    g: jax.Array,
) -> Any:
    del impl
    x, w, no_bias = res
    dx, dw, db = conv2d_backward(x, w, g, stride=strides, padding=pads, impl=backward_impl)
    return dx, dw, None if no_bias else db


_conv.defvjp(_conv_fwd, _conv_bwd)


def dense(x: Any, w: Any, b: Any = None) -> jax.Array:
    """``ops.dense`` (``x @ w + b``) whose gradient is :func:`dense_backward`.

    Args:
      x: ``[N, n_in]``.
      w: ``[n_in, n_out]``.
      b: optional ``[n_out]``.

    Returns:
      ``[N, n_out]``.
    """
    return _dense(
        _checks.as_float_array("dense", "x", x),
        _checks.as_float_array("dense", "w", w),
        None if b is None else _checks.as_float_array("dense", "b", b),
    )


@jax.custom_vjp
def _dense(x: jax.Array, w: jax.Array, b: Any) -> jax.Array:
    return ops.dense(x, w, b)


def _dense_fwd(x: jax.Array, w: jax.Array, b: Any) -> tuple[jax.Array, Any]:
    return ops.dense(x, w, b), (x, w, b is None)


def _dense_bwd(res: Any, g: jax.Array) -> Any:
    x, w, no_bias = res
    dx, dw, db = dense_backward(x, w, g)
    return dx, dw, None if no_bias else db


_dense.defvjp(_dense_fwd, _dense_bwd)


def max_pool2d(
    x: Any, size: IntOrPair = 2, stride: IntOrPair | None = None, padding: PaddingLike = "valid"
) -> jax.Array:
    """``ops.max_pool2d`` whose gradient is :func:`max_pool2d_backward` (first max wins).

    Args:
      x: ``[N, H, W, C]``.
      size, stride, padding: as for :func:`jaxcnn.ops.max_pool2d`.

    Returns:
      ``[N, H_out, W_out, C]``.
    """
    x, window, strides, pads = _checks.pool_arguments("max_pool2d", x, size, stride, padding)
    return _max_pool(x, window, strides, pads)


def _pool_with_backward(forward: Any, backward: Any) -> Any:
    """``forward(x, window, strides, pads)`` with VJP ``backward(x, g, size, stride, padding)``."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
    def pool(x: jax.Array, window: Pair, strides: Pair, pads: Padding2D) -> jax.Array:
        return forward(x, window, strides, pads)

    def pool_fwd(
        x: jax.Array, window: Pair, strides: Pair, pads: Padding2D
    ) -> tuple[jax.Array, Any]:
        return forward(x, window, strides, pads), x

    def pool_bwd(window: Pair, strides: Pair, pads: Padding2D, x: Any, g: jax.Array) -> Any:
        return (backward(x, g, size=window, stride=strides, padding=pads),)

    pool.defvjp(pool_fwd, pool_bwd)
    return pool


_max_pool = _pool_with_backward(ops.max_pool2d, max_pool2d_backward)


def avg_pool2d(
    x: Any, size: IntOrPair = 2, stride: IntOrPair | None = None, padding: PaddingLike = "valid"
) -> jax.Array:
    """``ops.avg_pool2d`` whose gradient is :func:`avg_pool2d_backward`.

    Args:
      x: ``[N, H, W, C]``.
      size, stride, padding: as for :func:`jaxcnn.ops.avg_pool2d`.

    Returns:
      ``[N, H_out, W_out, C]``.
    """
    x, window, strides, pads = _checks.pool_arguments("avg_pool2d", x, size, stride, padding)
    return _avg_pool(x, window, strides, pads)


_avg_pool = _pool_with_backward(ops.avg_pool2d, avg_pool2d_backward)


def global_avg_pool2d(x: Any) -> jax.Array:
    """``ops.global_avg_pool2d`` whose gradient is :func:`global_avg_pool2d_backward`.

    Args:
      x: ``[N, H, W, C]``.

    Returns:
      ``[N, C]``.
    """
    x = _checks.as_float_array("global_avg_pool2d", "x", x)
    _checks.check_rank("global_avg_pool2d", "x", x, "N, H, W, C")
    return _global_avg_pool(x, tuple(x.shape))


def _with_shape_backward(forward: Any, backward: Any) -> Any:
    """``forward(x)`` (called as ``op(x, x.shape)``) with VJP ``backward(g, x.shape)``.

    For the ops whose gradient needs only the input's static shape, not its values.
    """

    @functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
    def op(x: jax.Array, shape: Shape) -> jax.Array:
        return forward(x)

    def op_fwd(x: jax.Array, shape: Shape) -> tuple[jax.Array, None]:
        return forward(x), None

    def op_bwd(shape: Shape, res: None, g: jax.Array) -> Any:
        return (backward(g, shape),)

    op.defvjp(op_fwd, op_bwd)
    return op


_global_avg_pool = _with_shape_backward(ops.global_avg_pool2d, global_avg_pool2d_backward)


@jax.custom_vjp
def relu(x: Any) -> jax.Array:
    """``ops.relu`` whose gradient is :func:`relu_backward` (0 at ``x == 0``).

    Args:
      x: any shape, floating.

    Returns:
      ``max(x, 0)``, shaped like ``x``.
    """
    return ops.relu(x)


def _relu_fwd(x: Any) -> tuple[jax.Array, jax.Array]:
    return ops.relu(x), x


def _relu_bwd(x: jax.Array, g: jax.Array) -> Any:
    return (relu_backward(x, g),)


relu.defvjp(_relu_fwd, _relu_bwd)


def flatten(x: Any) -> jax.Array:
    """``ops.flatten`` (channel-major) whose gradient is :func:`flatten_backward`.

    Args:
      x: ``[N, H, W, C]``.

    Returns:
      ``[N, C * H * W]``.
    """
    x = _checks.as_array("flatten", "x", x)
    _checks.check_rank("flatten", "x", x, "N, H, W, C")
    return _flatten(x, tuple(x.shape))


_flatten = _with_shape_backward(ops.flatten, flatten_backward)
