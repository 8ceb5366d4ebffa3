"""Figures of hand-designed kernels and of convolution as pattern matching."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from jaxcnn import _checks, kernels
from jaxcnn.errors import InputError, InputTypeError
from jaxcnn.viz._common import (
    IMAGE_CMAP,
    MAP_CMAP,
    PathLike,
    as_numpy,
    bare,
    draw_matrix,
    finish,
    new_figure,
    show_image,
    show_signed,
)

PATCH_COLOUR = "#00c8ff"
MATCH_COLOUR = "#00ff66"
_LEGEND = "\n".join(
    [
        "top: each kernel's output",
        "grey: black 0, white max",
        "colour: blue < 0 < red",
        "",
        "bottom: the 3x3 kernels",
    ]
)


def plot_classical_kernels(image: Any, *, path: PathLike | None = None) -> Figure:
    """The image, and the image with each of ``kernels.CLASSICAL`` applied.

    Top row: the input, then one ``"same"``-padded output per kernel (grey
    when the output is non-negative, blue/white/red centred on zero when it
    has negative values). Bottom row: the 3x3 kernel under its output, each
    weight written in its cell.

    Args:
      image: ``[H, W]`` grey-scale image, e.g. ``demo_shapes()[0]``.
      path: if given, save a PNG there: 1000 x 460 pixels (``DPI`` = 100).

    Returns:
      The figure: 9 axes (1 input, 4 outputs, 4 kernels), each with one image.
    """
    pixels = as_numpy("plot_classical_kernels", "image", image, "H, W")
    fig = new_figure(10.0, 4.6)
    grid = fig.add_gridspec(2, 1 + len(kernels.CLASSICAL), height_ratios=(1.25, 1.0))
    show_image(fig.add_subplot(grid[0, 0]), pixels, "input")
    for column, (name, kernel) in enumerate(kernels.CLASSICAL.items(), start=1):
        output = np.asarray(kernels.apply_kernel(pixels, kernel))
        low, high = float(output.min()), float(output.max())
        show_signed(fig.add_subplot(grid[0, column]), output, f"{name}\n[{low:.3g}, {high:.3g}]")
        draw_matrix(fig.add_subplot(grid[1, column]), np.asarray(kernel), f"{name} kernel")
    fig.text(0.1, 0.22, _LEGEND, ha="center", va="center", fontsize=10, linespacing=1.6)
    return finish(fig, path)


def plot_pattern_match(
    image: Any,
    top_left: Sequence[int],
    size: int = 3,
    *,
    normalize: bool = True,
    path: PathLike | None = None,
) -> Figure:
    """Cut a patch from the image and show where it matches.

    Left: the image with the patch outlined. Middle: the patch, values written
    in. Right: ``kernels.match_pattern(image, patch)`` drawn over the image's
    pixel grid (the score of each window at the window's centre) with every
    best match (within 1e-4 of the maximum) circled.

    Args:
      image: ``[H, W]`` grey-scale image.
      top_left: ``(row, col)`` of the patch's top-left pixel.
      size: side of the square patch, >= 1; it must fit inside the image.
      normalize: passed to :func:`jaxcnn.kernels.match_pattern` (cosine
        scores <= 1 by default, raw dot products if False).
      path: if given, save a PNG there: 960 x 360 pixels (``DPI`` = 100).

    Returns:
      The figure: 3 axes with one image each, and the score's colour bar.
    """
    fn = "plot_pattern_match"
    pixels = as_numpy(fn, "image", image, "H, W")
    size = _checks.positive_int(fn, "size", size)
    row, col = _patch_origin(fn, top_left, size, pixels.shape)
    patch = pixels[row : row + size, col : col + size]
    response = np.asarray(kernels.match_pattern(pixels, patch, normalize=normalize))
    fig = new_figure(9.6, 3.6)
    image_ax, patch_ax, match_ax = fig.subplots(1, 3)
    show_image(image_ax, pixels, f"image, {size}x{size} patch at ({row}, {col})")
    _outline(image_ax, row, col, size, PATCH_COLOUR)
    limits = (min(0.0, float(pixels.min())), max(float(pixels.max()), 1e-12))
    fontsize = 11 if size <= 5 else None
    draw_matrix(
        patch_ax, patch, "patch = kernel", cmap=IMAGE_CMAP, limits=limits, fontsize=fontsize
    )
    _draw_matches(match_ax, response, size, pixels.shape, (row, col))
    return finish(fig, path)


def best_positions(response: np.ndarray, tolerance: float = 1e-4) -> np.ndarray:
    """``[K, 2]`` (row, col) of every entry within ``tolerance`` of the maximum."""
    peak = float(response.max())
    return np.argwhere(response >= peak - tolerance * max(1.0, abs(peak)))


def _draw_matches(
    ax: Axes,
    response: np.ndarray,
    size: int,
    shape: tuple[int, ...],
    origin: tuple[int, int],
) -> None:
    """The score map placed on the image grid, best matches circled."""
    offset = (size - 1) / 2
    out_h, out_w = response.shape
    extent = (offset - 0.5, offset + out_w - 0.5, offset + out_h - 0.5, offset - 0.5)
    image = ax.imshow(response, cmap=MAP_CMAP, extent=extent, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, shrink=0.85)
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)
    ax.set_facecolor("black")
    best = best_positions(response)
    ax.scatter(
        best[:, 1] + offset,
        best[:, 0] + offset,
        s=36,
        facecolors="none",
        edgecolors=MATCH_COLOUR,
        linewidths=1.2,
    )
    _outline(ax, origin[0], origin[1], size, PATCH_COLOUR)
    peak = float(response.max())
    count = len(best)
    ax.set_title(f"match score: max {peak:.3g}, {count} best match{'es' if count > 1 else ''}")
    bare(ax)


def _outline(ax: Axes, row: int, col: int, size: int, colour: str) -> None:
    corner = (col - 0.5, row - 0.5)
    ax.add_patch(Rectangle(corner, size, size, fill=False, edgecolor=colour, linewidth=1.5))


def _patch_origin(fn: str, top_left: Any, size: int, shape: tuple[int, ...]) -> tuple[int, int]:
    """Validate ``top_left`` as a pair of ints with the patch inside the image."""
    message = f"{fn}: top_left must be a pair of ints (row, col), got {top_left!r}"
    if isinstance(top_left, str) or not isinstance(top_left, Sequence | np.ndarray):
        raise InputTypeError(message)
    if len(top_left) != 2:
        raise InputError(message)
    if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in top_left):
        raise InputTypeError(message)
    row, col = (operator.index(v) for v in top_left)
    height, width = shape
    if not (0 <= row <= height - size and 0 <= col <= width - size):
        raise InputError(
            f"{fn}: a {size}x{size} patch at top_left ({row}, {col}) does not fit "
            f"inside the {height}x{width} image"
        )
    return row, col
