"""Views 1 and 2: a 3x3 kernel on a grey image, pattern matching, and the sliding window.

Every function here is jitted, with the settings the page offers static
(:data:`STRIDES`, :data:`PADDINGS`), and compiled once per image size when
the page starts (:func:`warm_up`): no click compiles anything.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn import kernels, ops
from jaxcnn.errors import InputError

KERNEL_SIZE = 3
"""The page's kernels are 3x3, as in the article."""
STRIDES = (1, 2, 3)
PADDINGS = (0, 1, 2)
"""Zeros added on each side: 0 is ``"valid"``, 1 is ``"same"`` for a 3x3 kernel."""


class OutputSize(NamedTuple):
    """The output-size formula ``floor((n + 2p - k) / s) + 1`` on both axes, filled in."""

    n: int  # input height
    n_w: int  # input width
    k: int
    p: int
    s: int
    out: int  # output height
    out_w: int  # output width


def output_size(image_shape: tuple[int, int], stride: int, padding: int) -> OutputSize:
    """The formula's terms for an ``[H, W]`` image and a 3x3 kernel, by ``ops.conv_output_size``."""
    height, width = image_shape
    out = ops.conv_output_size(height, KERNEL_SIZE, stride, padding)
    out_w = ops.conv_output_size(width, KERNEL_SIZE, stride, padding)
    return OutputSize(height, width, KERNEL_SIZE, padding, stride, out, out_w)


@functools.partial(jax.jit, static_argnames=("stride", "padding"))
def kernel_output(image: jax.Array, kernel: jax.Array, *, stride: int, padding: int) -> jax.Array:
    """The kernel slid over the image: ``ops.conv2d`` of one grey image with one filter.

    Args:
      image: ``[H, W]``.
      kernel: ``[3, 3]``.

    Returns:
      ``[H_out, W_out]`` (:func:`output_size`).
    """
    out = ops.conv2d(
        image[None, :, :, None], kernel[:, :, None, None], stride=stride, padding=padding
    )
    return out[0, :, :, 0]


@jax.jit
def match_maps(image: jax.Array, row: jax.Array, col: jax.Array) -> tuple[jax.Array, ...]:
    """Cut the 3x3 patch centred on ``(row, col)`` and find where it appears.

    The patch has zeros where it hangs over the image's border. Both maps are
    ``"same"``-padded (``kernels.match_pattern`` of the image with one pixel of
    zeros around it), so entry ``(r, c)`` scores the window centred on
    ``(r, c)``, and the clicked pixel scores itself.

    Args:
      image: ``[H, W]``.
      row, col: int32 scalars inside the image.

    Returns:
      ``(patch [3, 3], dot [H, W], cosine [H, W])``: the raw dot products (what
      a convolution computes) and the normalised ones (at most 1, exactly 1
      where a window equals the patch up to brightness).
    """
    half = KERNEL_SIZE // 2
    padded = jnp.pad(image, half)
    patch = lax.dynamic_slice(padded, (row, col), (KERNEL_SIZE, KERNEL_SIZE))
    dot = kernels.match_pattern(padded, patch, normalize=False)
    cosine = kernels.match_pattern(padded, patch)
    return patch, dot, cosine


@functools.partial(jax.jit, static_argnames=("stride", "padding"))
def slide(
    image: jax.Array, kernel: jax.Array, *, stride: int, padding: int
) -> tuple[jax.Array, ...]:
    """Every position of the sliding window, for Play: the window, the 9 products, their sum.

    Args:
      image: ``[H, W]``.
      kernel: ``[3, 3]``.

    Returns:
      ``(windows, products, sums)``: ``[H_out, W_out, 3, 3]`` twice and
      ``[H_out, W_out]``; ``products = windows * kernel`` elementwise, and
      ``sums`` adds each position's 9 products (in float32).
    """
    size = output_size((image.shape[0], image.shape[1]), stride, padding)
    padded = jnp.pad(image, padding)
    offsets = jnp.arange(KERNEL_SIZE)
    rows = jnp.arange(size.out)[:, None, None, None] * stride + offsets[None, None, :, None]
    cols = jnp.arange(size.out_w)[None, :, None, None] * stride + offsets[None, None, None, :]
    windows = padded[rows, cols]
    products = windows * kernel[None, None]
    return windows, products, jnp.sum(products, axis=(2, 3))


def fits(image_shape: tuple[int, int], stride: int, padding: int) -> bool:
    """Whether a 3x3 kernel has at least one position on the padded image."""
    try:
        output_size(image_shape, stride, padding)
    except InputError:
        return False
    return True


def warm_up(image_shapes: set[tuple[int, int]]) -> None:
    """Compile every function of this module for each image size and page setting."""
    kernel = jnp.zeros((KERNEL_SIZE, KERNEL_SIZE), jnp.float32)
    for shape in sorted(image_shapes):
        image = jnp.zeros(shape, jnp.float32)
        jax.block_until_ready(match_maps(image, np.int32(0), np.int32(0)))
        for stride in STRIDES:
            for padding in PADDINGS:
                if fits(shape, stride, padding):
                    jax.block_until_ready(
                        kernel_output(image, kernel, stride=stride, padding=padding)
                    )
                    jax.block_until_ready(slide(image, kernel, stride=stride, padding=padding))
