"""Convolution backward kernels, on validated arguments (no autodiff).

Forward, with ``xp`` the zero-padded input::

    y[n, r, c, o] = sum_{i, j, ci} xp[n, r*sh + i, c*sw + j, ci] * w[i, j, ci, o]

Given ``g = dL/dy``:

* kernel gradient ``dw[i, j, ci, o] = sum_{n, r, c} xp[n, r*sh + i, c*sw + j, ci] * g[n, r, c, o]``,
  computed as

  - ``"offsets"``: one strided slice of ``xp`` and one matrix product per kernel
    offset (the article's loops, vectorised over pixels);
  - ``"patches"``: the ``kh * kw`` slices side by side (im2col,
    ``[N, H_out, W_out, kh*kw*C_in]``) and one matrix product with ``g``;
  - ``"lax"``: one ``lax.conv_general_dilated`` in which the batch axis is
    contracted like a channel. This is what ``jax.grad`` of a lax convolution
    produces, and inside ``lax.scan`` (every training epoch) XLA's CPU backend
    runs it 25-55x slower than outside; kept for :mod:`jaxcnn.manual`'s
    ``impl="lax"``, never chosen automatically.

* input gradient ``dx``: every output pixel sends ``g * w`` back to the pixels
  it read, computed as

  - ``"scatter"``: for each offset, ``g @ w[i, j].T`` placed back on the
    padded grid (interleaved, or padded into place and summed);
  - ``"correlation"``: dilate ``g`` by the stride, pad it by ``k - 1``,
    correlate with the kernel rotated 180 degrees with its channel axes
    swapped, crop the forward padding.

:func:`choose_backward` picks the pair per layer shape from measurements
(docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn._checks import Padding2D, Pair, padded_shape
from jaxcnn.ops._conv_forward import HIGHEST, lax_conv
from jaxcnn.ops._windows import crop_padding, offsets, pad_spatial, scatter_windows, shifted

Shape: TypeAlias = tuple[int, ...]


class BackwardPlan(NamedTuple):
    """How the two gradients of one convolution are computed."""

    dx: str  # "scatter" or "correlation"
    dw: str  # "offsets", "patches" or "lax"


def choose_backward(x_shape: Shape, w_shape: Shape, strides: Pair) -> BackwardPlan:
    """The fastest measured backward formulas for a layer (2-core CPU, docs/benchmarks.md).

    * ``dw``: ``"patches"`` (one matrix product over the im2col patches, which
      also yields ``db``) when the input has few channels (``C_in * kh * kw <=
      64``): the offset loop's ``kh * kw`` products would each contract
      ``N * H_out * W_out`` pixels into a tiny ``[C_in, C_out]`` block.
      ``"offsets"`` otherwise: building the patches then costs more memory
      traffic than it saves.
    * ``dx``: ``"scatter"`` for one input channel (a few multiplies);
      ``"correlation"`` otherwise. The scatter's sum of shifted arrays is
      elementwise, and XLA fuses it into its consumer, typically a max-pool
      backward that reads each value once per window pixel, so it is computed
      several times over (measured: 9.8 ms instead of ~2 ms in the MNIST
      CNN's step); the correlation is a convolution, computed once.
    """
    del x_shape, strides
    depth = w_shape[0] * w_shape[1] * w_shape[2]
    return BackwardPlan(
        dx="scatter" if w_shape[2] == 1 else "correlation",
        dw="patches" if depth <= 64 else "offsets",
    )


def conv_backward(
    x: jax.Array,
    w: jax.Array,
    g: jax.Array,
    strides: Pair,
    pads: Padding2D,
    plan: BackwardPlan,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(dx, dw, db)`` of the convolution, by the formulas ``plan`` names.

    ``db[o] = sum_{n, r, c} g[n, r, c, o]``; the ``"patches"`` kernel gradient
    gets it from the same matrix product (a row of ones among the patches).
    """
    dx = INPUT_GRADS[plan.dx](x.shape, w, g, strides, pads)
    if plan.dw == "patches":
        dw, db = kernel_and_bias_grad_patches(x, w.shape, g, strides, pads)
    else:
        dw = KERNEL_GRADS[plan.dw](x, w.shape, g, strides, pads)
        db = jnp.sum(g, axis=(0, 1, 2))
    return dx, dw, db


def input_grad_scatter(
    x_shape: Shape, w: jax.Array, g: jax.Array, strides: Pair, pads: Padding2D
) -> jax.Array:
    """``dx``: offset ``(i, j)`` of every window sends ``g @ w[i, j].T`` back.

    Output pixel ``(r, c)`` read ``xp[r*sh + i, c*sw + j]`` with weight
    ``w[i, j]``, so that input pixel receives ``g[r, c] @ w[i, j].T``.
    """
    window = (w.shape[0], w.shape[1])
    parts = [_times_transposed(g, w[i, j]) for i, j in offsets(window)]
    grid = scatter_windows(parts, padded_shape(x_shape, pads), window, strides)
    return crop_padding(grid, x_shape, pads)


def _times_transposed(g: jax.Array, w_ij: jax.Array) -> jax.Array:
    """``[N, H_out, W_out, C_out] @ [C_in, C_out].T``; a multiply-sum for one channel."""
    if w_ij.shape[1] == 1:
        return g * w_ij.reshape(1, 1, 1, -1)
    return jnp.matmul(g, w_ij.T, precision=HIGHEST)


def input_grad_correlation(
    x_shape: Shape, w: jax.Array, g: jax.Array, strides: Pair, pads: Padding2D
) -> jax.Array:
    """``dx``: full correlation of the stride-dilated ``g`` with the flipped kernel."""
    padded = padded_shape(x_shape, pads)[1:3]
    spread = spread_gradient(g, (w.shape[0], w.shape[1]), strides, padded)
    dxp = lax_conv(spread, flip_kernel(w), (1, 1), ((0, 0), (0, 0)))
    return crop_padding(dxp, x_shape, pads)


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


_PIXELS = (((0, 1, 2), (0, 1, 2)), ((), ()))
"""``dot_general`` dimensions contracting ``N, H_out, W_out`` of two NHWC arrays."""


def kernel_grad_offsets(
    x: jax.Array, w_shape: Shape, g: jax.Array, strides: Pair, pads: Padding2D
) -> jax.Array:
    """``dw[i, j] = sum_{n, r, c} xp[n, r*sh + i, c*sw + j] (x) g[n, r, c]``, offset by offset."""
    xp = pad_spatial(x, pads)
    out = (g.shape[1], g.shape[2])
    blocks = [
        # [C_out, C_in]: g on the left, as XLA's own transpose rule does.
        lax.dot_general(g, shifted(xp, offset, out, strides), _PIXELS, precision=HIGHEST)
        for offset in offsets((w_shape[0], w_shape[1]))
    ]
    stacked = jnp.stack(blocks).reshape(w_shape[0], w_shape[1], w_shape[3], w_shape[2])
    return jnp.transpose(stacked, (0, 1, 3, 2))


def kernel_grad_patches(
    x: jax.Array, w_shape: Shape, g: jax.Array, strides: Pair, pads: Padding2D
) -> jax.Array:
    """The same sum as one product: the ``kh * kw`` slices stacked (im2col) times ``g``."""
    return kernel_and_bias_grad_patches(x, w_shape, g, strides, pads)[0]


def kernel_and_bias_grad_patches(
    x: jax.Array, w_shape: Shape, g: jax.Array, strides: Pair, pads: Padding2D
) -> tuple[jax.Array, jax.Array]:
    """``(dw, db)`` from one product: ``[patches; ones]`` contracted with ``g`` over the pixels.

    ``patches: [kh*kw*C_in + 1, N, H_out, W_out]`` (offset-major, so building it
    is one contiguous copy per offset; the last row all ones gives ``db``).
    """
    xp = pad_spatial(x, pads)
    out = (g.shape[1], g.shape[2])
    window = (w_shape[0], w_shape[1])
    rows = [jnp.moveaxis(shifted(xp, offset, out, strides), 3, 0) for offset in offsets(window)]
    rows.append(jnp.ones((1, *g.shape[:3]), g.dtype))
    patches = jnp.concatenate(rows)  # [kh*kw*C_in + 1, N, H_out, W_out]
    contract = (((1, 2, 3), (0, 1, 2)), ((), ()))
    both = lax.dot_general(patches, g, contract, precision=HIGHEST)  # [kh*kw*C_in + 1, C_out]
    return both[:-1].reshape(w_shape), both[-1]


def kernel_grad_lax(
    x: jax.Array, w_shape: Shape, g: jax.Array, strides: Pair, pads: Padding2D
) -> jax.Array:
    """The same sum as one convolution: the batch axis is contracted like a channel.

    Read ``xp`` as ``[C_in(batch), H, W, N(feature)]`` and ``g`` as a
    ``[N(in), H_out, W_out, C_out]`` kernel dilated by the stride; the output's
    spatial axes are the kernel offsets ``(i, j)``.
    """
    dw = lax.conv_general_dilated(
        pad_spatial(x, pads),
        g,
        window_strides=(1, 1),
        padding="VALID",
        rhs_dilation=strides,
        dimension_numbers=("CHWN", "IHWO", "HWNC"),
        precision=HIGHEST,
    )
    return dw[: w_shape[0], : w_shape[1]]


INPUT_GRADS: dict[str, Callable[[Shape, jax.Array, jax.Array, Pair, Padding2D], jax.Array]] = {
    "scatter": input_grad_scatter,
    "correlation": input_grad_correlation,
}
KERNEL_GRADS: dict[str, Callable[[jax.Array, Shape, jax.Array, Pair, Padding2D], jax.Array]] = {
    "offsets": kernel_grad_offsets,
    "patches": kernel_grad_patches,
    "lax": kernel_grad_lax,
}
