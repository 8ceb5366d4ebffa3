"""XLA compiler options for jaxcnn's own jitted epochs (training and evaluation).

On CPU, jaxlib 0.10 hands dots and convolutions to YNNPACK fusions by default.
For the article's small layers that is the slower choice: with
``xla_cpu_experimental_ynn_fusion_type`` set to the empty list, XLA keeps its
own (Eigen) convolution and dot emitters, and a training epoch runs 1.3-1.4x
faster on the 2-core machine of docs/benchmarks.md (MNIST CNN at batch 128:
2,819 -> 3,917 images/s; shapes CNN at batch 32: 38,756 -> 49,767 images/s,
both measured in one session; docs/benchmarks.md).

The options are passed per function (``jax.jit(..., compiler_options=...)``),
never through the process-wide ``XLA_FLAGS``, so importing jaxcnn changes
nothing else in a user's program. They are XLA debug options that other
backends ignore.
"""

from __future__ import annotations

from typing import Any

EPOCH_COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": ""}
"""``compiler_options`` for ``jax.jit`` of a training or evaluation epoch."""
