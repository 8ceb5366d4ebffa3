"""Classical hand-designed kernels, and convolution as pattern matching.

Before CNNs learned their kernels, image processing designed them by hand.
Each constant is a read-only ``[3, 3]`` float32 NumPy array applied by sliding it over the
image (cross-correlation, like every CNN library):

* ``BLUR``: every weight 1/9, the mean of the 3x3 neighbourhood.
* ``SHARPEN``: centre 5, the four direct neighbours -1; flat areas are kept
  (the weights sum to 1), differences to the neighbours are amplified.
* ``EDGE_HORIZONTAL``: Sobel, top row negative, bottom row positive: responds
  where brightness changes from top to bottom, i.e. at horizontal edges.
* ``EDGE_VERTICAL``: the same rotated: right column minus left column.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import _checks, ops
from jaxcnn._checks import PaddingLike


def _kernel(rows: Any) -> np.ndarray:
    # NumPy, read-only: importing jaxcnn must not start jax's devices (jax.distributed
    # can only be initialised before that).
    kernel = np.array(rows, np.float32)
    kernel.flags.writeable = False
    return kernel


BLUR = _kernel(np.full((3, 3), 1.0 / 9.0))
SHARPEN = _kernel([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
EDGE_HORIZONTAL = _kernel([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
EDGE_VERTICAL = _kernel([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])

CLASSICAL: dict[str, np.ndarray] = {
    "blur": BLUR,
    "sharpen": SHARPEN,
    "horizontal edges": EDGE_HORIZONTAL,
    "vertical edges": EDGE_VERTICAL,
}
"""The four kernels by display name, in the article's order."""


def apply_kernel(image: Any, kernel: Any, padding: PaddingLike = "same") -> jax.Array:
    """Slide one 2-D kernel over one 2-D image.

    Args:
      image: ``[H, W]`` grey-scale image.
      kernel: ``[kh, kw]``.
      padding: as for :func:`jaxcnn.ops.conv2d`; ``"same"`` keeps ``[H, W]``.

    Returns:
      ``[H_out, W_out]`` feature map.
    """
    image, kernel = _as_image_and_kernel("apply_kernel", image, kernel)
    out = ops.conv2d(image[None, :, :, None], kernel[:, :, None, None], padding=padding)
    return out[0, :, :, 0]


def match_pattern(image: Any, patch: Any, *, normalize: bool = True) -> jax.Array:
    """Use a patch as the kernel: where does something like it appear?

    The raw response is the dot product of the patch with every window of the
    image (the article's pattern matching). A bright region then scores high
    whatever its shape, so by default each response is divided by the norms
    of the patch and of the window (normalised cross-correlation, the cosine
    of the angle between the two flattened 9-vectors): it is at most 1, and
    exactly 1 where the window equals the patch up to brightness, so the
    maximum is where the patch was cut from. Windows that are all zero score 0.

    Args:
      image: ``[H, W]``.
      patch: ``[kh, kw]``, e.g. ``image[r : r + 3, c : c + 3]``.
      normalize: divide by the norms (default) or return raw dot products.

    Returns:
      ``[H - kh + 1, W - kw + 1]``; entry ``(r, c)`` scores the window whose
      top-left pixel is ``(r, c)``.
    """
    image, patch = _as_image_and_kernel("match_pattern", image, patch, name="patch")
    raw = apply_kernel(image, patch, padding="valid")
    if not normalize:
        return raw
    window_sq = apply_kernel(image * image, jnp.ones_like(patch), padding="valid")
    norms = jnp.sqrt(jnp.maximum(window_sq, 0.0)) * jnp.linalg.norm(patch)
    safe = jnp.where(norms > 0, norms, 1.0)
    return jnp.where(norms > 0, raw / safe, 0.0)


def best_match(response: Any) -> tuple[int, int]:
    """``(row, col)`` of the largest response (the first one, row-major)."""
    values = np.asarray(response)
    row, col = np.unravel_index(int(np.argmax(values)), values.shape)
    return int(row), int(col)


def _as_image_and_kernel(
    fn: str, image: Any, kernel: Any, name: str = "kernel"
) -> tuple[jax.Array, jax.Array]:
    image = _checks.as_float_array(fn, "image", image)
    kernel = _checks.as_float_array(fn, name, kernel)
    _checks.check_rank(fn, "image", image, "H, W")
    _checks.check_rank(fn, name, kernel, "kh, kw")
    return image, kernel.astype(image.dtype)
