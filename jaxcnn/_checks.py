"""Argument validation shared by every public function.

All checks look only at static information (shapes, dtypes, Python values), so
they run once at trace time and cost nothing inside ``jit``. Every error names
the function, the argument, what was expected and what was given, e.g.
``conv2d: x must be 4-D (N, H, W, C), got shape (28, 28)``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn.errors import InputError, InputTypeError

Pair: TypeAlias = tuple[int, int]
Padding2D: TypeAlias = tuple[Pair, Pair]
PaddingLike: TypeAlias = str | int | Sequence[Sequence[int]]
IntOrPair: TypeAlias = int | Sequence[int]


def as_array(fn: str, name: str, value: Any) -> jax.Array:
    """Convert ``value`` to a ``jax.Array``; reject what cannot be one."""
    if isinstance(value, jax.Array):
        return value
    try:
        return jnp.asarray(value)
    except (TypeError, ValueError) as err:
        raise InputTypeError(
            f"{fn}: {name} must be an array, got {type(value).__name__} ({err})"
        ) from None


def as_float_array(fn: str, name: str, value: Any) -> jax.Array:
    """Convert to an array and require a real floating dtype."""
    array = as_array(fn, name, value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise InputTypeError(
            f"{fn}: {name} must have a real floating dtype "
            f"(float16/bfloat16/float32/float64), got {array.dtype}"
        )
    return array


def float_dtype(fn: str, dtype: Any) -> np.dtype:
    """``dtype`` as a NumPy floating dtype that jax will really use (``None``: float32).

    float64 needs ``jax.config.update("jax_enable_x64", True)``; without it jax
    would silently make float32, so that is an error here.
    """
    if dtype is None:
        return np.dtype(np.float32)
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise InputTypeError(f"{fn}: dtype must be a floating dtype, got {dtype!r}") from None
    if not jnp.issubdtype(result, jnp.floating):
        raise InputTypeError(
            f"{fn}: dtype must be a floating dtype (float16/bfloat16/float32/float64), got {result}"
        )
    if jax.dtypes.canonicalize_dtype(result) != result:
        raise InputError(
            f"{fn}: dtype {result} needs jax.config.update('jax_enable_x64', True) first "
            f"(without it jax makes {jax.dtypes.canonicalize_dtype(result)})"
        )
    return result


def check_rank(fn: str, name: str, array: jax.Array, layout: str) -> None:
    """Require ``array.ndim == len(layout.split(", "))``, e.g. ``"N, H, W, C"``."""
    rank = len(layout.split(", "))
    if array.ndim != rank:
        raise InputError(
            f"{fn}: {name} must be {rank}-D ({layout}), got shape {tuple(array.shape)}"
        )


def check_same_dtype(fn: str, **arrays: jax.Array) -> None:
    """Require all arrays to share one dtype (no silent promotion)."""
    dtypes = {name: array.dtype for name, array in arrays.items()}
    if len(set(dtypes.values())) > 1:
        given = ", ".join(f"{name}: {dtype}" for name, dtype in dtypes.items())
        raise InputTypeError(f"{fn}: expected arguments of one dtype, got {given}")


def positive_int(fn: str, name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` >= 1 (bools and floats are rejected)."""
    if isinstance(value, bool) or not _is_integer(value):
        raise InputTypeError(f"{fn}: {name} must be an int, got {value!r}")
    result = operator.index(value)
    if result < 1:
        raise InputError(f"{fn}: {name} must be >= 1, got {result}")
    return result


def int_pair(fn: str, name: str, value: Any) -> Pair:
    """Normalise an int or a pair of ints (each >= 1) to ``(rows, cols)``."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise InputError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
        return positive_int(fn, name, value[0]), positive_int(fn, name, value[1])
    number = positive_int(fn, name, value)
    return number, number


def padding_pairs(fn: str, padding: Any, window: Pair) -> Padding2D:
    """Normalise ``padding`` to ``((top, bottom), (left, right))``.

    ``"valid"`` pads nothing. ``"same"`` pads ``k - 1`` zeros per axis,
    ``(k - 1) // 2`` before and the rest after: the article's ``(k - 1) / 2``
    on each side for odd ``k``, one extra row/column at the bottom/right for
    even ``k`` (the convention of lax, TensorFlow and Keras). With stride 1 the
    output keeps the input's size; with stride ``s`` it is ``ceil(n / s)``.
    An int pads that many on every side.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            return _same(window[0]), _same(window[1])
        raise InputError(
            f'{fn}: padding must be "valid", "same", an int or '
            f"((top, bottom), (left, right)), got {padding!r}"
        )
    if isinstance(padding, bool):
        raise InputTypeError(f"{fn}: padding must not be a bool, got {padding!r}")
    if _is_integer(padding):
        amount = _non_negative(fn, padding, padding)
        return (amount, amount), (amount, amount)
    return _explicit_padding(fn, padding)


def _explicit_padding(fn: str, padding: Any) -> Padding2D:
    message = (
        f'{fn}: padding must be "valid", "same", an int or '
        f"((top, bottom), (left, right)), got {padding!r}"
    )
    if not isinstance(padding, Sequence) or len(padding) != 2:
        raise InputError(message)
    pairs = []
    for axis in padding:
        if not isinstance(axis, Sequence) or len(axis) != 2:
            raise InputError(message)
        low, high = (_non_negative(fn, padding, amount) for amount in axis)
        pairs.append((low, high))
    return pairs[0], pairs[1]


def _non_negative(fn: str, padding: Any, amount: Any) -> int:
    if isinstance(amount, bool) or not _is_integer(amount):
        raise InputTypeError(f"{fn}: padding amounts must be ints, got {padding!r}")
    value = operator.index(amount)
    if value < 0:
        raise InputError(f"{fn}: padding amounts must be >= 0, got {padding!r}")
    return value


def _same(k: int) -> Pair:
    return (k - 1) // 2, k - 1 - (k - 1) // 2


def _is_integer(value: Any) -> bool:
    return isinstance(value, int | np.integer)


def check_window_fits(fn: str, name: str, window: Pair, spatial: Pair, padding: Padding2D) -> None:
    """Require the window to fit inside the padded input on both axes."""
    padded = (spatial[0] + sum(padding[0]), spatial[1] + sum(padding[1]))
    if window[0] > padded[0] or window[1] > padded[1]:
        raise InputError(
            f"{fn}: {name} {window[0]}x{window[1]} is larger than the padded input "
            f"{padded[0]}x{padded[1]} (input {spatial[0]}x{spatial[1]}, "
            f"padding {padding})"
        )


def output_length(n: int, k: int, stride: int, low: int, high: int) -> int:
    """The article's ``(n + pad - k) // stride + 1`` for one axis."""
    return (n + low + high - k) // stride + 1


def check_grad_shape(fn: str, g: jax.Array, expected: tuple[int, ...]) -> None:
    """Require the upstream gradient to have the forward output's shape."""
    if tuple(g.shape) != tuple(expected):
        raise InputError(
            f"{fn}: g must have the forward output's shape {tuple(expected)}, got {tuple(g.shape)}"
        )


def image_shape(fn: str, shape: Any, name: str = "x_shape") -> tuple[int, int, int, int]:
    """Validate an ``(N, H, W, C)`` shape argument (each a positive int)."""
    if isinstance(shape, str) or not isinstance(shape, Sequence) or len(shape) != 4:
        raise InputError(f"{fn}: {name} must be (N, H, W, C), got {shape!r}")
    n, h, w, c = (positive_int(fn, name, d) for d in shape)
    return n, h, w, c


def conv_arguments(
    fn: str, x: Any, w: Any, stride: Any, padding: Any
) -> tuple[jax.Array, jax.Array, Pair, Padding2D]:
    """Validate a convolution's ``x [N, H, W, C_in]``, ``w [kh, kw, C_in, C_out]``, stride, padding.

    Returns:
      ``(x, w, strides, pads)`` with ``strides = (sh, sw)`` and ``pads =
      ((top, bottom), (left, right))``.
    """
    x = as_float_array(fn, "x", x)
    w = as_float_array(fn, "w", w)
    check_rank(fn, "x", x, "N, H, W, C")
    check_rank(fn, "w", w, "kh, kw, C_in, C_out")
    if w.shape[2] != x.shape[3]:
        raise InputError(
            f"{fn}: w's input-channel axis (w.shape[2]) must equal x's channels "
            f"(x.shape[3] = {x.shape[3]}), got w.shape = {tuple(w.shape)}"
        )
    check_same_dtype(fn, x=x, w=w)
    strides = int_pair(fn, "stride", stride)
    window = (w.shape[0], w.shape[1])
    pads = padding_pairs(fn, padding, window)
    check_window_fits(fn, "kernel", window, (x.shape[1], x.shape[2]), pads)
    return x, w, strides, pads


def bias(fn: str, b: Any, like: jax.Array, size: int, axis_name: str) -> jax.Array | None:
    """Validate an optional bias of shape ``(size,)`` and ``like``'s dtype."""
    if b is None:
        return None
    b = as_float_array(fn, "b", b)
    if b.shape != (size,):
        raise InputError(
            f"{fn}: b must have shape ({axis_name},) = ({size},), got {tuple(b.shape)}"
        )
    check_same_dtype(fn, x=like, b=b)
    return b


def dense_arguments(fn: str, x: Any, w: Any) -> tuple[jax.Array, jax.Array]:
    """Validate a dense layer's ``x [N, n_in]`` and ``w [n_in, n_out]``."""
    x = as_float_array(fn, "x", x)
    w = as_float_array(fn, "w", w)
    check_rank(fn, "x", x, "N, n_in")
    check_rank(fn, "w", w, "n_in, n_out")
    if x.shape[1] != w.shape[0]:
        raise InputError(
            f"{fn}: x's features (x.shape[1] = {x.shape[1]}) must equal w's rows "
            f"(w.shape[0]), got w.shape = {tuple(w.shape)}"
        )
    check_same_dtype(fn, x=x, w=w)
    return x, w


def pool_arguments(
    fn: str, x: Any, size: Any, stride: Any, padding: Any
) -> tuple[jax.Array, Pair, Pair, Padding2D]:
    """Validate pooling arguments; ``(x, window, strides, pads)``; stride defaults to size."""
    x = as_float_array(fn, "x", x)
    check_rank(fn, "x", x, "N, H, W, C")
    window = int_pair(fn, "size", size)
    strides = window if stride is None else int_pair(fn, "stride", stride)
    pads = padding_pairs(fn, padding, window)
    check_window_fits(fn, "size", window, (x.shape[1], x.shape[2]), pads)
    return x, window, strides, pads


def upstream_gradient(
    fn: str, g: Any, like: jax.Array, layout: str, expected: tuple[int, ...]
) -> jax.Array:
    """Validate a backward formula's ``g``: floating, ``like``'s dtype, the output's shape."""
    g = as_float_array(fn, "g", g)
    check_rank(fn, "g", g, layout)
    check_same_dtype(fn, x=like, g=g)
    check_grad_shape(fn, g, expected)
    return g


def padded_shape(shape: Sequence[int], pads: Padding2D) -> tuple[int, int, int, int]:
    """``(N, H, W, C)`` grown by ``pads``: ``(N, H + top + bottom, W + left + right, C)``."""
    n, h, w, c = shape
    return n, h + pads[0][0] + pads[0][1], w + pads[1][0] + pads[1][1], c


def conv_output_shape(
    shape: Sequence[int], window: Pair, strides: Pair, pads: Padding2D, channels: int
) -> tuple[int, int, int, int]:
    """``(N, H_out, W_out, channels)`` of a window sliding over an ``(N, H, W, C)`` input."""
    return (
        shape[0],
        output_length(shape[1], window[0], strides[0], *pads[0]),
        output_length(shape[2], window[1], strides[1], *pads[1]),
        channels,
    )
