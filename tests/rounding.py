"""Rounding bounds for comparisons that cannot be bit for bit.

Two programs that sum the same terms in another order (lax and sliding
convolutions, a jitted and an eager pass, a whole sum and two partial sums)
round differently, and by how much depends on the CPU (vector width, kernel
blocking). A tolerance tuned until it passes on one CPU may fail on another, so
float32 comparisons here use the worst-case bound of floating-point summation
instead (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
eq. 3.4 and section 4.2): a sum of ``n`` terms, each a product of two factors,
computed in any order (any summation tree, with or without fused multiply-add)
is off the exact sum by at most ``gamma(n) * sum(|terms|)`` (a dot product's
bound: the product and at most ``n - 1`` additions round each term), where
``gamma(k) = k u / (1 - k u)`` and ``u`` is the unit roundoff (2**-24 for
float32). Factors rounded to float32 from float64 add two roundings per term:
``gamma(n + 2)``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tests import reference


def unit_roundoff(dtype: Any) -> float:
    """``u``: half the spacing of floats just above 1 (2**-24 for float32, 2**-53 for float64)."""
    return float(np.finfo(dtype).eps) / 2


def gamma(k: int, dtype: Any = np.float32) -> float:
    """Higham's ``gamma_k = k u / (1 - k u)``: relative error of ``k`` chained roundings."""
    ku = k * unit_roundoff(dtype)
    assert ku < 1, f"gamma({k}) is undefined for {np.dtype(dtype).name}"
    return ku / (1 - ku)


def float32_vs_exact(abs_sum: Any, n_terms: int) -> np.ndarray:
    """Bound on ``|float32 result - float64 reference|`` of a sum of products.

    The inputs were float64 and cast to float32 (one rounding per factor), the
    ``n_terms`` products summed in float32 in any order; the float64 reference
    (any order too) adds its own, far smaller, rounding.

    Args:
      abs_sum: ``sum(|terms|)`` per output (any shape), e.g. the oracle run on
        ``|x|`` and ``|w|``.
      n_terms: the most terms one output sums (a bias counts as one).
    """
    bound = gamma(n_terms + 2) + gamma(n_terms, np.float64)
    return bound * np.asarray(abs_sum, np.float64)


def float32_vs_float32(abs_sum: Any, n_terms: int) -> np.ndarray:
    """Bound on ``|a - b|`` for two float32 sums of the same products in two orders.

    Both start from the same float32 inputs; each is within
    ``gamma(n_terms) * sum(|terms|)`` of the exact sum, so the two are within
    twice that of each other.
    """
    return 2 * gamma(n_terms) * np.asarray(abs_sum, np.float64)


def assert_within(got: Any, want: Any, bound: Any) -> None:
    """``|got - want| <= bound`` elementwise (shapes broadcast), naming the worst entry.

    A NaN on both sides (e.g. the mean of a window of padding only) counts as equal.
    """
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    shape = np.broadcast_shapes(got.shape, want.shape)
    got, want = np.broadcast_to(got, shape), np.broadcast_to(want, shape)
    both_nan = np.isnan(got) & np.isnan(want)
    error = np.where(both_nan, 0.0, np.abs(got - want))
    bound = np.where(both_nan, 0.0, np.broadcast_to(np.asarray(bound, np.float64), shape))
    within = error <= bound
    if not np.all(within):
        worst = np.unravel_index(int(np.argmin(np.where(within, np.inf, bound - error))), shape)
        raise AssertionError(
            f"|got - want| = {error[worst]:.3g} > bound {bound[worst]:.3g} at {worst}: "
            f"got {got[worst]!r}, want {want[worst]!r}"
        )


def float32_logit_bound(model: Any, params: Any, images: Any) -> np.ndarray:
    """Bound on ``|float32 logits - exact logits|`` for any float32 evaluation of ``model``.

    A float32 forward pass of conv / dense / pool / ReLU layers is a chain of
    sums of products; ReLU, max-pooling and flatten are exact and 1-Lipschitz.
    The classical bound for a product of matrices (Higham, section 3.5),
    ``|fl(W2 W1 x) - W2 W1 x| <= gamma(n1 + n2) |W2| |W1| |x|``, extends layer by
    layer: every logit is within ``gamma(N) * M`` of the exact one, where ``M``
    is the model run on ``|params|`` and ``|images|`` (the plain-lax forward of
    :mod:`tests.reference` in float64; ReLU is then the identity) and ``N``
    bounds the roundings along one path: each layer's fan-in plus its bias
    (``prod(w.shape[:-1]) + 1`` for every weight ``w``, HWIO or ``[n_in, n_out]``)
    and, if the model averages, one image's pixels per averaging layer (more
    than any averaging window sums, plus its division).

    Args:
      model: a ``serial`` model.
      params: its parameters (any float dtype).
      images: ``[N, H, W, C]``.

    Returns:
      ``[N, K]`` float64, the bound of each logit.
    """
    abs_images = np.abs(np.asarray(images, np.float64))
    with jax.enable_x64(True):
        abs_params = jax.tree.map(lambda a: jnp.abs(jnp.asarray(a, jnp.float64)), params)
        plain = reference.plain_model(model)
        magnitude = np.asarray(plain(abs_params, jnp.asarray(abs_images)))
    weights = [
        leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
        if getattr(path[-1], "key", None) == "w"
    ]
    roundings = sum(math.prod(np.shape(w)[:-1]) + 1 for w in weights)
    roundings += _averaging_layers(model) * (math.prod(abs_images.shape[1:]) + 1)
    return gamma(roundings) * magnitude


def _averaging_layers(model: Any) -> int:
    """How many average-pooling layers ``model`` holds (nested ``serial`` included)."""
    own = int(model.kind in ("avg_pool", "global_avg_pool"))
    return own + sum(_averaging_layers(child) for child in model.children)


def uncertain_predictions(logits: Any, bound: Any) -> np.ndarray:
    """``[N]`` bool: predictions another float32 program could make otherwise.

    ``logits`` come from one float32 program, each within ``bound`` of the
    exact value, so another program's are within ``2 * bound`` of these. A
    one-logit prediction (``z > 0``) may differ only where ``|z| <= 2 * bound``;
    a multi-class one (the largest logit, class ``c``) only where some other
    class ``j`` has ``z_c - z_j <= 2 * (bound_c + bound_j)``.
    """
    logits, bound = np.asarray(logits, np.float64), np.asarray(bound, np.float64)
    if logits.shape[1] == 1:
        return np.asarray(np.abs(logits[:, 0]) <= 2 * bound[:, 0])
    top = np.argmax(logits, axis=1)
    rows = np.arange(len(logits))
    margin = logits[rows, top][:, None] - logits
    reach = 2 * (bound[rows, top][:, None] + bound)
    close = margin <= reach
    close[rows, top] = False
    return np.asarray(close.any(axis=1))


def float32_loss_difference(logits: Any, labels: Any, bound: Any) -> float:
    """Bound on how far two float32 programs' mean cross-entropy of the same batch differ.

    A logit moved by ``e`` moves binary cross-entropy by at most ``e`` and softmax
    cross-entropy by at most ``2 max e`` (the gradient ``p - onehot`` has an L1
    norm under 2); each program's logits are within ``bound`` of the exact ones.
    Each per-example loss is a few elementwise operations (exp, log1p, a product,
    an addition), allowed 16 u of ``|z| + loss + 1``, and the mean of ``n``
    non-negative terms is within ``gamma(n)`` of its exact value.
    """
    logits, bound = np.asarray(logits, np.float64), np.asarray(bound, np.float64)
    labels = np.asarray(labels)
    if logits.shape[1] == 1:
        z, y = logits[:, 0], labels.astype(np.float64)
        per_example = np.logaddexp(0.0, z) - y * z
        moved = bound[:, 0]
        size = np.abs(z)
    else:
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        per_example = -log_p[np.arange(len(labels)), labels]
        moved = 2 * bound.max(axis=1)
        size = np.abs(logits).max(axis=1)
    u = unit_roundoff(np.float32)
    evaluation = gamma(len(per_example)) * per_example.mean() + 16 * u * np.mean(
        size + per_example + 1
    )
    return float(2 * (moved.mean() + evaluation))
