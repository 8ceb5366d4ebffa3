"""Shared pieces of the figures: figure creation, saving, validation, drawing.

Figures are plain ``matplotlib.figure.Figure`` objects: no ``pyplot``, so no
global figure registry, no GUI backend and nothing to close. Saving a Figure
as PNG renders it with Agg whatever the user's backend is.
"""

from __future__ import annotations

import fractions
import os
import pathlib
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jaxcnn import _checks
from jaxcnn.data.shapes import demo_shapes as demo_shapes  # re-exported by jaxcnn.viz
from jaxcnn.errors import InputError, InputTypeError

PathLike: TypeAlias = str | os.PathLike[str]

DPI = 100
"""Dots per inch of every saved PNG: a figure of ``w x h`` inches is ``100 w x 100 h`` pixels."""

IMAGE_CMAP = "gray"
SIGNED_CMAP = "RdBu_r"
"""Diverging map for signed values: blue negative, white zero, red positive."""
MAP_CMAP = "magma"
"""Map for non-negative responses (ReLU feature maps, match scores)."""


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width x height`` inches (``DPI`` pixels per inch), constrained layout."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def finish(fig: Figure, path: PathLike | None) -> Figure:
    """Save ``fig`` as a PNG at ``path`` (creating its folder) if given; return it."""
    if path is not None:
        target = pathlib.Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # No "Software" text chunk (matplotlib's version): the bytes depend on the pixels only.
        fig.savefig(target, dpi=DPI, format="png", metadata={"Software": None})
    return fig


def as_numpy(fn: str, name: str, value: Any, layout: str) -> np.ndarray:
    """Validate a real floating array of the given layout; return it as NumPy."""
    array = _checks.as_float_array(fn, name, value)
    _checks.check_rank(fn, name, array, layout)
    return np.asarray(array)


def image_names(fn: str, names: Any, count: int) -> list[str]:
    """One label per image, as strings."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise InputTypeError(f"{fn}: names must be a sequence of strings, got {names!r}")
    if len(names) != count:
        raise InputError(f"{fn}: names must have one label per image ({count}), got {names!r}")
    return [str(name) for name in names]


def format_value(value: float) -> str:
    """Short label for a kernel weight: ``5``, ``-0.5``, ``1/9``, ``0.42``."""
    if value == round(value):
        return str(round(value))
    if abs(round(value, 2) - value) < 1e-6:
        return f"{value:.2f}".rstrip("0")
    fraction = fractions.Fraction(value).limit_denominator(16)
    if abs(float(fraction) - value) < 1e-6:
        return f"{fraction.numerator}/{fraction.denominator}"
    return f"{value:.2f}"


def bare(ax: Axes) -> None:
    """Remove ticks: images and matrices need no axis numbers."""
    ax.set_xticks([])
    ax.set_yticks([])


def show_image(ax: Axes, pixels: np.ndarray, title: str) -> None:
    """A grey-scale image, black at ``min(0, min)``, white at its maximum."""
    low = min(0.0, float(pixels.min()))
    high = max(float(pixels.max()), low + 1e-12)
    ax.imshow(pixels, cmap=IMAGE_CMAP, vmin=low, vmax=high, interpolation="nearest")
    ax.set_title(title)
    bare(ax)


def show_signed(ax: Axes, values: np.ndarray, title: str) -> None:
    """A response that may be negative: diverging map centred on zero.

    Non-negative responses are shown in grey like the input image.
    """
    if float(values.min()) >= 0.0:
        show_image(ax, values, title)
        return
    limit = max(float(np.abs(values).max()), 1e-12)
    ax.imshow(values, cmap=SIGNED_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_title(title)
    bare(ax)


def draw_matrix(
    ax: Axes,
    values: np.ndarray,
    title: str,
    *,
    cmap: str = SIGNED_CMAP,
    limits: tuple[float, float] | None = None,
    fontsize: float | None = 11,
) -> None:
    """A small matrix as coloured cells with each value written in its cell.

    Args:
      ax: where to draw.
      values: ``[rows, cols]``.
      title: axes title.
      cmap: colour map; the default is diverging and centred on zero.
      limits: ``(vmin, vmax)``; default ``(-m, m)`` with ``m = max |values|``.
      fontsize: of the written values; ``None`` writes none (large matrices).
    """
    if limits is None:
        limit = max(float(np.abs(values).max()), 1e-12)
        limits = (-limit, limit)
    image = ax.imshow(values, cmap=cmap, vmin=limits[0], vmax=limits[1])
    ax.set_title(title)
    bare(ax)
    if fontsize is None:
        return
    for (row, col), value in np.ndenumerate(values):
        shade = np.asarray(image.cmap(image.norm(value)))
        luminance = float(shade[:3] @ np.array([0.299, 0.587, 0.114]))
        colour = "black" if luminance > 0.5 else "white"
        label = format_value(float(value))
        ax.text(col, row, label, ha="center", va="center", color=colour, fontsize=fontsize)
