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
        raise TypeError(
            f"{fn}: {name} must be an array, got {type(value).__name__} ({err})"
        ) from None


def as_float_array(fn: str, name: str, value: Any) -> jax.Array:
    """Convert to an array and require a real floating dtype."""
    array = as_array(fn, name, value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: {name} must have a real floating dtype "
            f"(float16/bfloat16/float32/float64), got {array.dtype}"
        )
    return array


def check_rank(fn: str, name: str, array: jax.Array, layout: str) -> None:
    """Require ``array.ndim == len(layout.split(", "))``, e.g. ``"N, H, W, C"``."""
    rank = len(layout.split(", "))
    if array.ndim != rank:
        raise ValueError(
            f"{fn}: {name} must be {rank}-D ({layout}), got shape {tuple(array.shape)}"
        )


def check_same_dtype(fn: str, **arrays: jax.Array) -> None:
    """Require all arrays to share one dtype (no silent promotion)."""
    dtypes = {name: array.dtype for name, array in arrays.items()}
    if len(set(dtypes.values())) > 1:
        given = ", ".join(f"{name}: {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"{fn}: expected arguments of one dtype, got {given}")


def positive_int(fn: str, name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` >= 1 (bools and floats are rejected)."""
    if isinstance(value, bool) or not _is_integer(value):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    result = operator.index(value)
    if result < 1:
        raise ValueError(f"{fn}: {name} must be >= 1, got {result}")
    return result


def int_pair(fn: str, name: str, value: Any) -> Pair:
    """Normalise an int or a pair of ints (each >= 1) to ``(rows, cols)``."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
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
        raise ValueError(
            f'{fn}: padding must be "valid", "same", an int or '
            f"((top, bottom), (left, right)), got {padding!r}"
        )
    if isinstance(padding, bool):
        raise TypeError(f"{fn}: padding must not be a bool, got {padding!r}")
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
        raise ValueError(message)
    pairs = []
    for axis in padding:
        if not isinstance(axis, Sequence) or len(axis) != 2:
            raise ValueError(message)
        low, high = (_non_negative(fn, padding, amount) for amount in axis)
        pairs.append((low, high))
    return pairs[0], pairs[1]


def _non_negative(fn: str, padding: Any, amount: Any) -> int:
    if isinstance(amount, bool) or not _is_integer(amount):
        raise TypeError(f"{fn}: padding amounts must be ints, got {padding!r}")
    value = operator.index(amount)
    if value < 0:
        raise ValueError(f"{fn}: padding amounts must be >= 0, got {padding!r}")
    return value


def _same(k: int) -> Pair:
    return (k - 1) // 2, k - 1 - (k - 1) // 2


def _is_integer(value: Any) -> bool:
    return isinstance(value, int | np.integer)


def check_window_fits(fn: str, name: str, window: Pair, spatial: Pair, padding: Padding2D) -> None:
    """Require the window to fit inside the padded input on both axes."""
    padded = (spatial[0] + sum(padding[0]), spatial[1] + sum(padding[1]))
    if window[0] > padded[0] or window[1] > padded[1]:
        raise ValueError(
            f"{fn}: {name} {window[0]}x{window[1]} is larger than the padded input "
            f"{padded[0]}x{padded[1]} (input {spatial[0]}x{spatial[1]}, "
            f"padding {padding})"
        )


def output_length(n: int, k: int, stride: int, low: int, high: int) -> int:
    """The article's ``(n + pad - k) // stride + 1`` for one axis."""
    return (n + low + high - k) // stride + 1
