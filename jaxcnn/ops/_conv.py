"""2-D convolution (cross-correlation, as in every deep-learning library).

Two forward implementations share one contract and are tested against each
other and against a NumPy loop oracle (``_conv_forward``):
``"lax"`` (XLA's ``lax.conv_general_dilated``) and ``"sliding"`` (the
article's sliding kernel, one strided slice and one matmul per kernel offset).

Both share one backward pass, a ``jax.custom_vjp`` whose rule is the
hand-derived formulas of ``_conv_backward``, chosen per layer shape by
measurement. ``jax.grad`` of a lax convolution would instead produce XLA's
weight-gradient convolution, which runs 25-55x slower inside ``lax.scan``
(every training epoch) on CPU. Reverse mode only: ``jax.jvp`` through
:func:`conv2d` raises; :func:`reference_conv2d` is the plain, autodiff-able
convolution (forward mode included), the independent reference of the tests.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, TypeAlias, get_args

import jax

from jaxcnn import _checks
from jaxcnn._checks import IntOrPair, Padding2D, PaddingLike, Pair
from jaxcnn.errors import InputError
from jaxcnn.ops._conv_backward import choose_backward, conv_backward
from jaxcnn.ops._conv_forward import FORWARDS

ConvImpl: TypeAlias = Literal["auto", "lax", "sliding"]
CONV_IMPLS: tuple[str, ...] = get_args(ConvImpl)
"""Every ``impl`` of :func:`conv2d`: ``"auto"`` picks one of the :data:`FORWARDS` by shape."""


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
      impl: ``"lax"``, ``"sliding"`` or ``"auto"`` (see :func:`choose_impl`);
        the forward pass only: the gradient is the same custom VJP for all.

    Returns:
      ``[N, H_out, W_out, C_out]`` with ``H_out = conv_output_size(H, kh, sh, pad)``.
    """
    x, w, b, strides, pads = _prepare("conv2d", x, w, b, stride, padding)
    chosen = choose_impl(x.shape, w.shape) if _impl_name(impl) == "auto" else str(impl)
    return _conv(x, w, b, strides, pads, chosen)


def reference_conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    stride: IntOrPair = 1,
    padding: PaddingLike = "valid",
    impl: str = "lax",
) -> jax.Array:
    """:func:`conv2d` without the custom VJP: JAX differentiates the forward ops itself.

    The independent reference for the hand-written backward formulas (tests)
    and the way to forward-mode derivatives (``jax.jvp``, ``jax.jacfwd``).
    ``impl="lax"`` is ``lax.conv_general_dilated`` as JAX differentiates it;
    ``"sliding"`` the offset sum, likewise.
    """
    x, w, b, strides, pads = _prepare("reference_conv2d", x, w, b, stride, padding)
    if impl not in FORWARDS:
        raise InputError(f"reference_conv2d: impl must be one of {tuple(FORWARDS)}, got {impl!r}")
    y = FORWARDS[impl](x, w, strides, pads)
    return y if b is None else y + b.reshape(1, 1, 1, -1)


def choose_impl(x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> str:
    """The forward implementation ``impl="auto"`` uses for these shapes.

    Measured in whole layers (conv + ReLU + max-pool,
    forward and backward, inside a jitted ``lax.scan``, XLA's own CPU emitters
    as jaxcnn's epochs compile them) on a 2-core CPU, 28x28 single-channel
    input, ``C_out`` filters (lax / sliding, ms per call):
    ``C_out`` 2 (batch 32): 1.91 / 0.61; 4: 7.3 / 3.8; 8: 7.6 / 7.2;
    16: 11.2 / 11.7; 32: 15.8 / 21.4 (batch 128). With one input channel
    and few filters each kernel offset is a cheap broadcast multiply that
    XLA fuses into one loop, while its generic convolution has a high fixed
    cost; with more filters or channels XLA's convolution wins. So: sliding
    when ``C_in * C_out <= 8``, lax otherwise. The backward pass does not
    depend on it (see ``choose_backward``).
    """
    del x_shape
    return "sliding" if w_shape[2] * w_shape[3] <= 8 else "lax"


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
    x, w, strides, pads = _checks.conv_arguments(fn, x, w, stride, padding)
    return x, w, _checks.bias(fn, b, x, w.shape[3], "C_out"), strides, pads


def _impl_name(impl: Any) -> str:
    if impl not in CONV_IMPLS:
        raise InputError(f"conv2d: impl must be one of {CONV_IMPLS}, got {impl!r}")
    return str(impl)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _conv(
    x: jax.Array, w: jax.Array, b: Any, strides: Pair, pads: Padding2D, impl: str
) -> jax.Array:
    y = FORWARDS[impl](x, w, strides, pads)
    return y if b is None else y + b.reshape(1, 1, 1, -1)


def _conv_fwd(
    x: jax.Array, w: jax.Array, b: Any, strides: Pair, pads: Padding2D, impl: str
) -> tuple[jax.Array, tuple[jax.Array, jax.Array, bool]]:
    return _conv(x, w, b, strides, pads, impl), (x, w, b is None)


def _conv_bwd(
    strides: Pair, pads: Padding2D, impl: str, res: tuple[jax.Array, jax.Array, bool], g: jax.Array
) -> tuple[jax.Array, jax.Array, Any]:
    del impl  # the backward formulas do not depend on how the forward ran
    x, w, no_bias = res
    plan = choose_backward(x.shape, w.shape, strides)
    dx, dw, db = conv_backward(x, w, g, strides, pads, plan)
    return dx, dw, None if no_bias else db


_conv.defvjp(_conv_fwd, _conv_bwd)
