"""Training precision: float32 throughout, or bf16 compute over float32 weights.

``"bf16"`` is the usual mixed-precision recipe: the parameters, the optimizer
state, the gradients and the loss stay float32; each step casts a bfloat16 copy
of the parameters and of the batch, runs the forward and backward passes
(convolutions, matrix products, activations, pooling) in bfloat16, and casts
the logits back to float32 before the loss. The gradient of the cast is a cast,
so the optimizer receives float32 gradients. Evaluation (``evaluate``, the
``val`` metrics of ``fit``) runs the float32 parameters in float32.

bf16 pays on accelerators with bf16 matrix units (GPU tensor cores, TPUs). On a
CPU without them XLA emulates bf16 arithmetic, and it is slower than float32
(docs/benchmarks.md has the numbers).
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias, get_args

import jax
import jax.numpy as jnp

from jaxcnn.errors import InputError

Precision: TypeAlias = Literal["float32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
"""Names accepted by ``fit(..., precision=...)`` and ``jaxcnn train --precision``."""

_COMPUTE_DTYPES = {"float32": jnp.float32, "bf16": jnp.bfloat16}


def check_precision(fn: str, precision: Any) -> str:
    """Require one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise InputError(f"{fn}: precision must be one of {PRECISIONS}, got {precision!r}")
    return str(precision)


def for_compute(tree: Any, precision: str) -> Any:
    """``tree``'s floating-point arrays cast to the compute dtype of ``precision``.

    Identity for ``"float32"`` (no cast is traced, so float32 programs are
    unchanged). Integer arrays (labels, indices) are left alone.
    """
    dtype = _COMPUTE_DTYPES[precision]
    if dtype == jnp.float32:
        return tree

    def cast(leaf: jax.Array) -> jax.Array:
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree.map(cast, tree)
