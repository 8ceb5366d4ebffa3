"""Plain NumPy float64 references, written the article's way, sharing no code with jaxcnn.

Explicit loops over output positions: slide the kernel, multiply, sum; take the
max of each window; send each output's error back to the pixels it read. Slow
and obviously right, which is the point: the library's forward ops, its
hand-written backward formulas (:mod:`jaxcnn.manual`) and the custom VJPs of
:mod:`jaxcnn.ops` are all checked against these. Nothing here imports jaxcnn,
not even its padding rule (:func:`padding_pairs` restates the contract).
Layouts match the library (NHWC, HWIO, dense ``[n_in, n_out]``).

Backward functions take the upstream gradient ``g = dL/dy`` and return the
gradients of the inputs, as ``jax.vjp`` does. The loss gradients are not
derived by hand at all: :func:`complex_step_grad` differentiates the loss
loops below to machine precision, so a wrong "output - label" formula in
the library cannot be mirrored here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Pair = tuple[int, int]
Pads = tuple[Pair, Pair]


# ----------------------------------------------------------------- the contract


def pair(value: int | tuple[int, int]) -> Pair:
    """An int ``s`` means ``(s, s)``."""
    if isinstance(value, int | np.integer):
        return int(value), int(value)
    return int(value[0]), int(value[1])


def padding_pairs(padding: Any, window: tuple[int, int]) -> Pads:
    """``((top, bottom), (left, right))`` of a padding for a ``window``-sized kernel.

    ``"valid"``: none. ``"same"``: ``k - 1`` per axis, half of it (rounded down)
    before, the rest after (an even kernel pads one more at the bottom/right).
    An int: that many on every side. A pair of pairs: as given.
    """
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        before = [(k - 1) // 2 for k in window]
        return (before[0], window[0] - 1 - before[0]), (before[1], window[1] - 1 - before[1])
    if isinstance(padding, int | np.integer):
        return (int(padding), int(padding)), (int(padding), int(padding))
    (top, bottom), (left, right) = padding
    return (int(top), int(bottom)), (int(left), int(right))


def pad(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of ``x: [N, H, W, C]`` with ``value``."""
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def crop(xp: np.ndarray, x_shape: tuple[int, ...], pads: Pads) -> np.ndarray:
    """The unpadded part of ``xp: [N, H + pads, W + pads, C]``: ``[N, H, W, C]``."""
    top, left = pads[0][0], pads[1][0]
    return xp[:, top : top + x_shape[1], left : left + x_shape[2], :]


def windows(padded_hw: Pair, window: Pair, stride: Pair) -> list[tuple[int, int, int, int]]:
    """Every window position ``(r, c, top, left)`` over a padded ``H x W`` grid, row-major."""
    out_h = (padded_hw[0] - window[0]) // stride[0] + 1
    out_w = (padded_hw[1] - window[1]) // stride[1] + 1
    return [(r, c, r * stride[0], c * stride[1]) for r in range(out_h) for c in range(out_w)]


# ----------------------------------------------------------------- convolution


def conv2d(x: Any, w: Any, b: Any, stride: Any, padding: Any) -> np.ndarray:
    """``x: [N, H, W, C_in]``, ``w: [kh, kw, C_in, C_out]``, ``b: [C_out]`` or None.

    Returns ``[N, H_out, W_out, C_out]``: every output pixel is the sum of its
    padded input window times each filter (cross-correlation), plus the bias.
    """
    w = np.asarray(w, np.float64)
    kh, kw, _, c_out = w.shape
    xp = pad(np.asarray(x, np.float64), padding_pairs(padding, (kh, kw)))
    places = windows(xp.shape[1:3], (kh, kw), pair(stride))
    out = np.zeros((xp.shape[0], places[-1][0] + 1, places[-1][1] + 1, c_out))
    for n in range(xp.shape[0]):
        for r, c, top, left in places:
            patch = xp[n, top : top + kh, left : left + kw, :]
            for o in range(c_out):
                out[n, r, c, o] = np.sum(patch * w[:, :, :, o])
    if b is not None:
        out += np.asarray(b, np.float64)
    return out


def conv2d_backward(
    x: Any, w: Any, g: Any, stride: Any, padding: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dw, db)`` of :func:`conv2d` for the upstream gradient ``g: [N, H_out, W_out, C_out]``.

    The article's ``dw[kr][kc] += input[r + kr][c + kc] * error[r][c]``, over
    the batch, channels and strided windows; every output pixel also sends
    ``error * w`` back to the window it read (``dx``) and ``error`` to its
    filter's bias (``db``).
    """
    x, w, g = (np.asarray(a, np.float64) for a in (x, w, g))
    kh, kw, _, c_out = w.shape
    pads = padding_pairs(padding, (kh, kw))
    xp = pad(x, pads)
    dxp, dw, db = np.zeros_like(xp), np.zeros_like(w), np.zeros(c_out)
    places = windows(xp.shape[1:3], (kh, kw), pair(stride))
    assert g.shape == (x.shape[0], places[-1][0] + 1, places[-1][1] + 1, c_out), g.shape
    for n in range(x.shape[0]):
        for r, c, top, left in places:
            for o in range(c_out):
                error = g[n, r, c, o]
                dw[:, :, :, o] += xp[n, top : top + kh, left : left + kw, :] * error
                dxp[n, top : top + kh, left : left + kw, :] += w[:, :, :, o] * error
                db[o] += error
    return crop(dxp, x.shape, pads), dw, db


# ----------------------------------------------------------------- pooling


def max_pool2d(x: Any, size: Any, stride: Any, padding: Any) -> np.ndarray:
    """Maximum of every window (padding never wins). ``stride=None`` means ``size``."""
    size = pair(size)
    pads = padding_pairs(padding, size)
    xp = pad(np.asarray(x, np.float64), pads, -np.inf)
    return _pool(xp, size, pair(size if stride is None else stride), np.max)


def avg_pool2d(x: Any, size: Any, stride: Any, padding: Any) -> np.ndarray:
    """Mean of the real (unpadded) pixels of every window."""
    size = pair(size)
    pads = padding_pairs(padding, size)
    xp = pad(np.asarray(x, np.float64), pads, np.nan)
    with np.errstate(invalid="ignore"):
        return _pool(xp, size, pair(size if stride is None else stride), _mean_of_real)


def _mean_of_real(window: np.ndarray) -> float:
    real = window[~np.isnan(window)]
    return float(real.sum() / real.size) if real.size else np.nan


def _pool(
    xp: np.ndarray, size: Pair, stride: Pair, reduce: Callable[[np.ndarray], float]
) -> np.ndarray:
    places = windows(xp.shape[1:3], size, stride)
    n, _, _, channels = xp.shape
    out = np.zeros((n, places[-1][0] + 1, places[-1][1] + 1, channels))
    for i in range(n):
        for ch in range(channels):
            for r, c, top, left in places:
                out[i, r, c, ch] = reduce(xp[i, top : top + size[0], left : left + size[1], ch])
    return out


def max_pool2d_backward(x: Any, g: Any, size: Any, stride: Any, padding: Any) -> np.ndarray:
    """The article's ``MaxPool2D.backward``, generalised, with ``+=``.

    Each window's ``g`` goes whole to the window's first maximum in row-major
    order (``np.argmax`` of the flattened window); a pixel that wins several
    overlapping windows collects all of them.
    """
    size = pair(size)
    pads = padding_pairs(padding, size)
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    xp = pad(x, pads, -np.inf)
    dxp = np.zeros_like(xp)
    places = windows(xp.shape[1:3], size, pair(size if stride is None else stride))
    for i in range(x.shape[0]):
        for ch in range(x.shape[3]):
            for r, c, top, left in places:
                window = xp[i, top : top + size[0], left : left + size[1], ch]
                kr, kc = np.unravel_index(np.argmax(window), window.shape)
                dxp[i, top + kr, left + kc, ch] += g[i, r, c, ch]
    return crop(dxp, x.shape, pads)


def avg_pool2d_backward(x: Any, g: Any, size: Any, stride: Any, padding: Any) -> np.ndarray:
    """Each window shares its ``g`` equally among the real pixels it covers."""
    size = pair(size)
    pads = padding_pairs(padding, size)
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    real = pad(np.ones(x.shape), pads, 0.0)
    dxp = np.zeros_like(real)
    places = windows(real.shape[1:3], size, pair(size if stride is None else stride))
    for i in range(x.shape[0]):
        for ch in range(x.shape[3]):
            for r, c, top, left in places:
                rows, cols = slice(top, top + size[0]), slice(left, left + size[1])
                count = real[i, rows, cols, ch].sum()
                if count:
                    dxp[i, rows, cols, ch] += real[i, rows, cols, ch] * g[i, r, c, ch] / count
    return crop(dxp, x.shape, pads)


def global_avg_pool2d(x: Any) -> np.ndarray:
    """``[N, H, W, C] -> [N, C]``: the mean of each feature map, by a loop."""
    x = np.asarray(x, np.float64)
    n, h, w, channels = x.shape
    out = np.zeros((n, channels))
    for i in range(n):
        for ch in range(channels):
            out[i, ch] = sum(x[i, r, c, ch] for r in range(h) for c in range(w)) / (h * w)
    return out


def global_avg_pool2d_backward(g: Any, x_shape: tuple[int, ...]) -> np.ndarray:
    """Every pixel of feature map ``(n, ch)`` gets ``g[n, ch] / (H * W)``."""
    n, h, w, channels = x_shape
    dx = np.zeros(x_shape)
    for i in range(n):
        for ch in range(channels):
            dx[i, :, :, ch] = float(g[i, ch]) / (h * w)
    return dx


# ----------------------------------------------------------------- flatten, dense, relu


def flatten(x: Any) -> np.ndarray:
    """Channel-major: all of channel 0 row by row, then channel 1, ..."""
    x = np.asarray(x, np.float64)
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


def flatten_backward(g: Any, x_shape: tuple[int, ...]) -> np.ndarray:
    """Each input pixel gets the gradient of the column :func:`flatten` put it in."""
    n, h, w, channels = x_shape
    dx = np.zeros(x_shape)
    for i in range(n):
        k = 0
        for ch in range(channels):
            for r in range(h):
                for c in range(w):
                    dx[i, r, c, ch] = g[i, k]
                    k += 1
    return dx


def relu_backward(z: Any, g: Any) -> np.ndarray:
    """The article's ``upstream_gradient * (z > 0)``, element by element (0 at ``z == 0``)."""
    z, g = np.asarray(z, np.float64), np.asarray(g, np.float64)
    dz = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        dz[index] = g[index] if z[index] > 0 else 0.0
    return dz


def dense(x: Any, w: Any, b: Any) -> np.ndarray:
    """``y[n, o] = sum_i x[n, i] w[i, o] + b[o]`` by loops."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, n_in = x.shape
    out = np.zeros((n, w.shape[1]))
    for i in range(n):
        for o in range(w.shape[1]):
            out[i, o] = sum(float(x[i, k]) * float(w[k, o]) for k in range(n_in))
    if b is not None:
        out += np.asarray(b, np.float64)
    return out


def dense_backward(x: Any, w: Any, g: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dw, db)`` of :func:`dense`: each ``y[n, o]`` sends ``g[n, o]`` to its inputs."""
    x, w, g = (np.asarray(a, np.float64) for a in (x, w, g))
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(w.shape[1])
    for n in range(x.shape[0]):
        for o in range(w.shape[1]):
            for i in range(x.shape[1]):
                dx[n, i] += g[n, o] * w[i, o]
                dw[i, o] += g[n, o] * x[n, i]
            db[o] += g[n, o]
    return dx, dw, db


# ----------------------------------------------------------------- losses


def binary_cross_entropy(logits: Any, labels: Any, weights: Any = None) -> Any:
    """Mean over examples of each example's mean ``-y log p - (1 - y) log(1 - p)``.

    ``logits``: ``[N]``, ``[N, 1]`` or ``[N, m]``; ``labels``: the same shape (or
    ``[N]`` for ``[N, 1]`` logits); ``weights``: ``[N]`` or None. With weights:
    ``sum(w_n * loss_n) / sum(w)``. Works on complex inputs (for
    :func:`complex_step_grad`); ``p`` is written ``1 / (1 + e^-z)``.
    """
    z = np.asarray(logits)
    y = np.asarray(labels).reshape(z.shape)
    n = z.shape[0]
    per_example = []
    for i in range(n):
        terms = []
        for zj, yj in zip(z[i].reshape(-1), y[i].reshape(-1), strict=True):
            log_p = -np.log(1 + np.exp(-zj))  # log sigmoid(z)
            log_not_p = -np.log(1 + np.exp(zj))  # log (1 - sigmoid(z))
            terms.append(-yj * log_p - (1 - yj) * log_not_p)
        per_example.append(sum(terms) / len(terms))
    return _weighted_mean(per_example, weights)


def softmax_cross_entropy(logits: Any, labels: Any, weights: Any = None) -> Any:
    """Mean over examples of ``-log(exp(z_y) / sum_k exp(z_k))``, by a loop (complex-safe)."""
    z = np.asarray(logits)
    per_example = []
    for row, label in zip(z, np.asarray(labels), strict=True):
        shift = row.real.max()  # a real shift keeps the complex step exact
        total = sum(np.exp(value - shift) for value in row)
        per_example.append(-(row[int(label)] - shift - np.log(total)))
    return _weighted_mean(per_example, weights)


def _weighted_mean(values: list[Any], weights: Any) -> Any:
    if weights is None:
        return sum(values) / len(values)
    weights = list(np.asarray(weights).reshape(-1))
    return sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)


COMPLEX_STEP = 1e-30


def complex_step_grad(fn: Callable[..., Any], args: list[Any], argnum: int) -> np.ndarray:
    """``d fn / d args[argnum]`` of a real-analytic ``fn`` by the complex step.

    ``f'(a) = Im f(a + ih) / h`` with ``h = 1e-30``: no subtraction, so no
    cancellation; exact to float64 rounding, independent of any hand-derived
    formula. One evaluation per element of ``args[argnum]``.
    """
    point = np.asarray(args[argnum], np.float64)
    grad = np.zeros_like(point)
    for index in np.ndindex(point.shape):
        stepped = point.astype(np.complex128)
        stepped[index] += 1j * COMPLEX_STEP
        moved = [stepped if k == argnum else a for k, a in enumerate(args)]
        grad[index] = np.imag(fn(*moved)) / COMPLEX_STEP
    return grad
