"""Figures of a trained model: learned filters with their feature maps, curves."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from jaxcnn import _checks, ops
from jaxcnn._checks import PaddingLike
from jaxcnn.errors import InputError, InputTypeError
from jaxcnn.viz._common import (
    MAP_CMAP,
    PathLike,
    as_numpy,
    bare,
    draw_matrix,
    finish,
    image_names,
    new_figure,
    show_image,
)

CELL_INCHES = 2.0
"""Side of one panel of :func:`plot_filters_and_feature_maps` (200 pixels)."""

FILTERS_TITLE = "learned filters (left), their ReLU feature maps (right)"
REQUIRED_CURVES = ("train_loss", "train_accuracy")
OPTIONAL_CURVES = ("val_loss", "val_accuracy")


def plot_filters_and_feature_maps(
    conv_w: Any,
    conv_b: Any,
    images: Any,
    *,
    names: Sequence[str] = ("square", "circle"),
    padding: PaddingLike = "same",
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Each learned filter beside the ReLU feature maps it makes of each image.

    Top row: the input images. Then one row per filter: the kernel (values
    written in, blue negative / red positive) and ``relu(conv2d(image, w, b))``
    for every image, all maps of a row on one colour scale (0 to the row's
    maximum) so the images can be compared.

    Args:
      conv_w: ``[kh, kw, 1, F]`` first-layer kernels, e.g. ``params["conv0"]["w"]``.
      conv_b: ``[F]`` their biases.
      images: ``[M, H, W, 1]``, e.g. a square and a circle.
      names: ``M`` labels for the images.
      padding: of the convolution; the shapes model uses ``"same"``.
      title: figure title; default ``FILTERS_TITLE``.
      path: if given, save a PNG there: ``200 (M + 1)`` x ``200 (F + 1)``
        pixels (``DPI`` = 100), e.g. 600 x 600 for 2 filters and 2 images.

    Returns:
      The figure: ``M + F + F * M`` axes, each with one image.
    """
    fn = "plot_filters_and_feature_maps"
    w, b, x = _filter_inputs(fn, conv_w, conv_b, images)
    labels = image_names(fn, names, x.shape[0])
    window = (w.shape[0], w.shape[1])
    pads = _checks.padding_pairs(fn, padding, window)
    _checks.check_window_fits(fn, "conv_w", window, (x.shape[1], x.shape[2]), pads)
    maps = np.asarray(ops.relu(ops.conv2d(x, w, b, padding=pads)))
    filters, count = w.shape[3], x.shape[0]
    fig = new_figure(CELL_INCHES * (count + 1), CELL_INCHES * (filters + 1))
    grid = fig.add_gridspec(filters + 1, count + 1)
    for m, label in enumerate(labels):
        show_image(fig.add_subplot(grid[0, m + 1]), x[m, :, :, 0], f"input: {label}")
    for f in range(filters):
        heading = f"filter {f + 1} (bias {b[f]:.2f})"
        draw_matrix(fig.add_subplot(grid[f + 1, 0]), w[:, :, 0, f], heading, fontsize=_font(w))
        high = max(float(maps[..., f].max()), 1e-12)
        for m, label in enumerate(labels):
            ax = fig.add_subplot(grid[f + 1, m + 1])
            _show_map(ax, maps[m, :, :, f], high, f"filter {f + 1} on {label}")
    fig.suptitle(FILTERS_TITLE if title is None else title)
    return finish(fig, path)


def _filter_inputs(
    fn: str, conv_w: Any, conv_b: Any, images: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = as_numpy(fn, "conv_w", conv_w, "kh, kw, C_in, F")
    b = as_numpy(fn, "conv_b", conv_b, "F")
    x = as_numpy(fn, "images", images, "M, H, W, C")
    if w.shape[2] != 1:
        raise InputError(
            f"{fn}: conv_w must take one input channel, shape (kh, kw, 1, F), got shape {w.shape}"
        )
    if b.shape != (w.shape[3],):
        raise InputError(f"{fn}: conv_b must have shape (F,) = ({w.shape[3]},), got {b.shape}")
    if x.shape[3] != 1:
        raise InputError(f"{fn}: images must be grey-scale (M, H, W, 1), got shape {x.shape}")
    return w.astype(x.dtype), b.astype(x.dtype), x


def _font(w: np.ndarray) -> float | None:
    """Value labels fit up to 5x5 kernels."""
    return 11 if max(w.shape[0], w.shape[1]) <= 5 else None


def _show_map(ax: Axes, values: np.ndarray, high: float, title: str) -> None:
    """A ReLU feature map; a map without a single positive value says so in its title."""
    ax.imshow(values, cmap=MAP_CMAP, vmin=0.0, vmax=high, interpolation="nearest")
    ax.set_title(title if float(values.max()) > 0.0 else f"{title}: all 0", fontsize=10)
    bare(ax)


def plot_history(
    history: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Loss and accuracy per epoch, train and (if present) validation.

    Args:
      history: per-epoch lists keyed ``train_loss``, ``train_accuracy`` and
        optionally ``val_loss``, ``val_accuracy`` (what ``jaxcnn.train.fit``
        returns; read a saved ``history.json`` with :func:`load_history`).
        Other keys are ignored.
      title: optional figure title (e.g. the run's settings).
      path: if given, save a PNG there: 1000 x 400 pixels (``DPI`` = 100).

    Returns:
      The figure: 2 axes (loss, accuracy), one line per curve present.
    """
    curves = _curves("plot_history", history)
    epochs = np.arange(1, len(curves["train_loss"]) + 1)
    fig = new_figure(10.0, 4.0)
    loss_ax, accuracy_ax = fig.subplots(1, 2)
    for ax, metric in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        for split in ("train", "val"):
            key = f"{split}_{metric}"
            if key in curves:
                ax.plot(epochs, curves[key], marker="o", markersize=3, label=split)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_xlim(0.5, len(epochs) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend()
    if title is not None:
        fig.suptitle(title)
    return finish(fig, path)


def load_history(path: PathLike) -> dict[str, Any]:
    """Read a ``history.json`` written by training.

    Args:
      path: JSON file holding the per-epoch lists ``train_loss``,
        ``train_accuracy`` and optionally ``val_loss``, ``val_accuracy``:
        either as the top-level object, or under its ``"history"`` key as
        ``jaxcnn train`` writes it (``{"config": ..., "history": ..., "test": ...}``).

    Returns:
      The per-epoch lists as a dict (checked like :func:`plot_history` checks its input).
    """
    fn = "load_history"
    text = pathlib.Path(path).read_text(encoding="utf-8")
    try:
        history = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{fn}: {path} is not valid JSON ({err})") from None
    if not isinstance(history, dict):
        raise InputError(f"{fn}: {path} must hold a JSON object, got {type(history).__name__}")
    if "train_loss" not in history and isinstance(history.get("history"), dict):
        history = history["history"]  # the run file of ``jaxcnn train``
    _curves(fn, history)
    return history


def _curves(fn: str, history: Any) -> dict[str, np.ndarray]:
    """The curves present, as 1-D float arrays of one common length >= 1."""
    if isinstance(history, str | pathlib.PurePath):
        raise InputTypeError(
            f"{fn}: history must be a mapping; read a file with load_history(path)"
        )
    if not isinstance(history, Mapping):
        raise InputTypeError(f"{fn}: history must be a mapping, got {type(history).__name__}")
    missing = [key for key in REQUIRED_CURVES if key not in history]
    if missing:
        raise InputError(f"{fn}: history must have keys {missing}, got keys {sorted(history)}")
    present = [key for key in (*REQUIRED_CURVES, *OPTIONAL_CURVES) if key in history]
    curves = {key: _curve(fn, key, history[key]) for key in present}
    epochs = len(curves["train_loss"])
    for key, values in curves.items():
        if len(values) != epochs:
            raise InputError(
                f"{fn}: history[{key!r}] must have one value per epoch "
                f"({epochs}, like train_loss), got {len(values)}"
            )
    return curves


def _curve(fn: str, key: str, values: Any) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputTypeError(
            f"{fn}: history[{key!r}] must be a list of numbers, got {values!r}"
        ) from None
    if array.ndim != 1 or array.size == 0:
        raise InputError(
            f"{fn}: history[{key!r}] must be a non-empty list of numbers, got {values!r}"
        )
    return array
