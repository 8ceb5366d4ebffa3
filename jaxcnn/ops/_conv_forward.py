"""The two forward convolution implementations, on validated arguments.

* :func:`lax_conv`: XLA's ``lax.conv_general_dilated``.
* :func:`sliding_conv`: the article's sliding kernel, vectorised the other way
  round. Instead of looping over output pixels and taking a dot product with
  the kernel, loop over the ``kh * kw`` kernel offsets: at offset ``(i, j)``
  every output pixel sees the input pixel ``(r * s + i, c * s + j)``, so one
  strided slice of the padded input times the ``(C_in, C_out)`` kernel slice
  adds that offset's contribution to all output pixels at once. ``kh * kw``
  matmuls, no loop over pixels, plain XLA ops, so it is ``jit``-able. With one
  input channel each "matmul" is a broadcast multiply and XLA fuses the whole
  sum into one loop.

Both are plain JAX functions, so ``jax.grad`` differentiates them directly:
that is the independent reference the fast custom VJP of
:func:`jaxcnn.ops.conv2d` is tested against.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import TypeAlias

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn import _checks
from jaxcnn._checks import Padding2D, Pair
from jaxcnn.ops._windows import pad_spatial, shifted

HIGHEST = lax.Precision.HIGHEST
DIMENSIONS = ("NHWC", "HWIO", "NHWC")
ConvForward: TypeAlias = Callable[[jax.Array, jax.Array, Pair, Padding2D], jax.Array]


def lax_conv(x: jax.Array, w: jax.Array, strides: Pair, pads: Padding2D) -> jax.Array:
    """``[N, H, W, C_in] * [kh, kw, C_in, C_out] -> [N, H_out, W_out, C_out]`` by XLA."""
    return lax.conv_general_dilated(
        x, w, strides, pads, dimension_numbers=DIMENSIONS, precision=HIGHEST
    )


def sliding_conv(x: jax.Array, w: jax.Array, strides: Pair, pads: Padding2D) -> jax.Array:
    """The same result as a sum over kernel offsets of ``shifted(x) @ w[i, j]``."""
    kh, kw = w.shape[0], w.shape[1]
    padded = pad_spatial(x, pads)
    out_h = _checks.output_length(padded.shape[1], kh, strides[0], 0, 0)
    out_w = _checks.output_length(padded.shape[2], kw, strides[1], 0, 0)
    terms = (
        _offset_term(shifted(padded, (i, j), (out_h, out_w), strides), w[i, j])
        for i in range(kh)
        for j in range(kw)
    )
    return functools.reduce(operator.add, terms)


def _offset_term(pixels: jax.Array, w_ij: jax.Array) -> jax.Array:
    """``[N, H_out, W_out, C_in] @ [C_in, C_out]``; a broadcast multiply when ``C_in == 1``."""
    if w_ij.shape[0] == 1:
        return pixels * w_ij.reshape(1, 1, 1, -1)
    return jnp.matmul(pixels, w_ij, precision=HIGHEST)


FORWARDS: dict[str, ConvForward] = {"lax": lax_conv, "sliding": sliding_conv}
"""Forward implementations by ``impl`` name (``"auto"`` chooses one of them)."""
