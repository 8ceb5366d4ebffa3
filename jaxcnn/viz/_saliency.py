"""Saliency: each image beside the gradient of its class score, which pixels decided."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jaxcnn.errors import InputError
from jaxcnn.viz._common import (
    SIGNED_CMAP,
    PathLike,
    as_numpy,
    bare,
    finish,
    image_names,
    new_figure,
    show_image,
)

CELL_INCHES = 2.5
"""Width of one column of :func:`plot_saliency` (250 pixels)."""
HEIGHT_INCHES = 5.6
"""Height of :func:`plot_saliency`: two panels and the titles (560 pixels)."""
SALIENCY_TITLE = (
    "gradient of the class score w.r.t. each pixel\nred raises the score, blue lowers it"
)


def plot_saliency(
    images: Any,
    gradients: Any,
    *,
    names: Sequence[str] | None = None,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Each image above the gradient of its class score with respect to its pixels.

    Bottom row: ``d score / d pixel`` on a blue/white/red scale centred on
    zero, one scale per image (its maximum ``|gradient|`` is in the panel
    title): red pixels, brightened, would raise the score of the class, blue
    ones lower it, white ones did not matter.

    Args:
      images: ``[M, H, W, 1]`` grey-scale images.
      gradients: ``[M, H, W, 1]`` their input gradients, e.g.
        ``jaxcnn.manual.input_gradient(model, params, images)``.
      names: ``M`` labels for the images; default ``image 1``, ``image 2``, ...
      title: figure title; default ``SALIENCY_TITLE``.
      path: if given, save a PNG there: ``250 M`` x 560 pixels (``DPI`` = 100).

    Returns:
      The figure: ``2 M`` axes, each with one image.
    """
    fn = "plot_saliency"
    x = as_numpy(fn, "images", images, "M, H, W, C")
    g = as_numpy(fn, "gradients", gradients, "M, H, W, C")
    if x.shape[3] != 1:
        raise InputError(f"{fn}: images must be grey-scale (M, H, W, 1), got shape {x.shape}")
    if g.shape != x.shape:
        raise InputError(
            f"{fn}: gradients must have the images' shape {x.shape}, got shape {g.shape}"
        )
    count = x.shape[0]
    default = [f"image {m + 1}" for m in range(count)]
    labels = image_names(fn, default if names is None else names, count)
    fig = new_figure(CELL_INCHES * count, HEIGHT_INCHES)
    axes = fig.subplots(2, count, squeeze=False)
    for m, label in enumerate(labels):
        show_image(axes[0, m], x[m, :, :, 0], label)
        axes[0, m].title.set_fontsize(10)
        _show_gradient(axes[1, m], g[m, :, :, 0])
    fig.suptitle(SALIENCY_TITLE if title is None else title, fontsize=11)
    return finish(fig, path)


def _show_gradient(ax: Axes, values: np.ndarray) -> None:
    limit = float(np.abs(values).max())
    scale = max(limit, 1e-12)
    ax.imshow(values, cmap=SIGNED_CMAP, vmin=-scale, vmax=scale, interpolation="nearest")
    ax.set_title(f"gradient (max |g| {limit:.2g})", fontsize=10)
    bare(ax)
