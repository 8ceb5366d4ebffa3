"""Plain NumPy float64 reference implementations, written the article's way.

Explicit loops over output positions: slide the kernel, multiply, sum; take the
max of each window. Slow and obviously right, which is the point: the library
is checked against these. Layouts match the library (NHWC, HWIO).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Pads = tuple[tuple[int, int], tuple[int, int]]


def pad(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of ``x: [N, H, W, C]`` with ``value``."""
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: tuple[int, int],
    pads: Pads,
) -> np.ndarray:
    """``x: [N, H, W, C_in]``, ``w: [kh, kw, C_in, C_out]`` -> ``[N, oh, ow, C_out]``."""
    x = pad(np.asarray(x, np.float64), pads)
    w = np.asarray(w, np.float64)
    kh, kw, _, c_out = w.shape
    n, h, wid, _ = x.shape
    oh, ow = (h - kh) // stride[0] + 1, (wid - kw) // stride[1] + 1
    out = np.zeros((n, oh, ow, c_out))
    for i in range(n):
        for r in range(oh):
            for c in range(ow):
                top, left = r * stride[0], c * stride[1]
                patch = x[i, top : top + kh, left : left + kw, :]
                for f in range(c_out):
                    out[i, r, c, f] = np.sum(patch * w[:, :, :, f])
    if b is not None:
        out += np.asarray(b, np.float64)
    return out


def max_pool2d(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int], pads: Pads
) -> np.ndarray:
    """Maximum of every window (padding never wins)."""
    return _pool(pad(np.asarray(x, np.float64), pads, -np.inf), size, stride, np.max)


def avg_pool2d(
    x: np.ndarray, size: tuple[int, int], stride: tuple[int, int], pads: Pads
) -> np.ndarray:
    """Mean of the real (unpadded) pixels of every window."""
    padded = pad(np.asarray(x, np.float64), pads, np.nan)
    return _pool(padded, size, stride, np.nanmean)


def _pool(
    x: np.ndarray,
    size: tuple[int, int],
    stride: tuple[int, int],
    reduce: Callable[[np.ndarray], float],
) -> np.ndarray:
    n, h, w, ch = x.shape
    oh, ow = (h - size[0]) // stride[0] + 1, (w - size[1]) // stride[1] + 1
    out = np.zeros((n, oh, ow, ch))
    for i in range(n):
        for c in range(ch):
            for r in range(oh):
                for col in range(ow):
                    top, left = r * stride[0], col * stride[1]
                    window = x[i, top : top + size[0], left : left + size[1], c]
                    out[i, r, col, c] = reduce(window)
    return out


def flatten(x: np.ndarray) -> np.ndarray:
    """Channel-major: all of channel 0 row by row, then channel 1, ..."""
    n, h, w, ch = x.shape
    out = np.zeros((n, ch * h * w))
    for i in range(n):
        k = 0
        for c in range(ch):
            for r in range(h):
                for col in range(w):
                    out[i, k] = x[i, r, col, c]
                    k += 1
    return out


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``y[n, o] = sum_i x[n, i] w[i, o] + b[o]`` by loops."""
    n, n_in = x.shape
    out = np.zeros((n, w.shape[1]))
    for i in range(n):
        for o in range(w.shape[1]):
            out[i, o] = sum(float(x[i, k]) * float(w[k, o]) for k in range(n_in))
    if b is not None:
        out += np.asarray(b, np.float64)
    return out


def binary_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The article's formula on probabilities (fine for moderate logits)."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    y = np.asarray(labels, np.float64)
    return float(np.mean(-y * np.log(p) - (1 - y) * np.log(1 - p)))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """``-log(exp(z_y) / sum(exp(z)))`` averaged, by a loop."""
    total = 0.0
    for row, label in zip(np.asarray(logits, np.float64), labels, strict=True):
        probs = np.exp(row - row.max())
        total -= np.log(probs[int(label)] / probs.sum())
    return total / len(labels)
