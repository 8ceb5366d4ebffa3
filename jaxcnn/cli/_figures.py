"""``jaxcnn figures``: the article's figures as PNGs.

Writes into ``--out`` (default ``figures`` in the working directory; the
repository's own are made with ``--out docs/figures``, see scripts/figures.py):

* ``classical_kernels.png``: blur, sharpen and the two edge kernels on a square;
* ``pattern_match.png``: a 3x3 patch of the square slid over it, best matches marked;
* ``output_sizes.png``: the output-size formula on the article's examples;
* ``learned_filters.png``: a trained model's first-layer filters beside the
  feature maps they make of a square and a circle (the shapes model) or of
  two digits (the MNIST CNN, a few of its 32 filters); skipped, with a note,
  for a model without convolutions;
* ``training_curves.png``: train and validation loss and accuracy per epoch;
* ``saliency.png``: the gradient of each image's predicted class score with
  respect to its pixels (``jaxcnn.manual.input_gradient``), for the same two
  images as the filter figure.

The trained model comes from ``--run DIR`` (``DIR/checkpoint.npz`` and
``DIR/history.json``, as ``jaxcnn train`` writes them). Without ``--run`` the
shapes model is trained first with the article's settings and 10% of the
training split held out for validation (the article's Keras run), through
``jaxcnn train shapes --article --val-fraction 0.1``, in a temporary
directory (or ``--train-out DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from jaxcnn import manual, train
from jaxcnn.cli._common import CHECKPOINT, HISTORY, UsageError, check_writable, non_negative_int
from jaxcnn.cli._train import train_run
from jaxcnn.data import load_mnist, shapes
from jaxcnn.errors import InputError
from jaxcnn.layers import Layer

DEFAULT_OUT = Path("figures")
SQUARE_LEFT_EDGE = (10, 5)
"""Top-left of the 3x3 patch cut from the demo square's left side: dark, bright, bright."""
MNIST_FILTERS = 6
"""How many of the MNIST CNN's 32 first-layer filters the filter figure shows."""

KERNELS_PNG = "classical_kernels.png"
PATTERN_PNG = "pattern_match.png"
SIZES_PNG = "output_sizes.png"
FILTERS_PNG = "learned_filters.png"
CURVES_PNG = "training_curves.png"
SALIENCY_PNG = "saliency.png"
VAL_FRACTION = 0.1
"""Held out for validation by the training made without ``--run`` (Keras' ``validation_split``)."""
SHAPE_CLASSES = shapes.CLASS_NAMES


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``figures`` subcommand."""
    parser = subparsers.add_parser(
        "figures",
        help="write the article's figures (kernels, filters, curves) as PNGs",
        description=(
            "Write the article's figures as PNGs: classical kernels, pattern matching, "
            "output sizes, a trained model's learned filters and feature maps, and its "
            "training curves. Without --run, the shapes model is trained first."
        ),
    )
    parser.add_argument(
        "--run", type=Path, help="a run directory of `jaxcnn train` (checkpoint.npz, history.json)"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"where to write (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, help="seed of the training without --run (default 0)"
    )
    parser.add_argument(
        "--train-out",
        type=Path,
        help="keep the training run made without --run in this directory (default: temporary)",
    )
    parser.set_defaults(handler=run_figures)


def run_figures(args: argparse.Namespace) -> int:
    """Write every figure into ``args.out``; print the files written."""
    _check_arguments(args)
    check_writable(args.out, "--out")
    if args.run is not None:
        return _draw(args.run, args.out)
    with _training_dir(args.train_out) as run_dir:
        seed = 0 if args.seed is None else args.seed
        kept = f"in {run_dir}" if args.train_out else "in a temporary directory"
        print(
            f"no --run given: training the shapes model first (the article's settings, "
            f"{VAL_FRACTION:.0%} of the training split held out for validation, seed {seed}) "
            f"{kept}",
            flush=True,
        )
        code = _train_shapes(run_dir, seed)
        if code != 0:
            return code
        return _draw(run_dir, args.out)


def _check_arguments(args: argparse.Namespace) -> None:
    if args.run is None:
        if args.train_out is not None and (args.train_out / CHECKPOINT).exists():
            raise UsageError(
                f"--train-out {args.train_out} already holds a run; "
                f"draw it with --run {args.train_out}"
            )
        return
    if args.seed is not None:
        raise UsageError(
            "--seed sets the seed of the training made without --run; a run has its own"
        )
    if args.train_out is not None:
        raise UsageError("--train-out keeps the training made without --run; got --run too")


@contextlib.contextmanager
def _training_dir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="jaxcnn-figures-") as folder:
        yield Path(folder) / "shapes"


def _train_shapes(run_dir: Path, seed: int) -> int:
    """``jaxcnn train shapes --article --val-fraction 0.1 --seed SEED --out RUN_DIR --quiet``."""
    article = train.ARTICLE_SETTINGS["shapes"]._asdict()
    config = train.TrainConfig(model="shapes", seed=seed, val_fraction=VAL_FRACTION, **article)
    return train_run(config, run_dir, quiet=True)


class Run(NamedTuple):
    """What the figures need from a training run."""

    checkpoint: train.Checkpoint
    history: dict[str, Any]

    @property
    def config(self) -> train.TrainConfig:
        """How the run trained (:func:`load_run` refuses a checkpoint without a config)."""
        if self.checkpoint.config is None:
            raise InputError("--run: the checkpoint holds no training config")
        return self.checkpoint.config


def load_run(run_dir: Path) -> Run:
    """Read ``run_dir/checkpoint.npz`` and ``run_dir/history.json``.

    Raises:
      ValueError: (a :class:`jaxcnn.train.CheckpointError` for the checkpoint)
        if the directory or either file is missing or unreadable.
    """
    if not run_dir.is_dir():
        raise InputError(f"--run {run_dir}: no such run directory")
    checkpoint = train.load_checkpoint(run_dir / CHECKPOINT)
    if checkpoint.config is None:
        raise InputError(f"--run {run_dir}: the checkpoint holds no training config")
    history_path = run_dir / HISTORY
    if not history_path.is_file():
        raise InputError(f"{history_path}: no such file (written by `jaxcnn train`)")
    from jaxcnn import viz  # matplotlib: imported by the figures command only

    try:
        history = viz.load_history(history_path)
    except (TypeError, ValueError) as err:
        raise InputError(f"{history_path}: {err}") from None
    return Run(checkpoint, history)


def _draw(run_dir: Path, out: Path) -> int:
    run = load_run(run_dir)  # everything is read before anything is written
    for line in write_figures(run, out):
        print(line)
    return 0


def write_figures(run: Run, out: Path) -> list[str]:
    """Write all figures of ``run`` into ``out``.

    Returns:
      One line per figure: the path written, or why it was skipped.
    """
    from jaxcnn import viz  # matplotlib: imported by the figures command only

    square = viz.demo_shapes()[0]
    drawers: list[tuple[str, Callable[[Path], Any]]] = [
        (KERNELS_PNG, lambda path: viz.plot_classical_kernels(square, path=path)),
        (PATTERN_PNG, lambda path: viz.plot_pattern_match(square, SQUARE_LEFT_EDGE, path=path)),
        (SIZES_PNG, lambda path: viz.plot_output_sizes(path=path)),
    ]
    lines = []
    for name, draw in drawers:
        draw(out / name)
        lines.append(str(out / name))
    name = str(run.config.model)
    conv = first_conv(run.checkpoint.model, run.checkpoint.params)
    if conv is None:
        lines.append(f"skipped {out / FILTERS_PNG}: the {name} model has no convolution")
    else:
        _plot_filters(name, conv, out / FILTERS_PNG)
        lines.append(str(out / FILTERS_PNG))
    viz.plot_history(run.history, title=_curves_title(run), path=out / CURVES_PNG)
    lines.append(str(out / CURVES_PNG))
    plot_saliency(run.checkpoint.model, run.checkpoint.params, name, out / SALIENCY_PNG)
    lines.append(str(out / SALIENCY_PNG))
    return lines


def plot_saliency(model: Layer, params: Any, model_name: str, path: Path) -> None:
    """The input gradient of each sample image's predicted class score (manual backward)."""
    from jaxcnn import viz  # matplotlib: imported by the figures command only

    images, names = _sample_images(model_name)
    x = jnp.asarray(images)
    gradients = manual.input_gradient(model, params, x)
    probabilities = np.asarray(train.predict(model, params, x))  # [N, 2] for one logit
    predicted, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    classes = SHAPE_CLASSES if model_name == "shapes" else None
    labels = [
        f"{name}\npredicted {classes[k] if classes else k} ({p:.1%})"
        for name, k, p in zip(names, predicted, confidence, strict=True)
    ]
    viz.plot_saliency(images, gradients, names=labels, path=path)


def _sample_images(model_name: str) -> tuple[np.ndarray, list[str]]:
    """Two images for the figures of a trained model, ``[2, 28, 28, 1]``, and their names."""
    from jaxcnn import viz  # matplotlib: imported by the figures command only

    if model_name == "shapes":
        return viz.demo_shapes()[..., None], list(SHAPE_CLASSES)
    images, labels = _two_digits()
    return images, [f"digit {label}" for label in labels]


class FirstConv(NamedTuple):
    """A model's first convolution: its kernels ``[kh, kw, 1, F]``, biases and padding."""

    w: np.ndarray
    b: np.ndarray
    padding: Any


def first_conv(model: Layer, params: Any) -> FirstConv | None:
    """The first ``conv`` layer of a ``serial`` model, or ``None`` if it has none."""
    for name, layer in zip(model.config["names"], model.children, strict=True):
        if layer.kind == "conv":
            weights = params[name]
            padding = layer.config["padding"]
            return FirstConv(np.asarray(weights["w"]), np.asarray(weights["b"]), padding)
    return None


def _plot_filters(model_name: str, conv: FirstConv, path: Path) -> None:
    from jaxcnn import viz  # matplotlib: imported by the figures command only

    images, names = _sample_images(model_name)
    if model_name == "shapes":
        viz.plot_filters_and_feature_maps(
            conv.w, conv.b, images, names=names, padding=conv.padding, path=path
        )
        return
    count = min(MNIST_FILTERS, conv.w.shape[3])
    viz.plot_filters_and_feature_maps(
        conv.w[..., :count],
        conv.b[:count],
        images,
        names=names,
        padding=conv.padding,
        title=f"the first {count} of {conv.w.shape[3]} learned filters, their ReLU feature maps",
        path=path,
    )


def _two_digits() -> tuple[np.ndarray, list[int]]:
    """The first two test digits of different classes, ``[2, 28, 28, 1]``."""
    _, (images, labels) = load_mnist()
    first = 0
    second = int(np.flatnonzero(labels != labels[first])[0])
    return images[[first, second]], [int(labels[first]), int(labels[second])]


def _curves_title(run: Run) -> str:
    config = run.config
    val = (
        f" (val = {config.val_fraction:.0%} held out from the training split)"
        if config.val_fraction
        else ""
    )
    return (
        f"{config.model}: {config.optimizer} lr {config.lr:g}, batch {config.batch_size}, "
        f"seed {config.seed}{val}"
    )
