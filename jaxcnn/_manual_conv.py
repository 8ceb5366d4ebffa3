"""The convolution's backward pass, written out by hand (no autodiff).

Forward (see :func:`jaxcnn.ops.conv2d`), with ``xp`` the zero-padded input:

    y[n, r, c, o] = b[o] + sum_{i, j, ci} xp[n, r*sh + i, c*sw + j, ci] * w[i, j, ci, o]

Given ``g = dL/dy`` the three gradients are

* ``dw[i, j, ci, o] = sum_{n, r, c} xp[n, r*sh + i, c*sw + j, ci] * g[n, r, c, o]``:
  the article's ``dw[kr][kc] = sum_(r,c) input[r+kr][c+kc] * error[r][c]``,
  summed over the batch too, one ``(C_in, C_out)`` block per kernel offset;
* ``db[o] = sum_{n, r, c} g[n, r, c, o]`` (the article never sets it);
* ``dx``: every output pixel sent ``g * w`` back to the pixels it read. Written
  as one operation that is again a convolution: dilate ``g`` by the stride
  (``s - 1`` zeros between pixels), pad ``k - 1`` zeros around it (a "full"
  correlation), correlate with the kernel flipped in both spatial axes and with
  its channel axes swapped, then crop the forward padding away.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn import _checks, ops
from jaxcnn._checks import IntOrPair, Padding2D, PaddingLike, Pair
from jaxcnn._manual_common import (
    check_grad_shape,
    crop_padding,
    offsets,
    scatter_windows,
    shifted,
)

_HIGHEST = lax.Precision.HIGHEST
_BACKWARD_IMPLS = ("auto", "lax", "sliding")


def conv2d_backward(
    x: Any,
    w: Any,
    g: Any,
    *,
    stride: IntOrPair = 1,
    padding: PaddingLike = "valid",
    impl: ops.ConvImpl = "auto",
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gradients of ``conv2d(x, w, b, stride=stride, padding=padding)``.

    Args:
      x: ``[N, H, W, C_in]`` the forward input.
      w: ``[kh, kw, C_in, C_out]`` the kernels.
      g: ``[N, H_out, W_out, C_out]`` upstream gradient ``dL/dy``.
      stride: int or ``(sh, sw)``, as in the forward call.
      padding: ``"valid"``, ``"same"``, an int or ``((top, bottom), (left, right))``.
      impl: how the sums run; every choice computes the same numbers.
        ``"sliding"``: a Python loop over the ``kh * kw`` kernel offsets with
        one strided slice and one matmul each (the article's loops, vectorised
        over pixels); ``dx`` scatters each offset's ``g @ w[i, j].T`` back to
        the pixels that offset read. ``"lax"``: ``dw`` as one
        ``lax.conv_general_dilated`` and ``dx`` as the full correlation with
        the flipped kernel. ``"auto"`` (default): ``"sliding"``, the faster on
        CPU as measured (docs/gradients.md); XLA's weight-gradient convolution
        is also ~25x slower inside ``lax.scan`` than outside.

    Returns:
      ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``[C_out]``.
    """
    fn = "conv2d_backward"
    x, w, g, strides, pads = _prepare(fn, x, w, g, stride, padding)
    dx_impl, dw_impl = _choose(fn, impl)
    if dx_impl == "lax":
        dx = _input_grad_correlation(x.shape, w, g, strides, pads)
    else:
        dx = _input_grad_scatter(x.shape, w, g, strides, pads)
    return dx, _kernel_grad(x, w.shape, g, strides, pads, dw_impl), jnp.sum(g, axis=(0, 1, 2))


def _input_grad_correlation(
    x_shape: tuple[int, ...], w: jax.Array, g: jax.Array, strides: Pair, pads: Padding2D
) -> jax.Array:
    """``dx``: full correlation of the stride-dilated ``g`` with the flipped kernel."""
    padded = (x_shape[1] + sum(pads[0]), x_shape[2] + sum(pads[1]))
    spread = spread_gradient(g, (w.shape[0], w.shape[1]), strides, padded)
    dxp = ops.conv2d(spread, flip_kernel(w), impl="lax")  # [N, H + pads, W + pads, C_in]
    return crop_padding(dxp, x_shape, pads)


def _input_grad_scatter(
    x_shape: tuple[int, ...], w: jax.Array, g: jax.Array, strides: Pair, pads: Padding2D
) -> jax.Array:
    """``dx``: offset ``(i, j)`` of every window sends ``g @ w[i, j].T`` back.

    The same sum as the full correlation, read the other way round: output
    pixel ``(r, c)`` read ``xp[r*sh + i, c*sw + j]`` with weight ``w[i, j]``,
    so that input pixel receives ``g[r, c] @ w[i, j].T``.
    """
    window = (w.shape[0], w.shape[1])
    parts = [jnp.matmul(g, w[i, j].T, precision=_HIGHEST) for i, j in offsets(window)]
    padded_shape = (
        x_shape[0],
        x_shape[1] + sum(pads[0]),
        x_shape[2] + sum(pads[1]),
        x_shape[3],
    )
    return crop_padding(scatter_windows(parts, padded_shape, window, strides), x_shape, pads)


def spread_gradient(g: jax.Array, window: Pair, strides: Pair, padded: Pair) -> jax.Array:
    """Dilate ``g`` by the stride and pad it for a "full" correlation.

    ``s - 1`` zeros go between neighbouring pixels (where the strided forward
    pass skipped positions) and ``k - 1`` zeros around, plus zeros for padded
    rows/columns that no window reached, so that a valid ``k``-correlation of
    the result has the padded input's size ``padded``.

    Args:
      g: ``[N, H_out, W_out, C_out]``.
      window: ``(kh, kw)``.
      strides: ``(sh, sw)``.
      padded: ``(H + pad_h, W + pad_w)`` of the forward's padded input.

    Returns:
      ``[N, padded_h + kh - 1, padded_w + kw - 1, C_out]``.
    """
    axes = []
    for axis in range(2):
        k, s, out = window[axis], strides[axis], g.shape[1 + axis]
        unreached = padded[axis] - ((out - 1) * s + k)
        axes.append((k - 1, k - 1 + unreached, s - 1))
    return lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), axes[0], axes[1], (0, 0, 0)))


def flip_kernel(w: jax.Array) -> jax.Array:
    """``[kh, kw, C_in, C_out] -> [kh, kw, C_out, C_in]``, rotated 180 degrees.

    ``flipped[i, j, o, ci] = w[kh - 1 - i, kw - 1 - j, ci, o]``.
    """
    return jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))


def _kernel_grad(
    x: jax.Array,
    w_shape: tuple[int, ...],
    g: jax.Array,
    strides: Pair,
    pads: Padding2D,
    impl: str,
) -> jax.Array:
    """``dw[i, j] = sum_{n, r, c} xp[n, r*sh + i, c*sw + j] (x) g[n, r, c]``."""
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    if impl == "lax":
        return _kernel_grad_lax(xp, w_shape, g, strides)
    out = (g.shape[1], g.shape[2])
    contract = (((0, 1, 2), (0, 1, 2)), ((), ()))
    blocks = [
        [
            # [C_out, C_in]: g on the left, as XLA's own transpose rule does.
            lax.dot_general(g, shifted(xp, (i, j), out, strides), contract, precision=_HIGHEST)
            for j in range(w_shape[1])
        ]
        for i in range(w_shape[0])
    ]
    return jnp.transpose(jnp.stack([jnp.stack(row) for row in blocks]), (0, 1, 3, 2))


def _kernel_grad_lax(
    xp: jax.Array, w_shape: tuple[int, ...], g: jax.Array, strides: Pair
) -> jax.Array:
    """The same sum as one convolution: the batch axis is contracted like a channel.

    Read ``xp`` as ``[C_in(batch), H, W, N(feature)]`` and ``g`` as a
    ``[N(in), H_out, W_out, C_out]`` kernel dilated by the stride; the output's
    spatial axes are the kernel offsets ``(i, j)``.
    """
    dw = lax.conv_general_dilated(
        xp,
        g,
        window_strides=(1, 1),
        padding="VALID",
        rhs_dilation=strides,
        dimension_numbers=("CHWN", "IHWO", "HWNC"),
        precision=_HIGHEST,
    )
    return dw[: w_shape[0], : w_shape[1]]


def _choose(fn: str, impl: Any) -> tuple[str, str]:
    """``(dx_impl, dw_impl)`` for ``impl``; see :func:`conv2d_backward`."""
    if impl not in _BACKWARD_IMPLS:
        raise ValueError(f"{fn}: impl must be one of {_BACKWARD_IMPLS}, got {impl!r}")
    chosen = "sliding" if impl == "auto" else str(impl)
    return chosen, chosen


def _prepare(
    fn: str, x: Any, w: Any, g: Any, stride: Any, padding: Any
) -> tuple[jax.Array, jax.Array, jax.Array, Pair, Padding2D]:
    x = _checks.as_float_array(fn, "x", x)
    w = _checks.as_float_array(fn, "w", w)
    g = _checks.as_float_array(fn, "g", g)
    _checks.check_rank(fn, "x", x, "N, H, W, C")
    _checks.check_rank(fn, "w", w, "kh, kw, C_in, C_out")
    _checks.check_rank(fn, "g", g, "N, H_out, W_out, C_out")
    if w.shape[2] != x.shape[3]:
        raise ValueError(
            f"{fn}: w's input-channel axis (w.shape[2]) must equal x's channels "
            f"(x.shape[3] = {x.shape[3]}), got w.shape = {tuple(w.shape)}"
        )
    _checks.check_same_dtype(fn, x=x, w=w, g=g)
    strides = _checks.int_pair(fn, "stride", stride)
    window = (w.shape[0], w.shape[1])
    pads = _checks.padding_pairs(fn, padding, window)
    _checks.check_window_fits(fn, "kernel", window, (x.shape[1], x.shape[2]), pads)
    expected = (
        x.shape[0],
        _checks.output_length(x.shape[1], window[0], strides[0], *pads[0]),
        _checks.output_length(x.shape[2], window[1], strides[1], *pads[1]),
        w.shape[3],
    )
    check_grad_shape(fn, g, expected)
    return x, w, g, strides, pads
