"""Every bad argument of the public ops gives a clear error naming it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import ops

X = jnp.ones((2, 8, 8, 3), jnp.float32)
W = jnp.ones((3, 3, 3, 4), jnp.float32)

CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    (
        "x rank",
        lambda: ops.conv2d(jnp.ones((28, 28)), W),
        ValueError,
        "conv2d: x must be 4-D (N, H, W, C), got shape (28, 28)",
    ),
    (
        "w rank",
        lambda: ops.conv2d(X, jnp.ones((3, 3, 3))),
        ValueError,
        "conv2d: w must be 4-D (kh, kw, C_in, C_out), got shape (3, 3, 3)",
    ),
    (
        "channels",
        lambda: ops.conv2d(X, jnp.ones((3, 3, 1, 4))),
        ValueError,
        "w's input-channel axis (w.shape[2]) must equal x's channels (x.shape[3] = 3)",
    ),
    (
        "bias shape",
        lambda: ops.conv2d(X, W, jnp.ones(3)),
        ValueError,
        "conv2d: b must have shape (C_out,) = (4,), got (3,)",
    ),
    (
        "kernel too big",
        lambda: ops.conv2d(jnp.ones((1, 2, 8, 3)), W),
        ValueError,
        "conv2d: kernel 3x3 is larger than the padded input 2x8",
    ),
    (
        "stride zero",
        lambda: ops.conv2d(X, W, stride=0),
        ValueError,
        "conv2d: stride must be >= 1, got 0",
    ),
    (
        "stride negative pair",
        lambda: ops.conv2d(X, W, stride=(1, -2)),
        ValueError,
        "conv2d: stride must be >= 1, got -2",
    ),
    (
        "stride float",
        lambda: ops.conv2d(X, W, stride=1.5),  # type: ignore[arg-type]
        TypeError,
        "conv2d: stride must be an int, got 1.5",
    ),
    (
        "stride bool",
        lambda: ops.conv2d(X, W, stride=True),
        TypeError,
        "conv2d: stride must be an int, got True",
    ),
    (
        "stride triple",
        lambda: ops.conv2d(X, W, stride=(1, 1, 1)),
        ValueError,
        "conv2d: stride must be an int or a pair of ints, got (1, 1, 1)",
    ),
    (
        "padding name",
        lambda: ops.conv2d(X, W, padding="full"),
        ValueError,
        'conv2d: padding must be "valid", "same", an int or '
        "((top, bottom), (left, right)), got 'full'",
    ),
    (
        "padding negative",
        lambda: ops.conv2d(X, W, padding=-1),
        ValueError,
        "conv2d: padding amounts must be >= 0, got -1",
    ),
    (
        "padding shape",
        lambda: ops.conv2d(X, W, padding=(1, 2, 3)),  # type: ignore[arg-type]
        ValueError,
        "conv2d: padding must be",
    ),
    (
        "padding float",
        lambda: ops.conv2d(X, W, padding=((1.0, 1), (1, 1))),  # type: ignore[arg-type]
        TypeError,
        "conv2d: padding amounts must be ints",
    ),
    (
        "int x",
        lambda: ops.conv2d(X.astype(jnp.int32), W),
        TypeError,
        "conv2d: x must have a real floating dtype (float16/bfloat16/float32/float64), got int32",
    ),
    (
        "complex w",
        lambda: ops.conv2d(X, W.astype(jnp.complex64)),
        TypeError,
        "conv2d: w must have a real floating dtype",
    ),
    (
        "mixed dtypes",
        lambda: ops.conv2d(X, W.astype(jnp.bfloat16)),
        TypeError,
        "conv2d: expected arguments of one dtype, got x: float32, w: bfloat16",
    ),
    (
        "impl",
        lambda: ops.conv2d(X, W, impl="fft"),  # type: ignore[arg-type]
        ValueError,
        "conv2d: impl must be one of ('auto', 'lax', 'sliding'), got 'fft'",
    ),
    ("not an array", lambda: ops.conv2d("image", W), TypeError, "conv2d: x must"),
    (
        "output size k",
        lambda: ops.conv_output_size(2, 3),
        ValueError,
        "conv_output_size: k 3x1 is larger than the padded input 2x1",
    ),
    (
        "output size stride",
        lambda: ops.conv_output_size(5, 3, 0),
        ValueError,
        "conv_output_size: stride must be >= 1, got 0",
    ),
    (
        "output size n",
        lambda: ops.conv_output_size(0, 3),
        ValueError,
        "conv_output_size: n must be >= 1, got 0",
    ),
    (
        "pool rank",
        lambda: ops.max_pool2d(jnp.ones((8, 8))),
        ValueError,
        "max_pool2d: x must be 4-D (N, H, W, C), got shape (8, 8)",
    ),
    ("pool size", lambda: ops.max_pool2d(X, 0), ValueError, "max_pool2d: size must be >= 1, got 0"),
    (
        "pool too big",
        lambda: ops.avg_pool2d(X, 9),
        ValueError,
        "avg_pool2d: size 9x9 is larger than the padded input 8x8",
    ),
    (
        "pool stride",
        lambda: ops.avg_pool2d(X, 2, stride=0),
        ValueError,
        "avg_pool2d: stride must be >= 1, got 0",
    ),
    (
        "pool padding",
        lambda: ops.max_pool2d(X, 2, padding="reflect"),
        ValueError,
        "max_pool2d: padding must be",
    ),
    (
        "pool int",
        lambda: ops.max_pool2d(X.astype(jnp.int8)),
        TypeError,
        "max_pool2d: x must have a real floating dtype",
    ),
    (
        "global rank",
        lambda: ops.global_avg_pool2d(jnp.ones((2, 3))),
        ValueError,
        "global_avg_pool2d: x must be 4-D (N, H, W, C), got shape (2, 3)",
    ),
    (
        "flatten rank",
        lambda: ops.flatten(jnp.ones((2, 3))),
        ValueError,
        "flatten: x must be 4-D (N, H, W, C), got shape (2, 3)",
    ),
    (
        "unflatten size",
        lambda: ops.unflatten(jnp.ones((2, 10)), (2, 2, 2)),
        ValueError,
        "unflatten: flat must have C*H*W = 8 columns for shape (2, 2, 2), got shape (2, 10)",
    ),
    (
        "dense mismatch",
        lambda: ops.dense(jnp.ones((2, 5)), jnp.ones((4, 3))),
        ValueError,
        "dense: x's features (x.shape[1] = 5) must equal w's rows (w.shape[0]), "
        "got w.shape = (4, 3)",
    ),
    (
        "dense rank",
        lambda: ops.dense(jnp.ones((2, 2, 5)), jnp.ones((5, 3))),
        ValueError,
        "dense: x must be 2-D (N, n_in), got shape (2, 2, 5)",
    ),
    (
        "dense bias",
        lambda: ops.dense(jnp.ones((2, 5)), jnp.ones((5, 3)), jnp.ones(2)),
        ValueError,
        "dense: b must have shape (n_out,) = (3,), got (2,)",
    ),
    (
        "dense int",
        lambda: ops.dense(jnp.ones((2, 5), jnp.int32), jnp.ones((5, 3))),
        TypeError,
        "dense: x must have a real floating dtype",
    ),
    (
        "relu int",
        lambda: ops.relu(jnp.arange(3)),
        TypeError,
        "relu: x must have a real floating dtype",
    ),
    (
        "bce broadcast",
        lambda: ops.binary_cross_entropy(jnp.ones((4, 2)), jnp.ones(4)),
        ValueError,
        "binary_cross_entropy: labels must have the shape of logits ((4, 2))",
    ),
    (
        "bce int logits",
        lambda: ops.binary_cross_entropy(jnp.ones(4, jnp.int32), jnp.ones(4)),
        TypeError,
        "binary_cross_entropy: logits must have a real floating dtype",
    ),
    (
        "ce labels dtype",
        lambda: ops.softmax_cross_entropy(jnp.ones((2, 3)), jnp.ones(2)),
        TypeError,
        "softmax_cross_entropy: labels must be integer class ids, got float32",
    ),
    (
        "ce labels shape",
        lambda: ops.softmax_cross_entropy(jnp.ones((2, 3)), jnp.ones(3, jnp.int32)),
        ValueError,
        "softmax_cross_entropy: labels must have shape (N,) = (2,), got (3,)",
    ),
    (
        "ce labels range",
        lambda: ops.softmax_cross_entropy(jnp.ones((2, 3)), jnp.asarray([0, 3])),
        ValueError,
        "softmax_cross_entropy: labels must lie in [0, 3), got values from 0 to 3",
    ),
    (
        "ce logits rank",
        lambda: ops.softmax_cross_entropy(jnp.ones(3), jnp.asarray([0])),
        ValueError,
        "softmax_cross_entropy: logits must be 2-D (N, K), got shape (3,)",
    ),
]


@pytest.mark.parametrize(
    ("fn", "error", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_error_names_argument(fn: Callable[[], Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        fn()


def test_errors_are_raised_at_trace_time_under_jit() -> None:
    conv = jax.jit(lambda x, w: ops.conv2d(x, w, stride=2))
    with pytest.raises(ValueError, match=re.escape("w's input-channel axis")):
        conv(X, jnp.ones((3, 3, 2, 4)))


def test_traced_out_of_range_labels_give_nan_not_a_silent_value() -> None:
    loss = jax.jit(ops.softmax_cross_entropy)(jnp.ones((2, 3)), jnp.asarray([0, 7]))
    assert np.isnan(float(loss))


def test_numpy_inputs_are_accepted() -> None:
    x = np.ones((1, 4, 4, 1), np.float32)
    w = np.ones((3, 3, 1, 1), np.float32)
    np.testing.assert_array_equal(ops.conv2d(x, w)[0, :, :, 0], np.full((2, 2), 9.0))
