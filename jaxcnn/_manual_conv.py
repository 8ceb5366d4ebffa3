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
from jaxcnn._manual_common import check_grad_shape, shifted

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
      impl: how the two sums run. ``"sliding"``: a Python loop over the
        ``kh * kw`` kernel offsets, one strided slice and one matmul each (the
        article's formula, vectorised over pixels). ``"lax"``: the same sums
        handed to ``lax.conv_general_dilated``. ``"auto"``: as
        :func:`jaxcnn.ops.choose_impl` picks for the forward pass.

    Returns:
      ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``[C_out]``.
    """
    fn = "conv2d_backward"
    x, w, g, strides, pads = _prepare(fn, x, w, g, stride, padding)
    chosen = _choose(fn, impl, x.shape, w.shape)
    db = jnp.sum(g, axis=(0, 1, 2))
    return (
        _input_grad(x.shape, w, g, strides, pads, chosen),
        _kernel_grad(x, w.shape, g, strides, pads, chosen),
        db,
    )


def _input_grad(
    x_shape: tuple[int, ...],
    w: jax.Array,
    g: jax.Array,
    strides: Pair,
    pads: Padding2D,
    impl: ops.ConvImpl,
) -> jax.Array:
    """``dx``: full correlation of the stride-dilated ``g`` with the flipped kernel."""
    kh, kw = w.shape[0], w.shape[1]
    padded_h, padded_w = x_shape[1] + sum(pads[0]), x_shape[2] + sum(pads[1])
    # Rows/columns of the padded input that no window reached get zero gradient.
    spare_h = padded_h - ((g.shape[1] - 1) * strides[0] + kh)
    spare_w = padded_w - ((g.shape[2] - 1) * strides[1] + kw)
    zero = jnp.zeros((), g.dtype)
    spread = lax.pad(
        g,
        zero,
        (
            (0, 0, 0),
            (kh - 1, kh - 1 + spare_h, strides[0] - 1),
            (kw - 1, kw - 1 + spare_w, strides[1] - 1),
            (0, 0, 0),
        ),
    )
    flipped = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))  # [kh, kw, C_out, C_in]
    dxp = ops.conv2d(spread, flipped, impl=impl)  # [N, H + pads, W + pads, C_in]
    (top, _), (left, _) = pads
    return dxp[:, top : top + x_shape[1], left : left + x_shape[2], :]


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
    kh, kw = w_shape[0], w_shape[1]
    out = (g.shape[1], g.shape[2])
    blocks = [
        [
            jnp.einsum("nrcm,nrco->mo", shifted(xp, (i, j), out, strides), g, precision=_HIGHEST)
            for j in range(kw)
        ]
        for i in range(kh)
    ]
    return jnp.stack([jnp.stack(row) for row in blocks])


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


def _choose(fn: str, impl: Any, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> ops.ConvImpl:
    if impl not in _BACKWARD_IMPLS:
        raise ValueError(f"{fn}: impl must be one of {_BACKWARD_IMPLS}, got {impl!r}")
    chosen = ops.choose_impl(x_shape, w_shape) if impl == "auto" else impl
    return "lax" if chosen == "lax" else "sliding"


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
