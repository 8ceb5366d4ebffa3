"""The MNIST CNN's largest backward product, in the forms that were tried.

``python -m benchmarks.dw_forms`` times the kernel gradient of the second
convolution (input ``[128, 13, 13, 32]``, 3x3 kernel, 64 outputs: about 571
MFLOP) inside a ``lax.scan`` over 20 steps, as the training epoch runs it, with
jaxcnn's epoch compiler options. ``JAXCNN_YNN=default`` keeps jaxlib's YNNPACK
fusions instead. Each form is checked against the first before it is timed.
Prints milliseconds per step (best of 3 scans). docs/benchmarks.md quotes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn.train import EPOCH_COMPILER_OPTIONS

HIGHEST = lax.Precision.HIGHEST
N, H, W, C, C_OUT, K = 128, 13, 13, 32, 64, 3
H_OUT, W_OUT = H - K + 1, W - K + 1
STEPS = 20
Form = Callable[[jax.Array, jax.Array], jax.Array]


def window(x: jax.Array, i: int, j: int) -> jax.Array:
    return x[:, i : i + H_OUT, j : j + W_OUT, :]


def per_offset(x: jax.Array, g: jax.Array) -> jax.Array:
    """One product per kernel offset (what jaxcnn uses)."""
    flat_g = g.reshape(-1, C_OUT)
    blocks = [
        jnp.dot(window(x, i, j).reshape(-1, C).T, flat_g, precision=HIGHEST)
        for i in range(K)
        for j in range(K)
    ]
    return jnp.stack(blocks).reshape(K, K, C, C_OUT)


def per_row(x: jax.Array, g: jax.Array) -> jax.Array:
    """One product per kernel row, its three column offsets side by side."""
    flat_g = g.reshape(-1, C_OUT)
    rows = []
    for i in range(K):
        side = jnp.concatenate([window(x, i, j) for j in range(K)], axis=-1)
        rows.append(jnp.dot(side.reshape(-1, K * C).T, flat_g, precision=HIGHEST))
    return jnp.stack(rows).reshape(K, K, C, C_OUT)


def im2col(x: jax.Array, g: jax.Array) -> jax.Array:
    """All nine offsets side by side, one product."""
    patches = jnp.concatenate([window(x, i, j) for i in range(K) for j in range(K)], axis=-1)
    dw = jnp.dot(patches.reshape(-1, K * K * C).T, g.reshape(-1, C_OUT), precision=HIGHEST)
    return dw.reshape(K, K, C, C_OUT)


def pixels_split(x: jax.Array, g: jax.Array, parts: int = 4) -> jax.Array:
    """Per offset, the pixel axis split into ``parts`` products, then summed."""
    split_g = g.reshape(parts, -1, C_OUT)
    blocks = [
        jnp.einsum("pkc,pko->co", window(x, i, j).reshape(parts, -1, C), split_g, precision=HIGHEST)
        for i in range(K)
        for j in range(K)
    ]
    return jnp.stack(blocks).reshape(K, K, C, C_OUT)


def batch_halves(x: jax.Array, g: jax.Array) -> jax.Array:
    """Per offset, the two halves of the batch as separate products, summed."""
    half = N // 2
    return per_offset(x[:half], g[:half]) + per_offset(x[half:], g[half:])


FORMS: dict[str, Form] = {
    "per offset": per_offset,
    "per row": per_row,
    "im2col": im2col,
    "pixels split": pixels_split,
    "batch halves": batch_halves,
}


def time_form(form: Form, xs: jax.Array, gs: jax.Array, options: dict[str, Any]) -> float:
    """Milliseconds per step of a scan that sums ``form`` over the steps."""

    def scanned(xs: jax.Array, gs: jax.Array) -> jax.Array:
        def step(total: jax.Array, xg: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
            return total + form(*xg), None

        return lax.scan(step, jnp.zeros((K, K, C, C_OUT)), (xs, gs))[0]

    compiled = jax.jit(scanned).lower(xs, gs).compile(options)
    compiled(xs, gs).block_until_ready()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        compiled(xs, gs).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / STEPS


def main() -> None:
    options = {} if os.environ.get("JAXCNN_YNN") == "default" else EPOCH_COMPILER_OPTIONS
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((STEPS, N, H, W, C), np.float32))
    gs = jnp.asarray(rng.standard_normal((STEPS, N, H_OUT, W_OUT, C_OUT), np.float32))
    want = np.asarray(per_offset(xs[0], gs[0]))
    for name, form in FORMS.items():
        np.testing.assert_allclose(form(xs[0], gs[0]), want, rtol=1e-4, atol=1e-2, err_msg=name)
        print(f"{name:13s} {time_form(form, xs, gs, options):6.2f} ms per step", flush=True)


if __name__ == "__main__":
    main()
