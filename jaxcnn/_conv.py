"""2-D convolution (cross-correlation, as in every deep-learning library).

Two implementations share one contract and are tested against each other and
against a NumPy loop oracle:

* ``"lax"``: XLA's ``lax.conv_general_dilated``.
* ``"sliding"``: the article's sliding kernel, vectorised the other way round.
  Instead of looping over output pixels and taking a dot product with the
  kernel, loop over the ``kh * kw`` kernel offsets: at offset ``(i, j)`` every
  output pixel sees the input pixel ``(r * s + i, c * s + j)``, so one strided
  slice of the padded input times the ``(C_in, C_out)`` kernel slice adds that
  offset's contribution to all output pixels at once. ``kh * kw`` matmuls, no
  loop over pixels, and it traces to plain XLA ops, so it is ``jit``-able.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

import jax
import jax.numpy as jnp
from jax import lax

from jaxcnn import _checks
from jaxcnn._checks import IntOrPair, Padding2D, PaddingLike, Pair

ConvImpl: TypeAlias = Literal["auto", "lax", "sliding"]
_IMPLS = ("auto", "lax", "sliding")
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
_HIGHEST = lax.Precision.HIGHEST


def conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    stride: IntOrPair = 1,
    padding: PaddingLike = "valid",
    impl: ConvImpl = "auto",
) -> jax.Array:
    """Slide each filter over the input and sum over input channels.

    ``y[n, r, c, o] = b[o] + sum_{i, j, ci} xp[n, r*sh + i, c*sw + j, ci] * w[i, j, ci, o]``
    where ``xp`` is ``x`` zero-padded by ``padding``.

    Args:
      x: ``[N, H, W, C_in]`` input images or feature maps.
      w: ``[kh, kw, C_in, C_out]`` kernels; the depth ``C_in`` must equal the
        input's channel count (the article's "kernel depth mirrors the input").
      b: optional ``[C_out]`` bias, one per filter.
      stride: int or ``(sh, sw)``, each >= 1.
      padding: ``"valid"``, ``"same"`` (``k - 1`` zeros per axis, half before),
        an int, or ``((top, bottom), (left, right))``.
      impl: ``"lax"``, ``"sliding"`` or ``"auto"`` (see :func:`choose_impl`).

    Returns:
      ``[N, H_out, W_out, C_out]`` with ``H_out = conv_output_size(H, kh, sh, pad)``.
    """
    x, w, b, strides, pads = _prepare("conv2d", x, w, b, stride, padding)
    chosen = choose_impl(x.shape, w.shape) if _impl_name(impl) == "auto" else impl
    y = _CONVS[chosen](x, w, strides, pads)
    return y if b is None else y + b.reshape(1, 1, 1, -1)


def choose_impl(x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> str:
    """The implementation ``impl="auto"`` uses for these shapes.

    The rule comes from ``jaxcnn bench`` on a 2-core CPU (docs/benchmarks.md):
    with a single input channel the sliding form (a few broadcast multiplies)
    beats XLA's generic convolution; with many channels lax wins.
    """
    del x_shape
    return "sliding" if w_shape[2] == 1 else "lax"


def conv_output_size(
    n: int, k: int, stride: int = 1, padding: str | int | tuple[int, int] = "valid"
) -> int:
    """The article's output-size formula for one axis.

    ``out = (n + pad_before + pad_after - k) // stride + 1``; e.g. a 5-wide
    input, 3-wide kernel, stride 2, no padding gives 2.

    Args:
      n: input length, >= 1.
      k: kernel (window) length, >= 1.
      stride: step between kernel positions, >= 1.
      padding: ``"valid"``, ``"same"``, an int per side, or ``(before, after)``.
    """
    fn = "conv_output_size"
    n = _checks.positive_int(fn, "n", n)
    k = _checks.positive_int(fn, "k", k)
    stride = _checks.positive_int(fn, "stride", stride)
    if isinstance(padding, tuple | list):
        low, high = _checks.padding_pairs(fn, (tuple(padding), (0, 0)), (k, k))[0]
    else:
        low, high = _checks.padding_pairs(fn, padding, (k, k))[0]
    _checks.check_window_fits(fn, "k", (k, 1), (n, 1), ((low, high), (0, 0)))
    return _checks.output_length(n, k, stride, low, high)


def _prepare(
    fn: str, x: Any, w: Any, b: Any, stride: Any, padding: Any
) -> tuple[jax.Array, jax.Array, jax.Array | None, Pair, Padding2D]:
    x = _checks.as_float_array(fn, "x", x)
    w = _checks.as_float_array(fn, "w", w)
    _checks.check_rank(fn, "x", x, "N, H, W, C")
    _checks.check_rank(fn, "w", w, "kh, kw, C_in, C_out")
    if w.shape[2] != x.shape[3]:
        raise ValueError(
            f"{fn}: w's input-channel axis (w.shape[2]) must equal x's channels "
            f"(x.shape[3] = {x.shape[3]}), got w.shape = {tuple(w.shape)}"
        )
    _checks.check_same_dtype(fn, x=x, w=w)
    if b is not None:
        b = _checks.as_float_array(fn, "b", b)
        if b.shape != (w.shape[3],):
            raise ValueError(
                f"{fn}: b must have shape (C_out,) = ({w.shape[3]},), got {tuple(b.shape)}"
            )
        _checks.check_same_dtype(fn, x=x, b=b)
    strides = _checks.int_pair(fn, "stride", stride)
    window = (w.shape[0], w.shape[1])
    pads = _checks.padding_pairs(fn, padding, window)
    _checks.check_window_fits(fn, "kernel", window, (x.shape[1], x.shape[2]), pads)
    return x, w, b, strides, pads


def _impl_name(impl: Any) -> str:
    if impl not in _IMPLS:
        raise ValueError(f"conv2d: impl must be one of {_IMPLS}, got {impl!r}")
    return str(impl)


def _lax_conv(x: jax.Array, w: jax.Array, strides: Pair, pads: Padding2D) -> jax.Array:
    return lax.conv_general_dilated(
        x, w, strides, pads, dimension_numbers=_DIMENSIONS, precision=_HIGHEST
    )


def _sliding_conv(x: jax.Array, w: jax.Array, strides: Pair, pads: Padding2D) -> jax.Array:
    kh, kw = w.shape[0], w.shape[1]
    padded = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    out_h = _checks.output_length(padded.shape[1], kh, strides[0], 0, 0)
    out_w = _checks.output_length(padded.shape[2], kw, strides[1], 0, 0)
    terms = (
        jnp.matmul(_shifted(padded, (i, j), (out_h, out_w), strides), w[i, j], precision=_HIGHEST)
        for i in range(kh)
        for j in range(kw)
    )
    return functools.reduce(operator.add, terms)


def _shifted(padded: jax.Array, offset: Pair, out: Pair, strides: Pair) -> jax.Array:
    """``padded[:, i : i + (oh-1)*sh + 1 : sh, j : ... : sw, :]`` as a lax slice."""
    n, _, _, c = padded.shape
    start = (0, offset[0], offset[1], 0)
    limit = (
        n,
        offset[0] + (out[0] - 1) * strides[0] + 1,
        offset[1] + (out[1] - 1) * strides[1] + 1,
        c,
    )
    return lax.slice(padded, start, limit, (1, strides[0], strides[1], 1))


_CONVS: dict[str, Callable[[jax.Array, jax.Array, Pair, Padding2D], jax.Array]] = {
    "lax": _lax_conv,
    "sliding": _sliding_conv,
}
