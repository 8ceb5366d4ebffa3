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

The formulas live in ``jaxcnn/ops/_conv_backward.py``, shared with
:func:`jaxcnn.ops.conv2d`'s custom VJP; this module validates and chooses.
"""

from __future__ import annotations

from typing import Any

import jax

from jaxcnn import _checks, ops
from jaxcnn._checks import IntOrPair, Padding2D, PaddingLike, Pair
from jaxcnn.errors import InputError
from jaxcnn.ops._conv_backward import BackwardPlan, choose_backward, conv_backward

_PLANS = {
    "sliding": BackwardPlan(dx="scatter", dw="offsets"),
    "lax": BackwardPlan(dx="correlation", dw="lax"),
}


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
        the flipped kernel. ``"auto"`` (default): the formulas
        :func:`jaxcnn.ops.conv2d`'s own gradient uses for these shapes
        (offsets or im2col patches for ``dw``, scatter for ``dx``; measured,
        docs/benchmarks.md). XLA's weight-gradient convolution (``"lax"``) is
        ~25x slower inside ``lax.scan`` than outside.

    Returns:
      ``(dx, dw, db)`` with the shapes of ``x``, ``w`` and ``[C_out]``.
    """
    fn = "conv2d_backward"
    x, w, g, strides, pads = _prepare(fn, x, w, g, stride, padding)
    if impl not in ops.CONV_IMPLS:
        raise InputError(f"{fn}: impl must be one of {ops.CONV_IMPLS}, got {impl!r}")
    plan = _PLANS[impl] if impl in _PLANS else choose_backward(x.shape, w.shape, strides)
    return conv_backward(x, w, g, strides, pads, plan)


def _prepare(
    fn: str, x: Any, w: Any, g: Any, stride: Any, padding: Any
) -> tuple[jax.Array, jax.Array, jax.Array, Pair, Padding2D]:
    x, w, strides, pads = _checks.conv_arguments(fn, x, w, stride, padding)
    window = (w.shape[0], w.shape[1])
    expected = _checks.conv_output_shape(x.shape, window, strides, pads, w.shape[3])
    g = _checks.upstream_gradient(fn, g, x, "N, H_out, W_out, C_out", expected)
    return x, w, g, strides, pads
