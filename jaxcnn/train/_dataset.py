"""Training data at the boundary: an ``(images, labels)`` pair checked once, before compiling."""

from __future__ import annotations

from typing import Any, TypeAlias

import jax
import jax.numpy as jnp

from jaxcnn.errors import InputError, InputTypeError

Dataset: TypeAlias = tuple[Any, Any]
"""``(images [N, H, W, C] float, labels [N] int)``."""


def check_dataset(fn: str, name: str, data: Any) -> tuple[jax.Array, jax.Array]:
    """Validate an ``(images, labels)`` pair; return it as jax arrays."""
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise InputTypeError(
            f"{fn}: {name} must be an (images, labels) pair, got {type(data).__name__}"
        )
    images, labels = jnp.asarray(data[0]), jnp.asarray(data[1])
    if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
        raise InputError(
            f"{fn}: {name} images must be a 4-D (N, H, W, C) float array, "
            f"got shape {tuple(images.shape)} dtype {images.dtype}"
        )
    if labels.shape != images.shape[:1]:
        raise InputError(
            f"{fn}: {name} labels must have shape (N,) = ({images.shape[0]},), "
            f"got {tuple(labels.shape)}"
        )
    if images.shape[0] == 0:
        raise InputError(f"{fn}: {name} must hold at least one sample, got 0")
    return images, labels
