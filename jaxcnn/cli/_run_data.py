"""Which data a run trains and is evaluated on, and the model sized to it.

``jaxcnn train MODEL`` uses the model's built-in data (:data:`DATA`), or
``--data PATH``: a folder of class folders of images (with ``--image-size``,
``--color`` and ``--skip-bad-images``), a folder of MNIST-format IDX files or
an ``.npz``. The number of classes comes from the labels and sizes the
model's output layer. The run records the data's
:class:`~jaxcnn.data.DataSource` (where from, SHA-256, and for images the
class names and preprocessing); ``jaxcnn eval`` and ``--resume`` load it
again the same way and refuse it when it is missing or has changed, unless
``--data`` names data explicitly.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import train
from jaxcnn.cli._common import UsageError, positive
from jaxcnn.data import (
    COLOR_MODES,
    Data,
    DataChangedError,
    DataSource,
    class_count,
    load_data,
    load_recorded,
    mnist_data,
    shapes_data,
)
from jaxcnn.errors import InputError, MissingFileError
from jaxcnn.layers import Layer, input_shape_of


def _shapes(seed: int) -> Data:
    return shapes_data(seed)


def _mnist(seed: int) -> Data:
    """The standard 60,000 / 10,000 split from the verified cache (``jaxcnn data fetch mnist``)."""
    del seed  # MNIST's split is fixed; the seed drives init and batch order only
    return mnist_data()


DATA: dict[str, Callable[[int], Data]] = {
    "shapes": _shapes,
    "mnist-cnn": _mnist,
    "mnist-dense": _mnist,
}
"""Model name -> its built-in data, ``seed -> Data``; every name of :data:`jaxcnn.models.MODELS`."""


IMAGE_OPTIONS = ("image_size", "color", "skip_bad")
"""The ``load_data`` keywords the image flags set (``--image-size``, ``--color``, ...)."""


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """``--image-size H W``, ``--color`` and ``--skip-bad-images`` (image folders only)."""
    parser.add_argument(
        "--image-size",
        nargs=2,
        type=positive(int),
        metavar=("H", "W"),
        help="image folders: resize every image to H x W (Pillow's bilinear filter; default: "
        "the first image's size, which every image must have)",
    )
    parser.add_argument(
        "--color",
        choices=COLOR_MODES,
        help="image folders: convert every image to grayscale (ITU-R 601-2 luma) or rgb "
        "(default: the first image's mode, which every image must have)",
    )
    parser.add_argument(
        "--skip-bad-images",
        dest="skip_bad",
        action="store_true",
        help="image folders: leave out unreadable, truncated or misnamed files (their count "
        "is printed and recorded) instead of stopping at the first",
    )


def image_options(args: argparse.Namespace) -> dict[str, Any]:
    """The image flags given, as ``load_data`` keywords (none given: ``{}``)."""
    options = {name: getattr(args, name, None) for name in IMAGE_OPTIONS}
    if options["image_size"] is not None:
        options["image_size"] = tuple(options["image_size"])
    return {name: value for name, value in options.items() if value not in (None, False)}


def training_data(
    config: train.TrainConfig,
    resumed: train.Checkpoint | None,
    path: Path | None,
    options: dict[str, Any] | None = None,
    note: Callable[[str], None] = lambda _: None,
) -> Data:
    """The data of ``jaxcnn train``: ``--data``, the resumed run's, or the model's own.

    ``options`` are the image flags (:func:`image_options`); ``note`` gets
    one line for the files an image folder left out.
    """
    options = dict(options or {})
    if resumed is None:
        if path is None and options:
            flags = ", ".join("--" + name.replace("_", "-") for name in options)
            raise UsageError(f"{flags}: only for --data FOLDER (a folder of class folders)")
        if path is None:
            return DATA[str(config.model)](config.seed)
        data = load_data(path, seed=config.seed, progress=True, **options)
        report_left_out(data, note)
        return data
    if path is None:
        if options:
            raise UsageError("--resume reads the run's images as it did; drop the image flags")
        return recorded_data(resumed, "--resume", note)
    recorded = {} if resumed.data is None else resumed.data.load_options()
    if options and options != {k: v for k, v in recorded.items() if k in IMAGE_OPTIONS}:
        raise UsageError("--resume reads the run's images as it did; drop the image flags")
    data = load_data(path, progress=True, **recorded)
    if resumed.data is not None and data.source.sha256 != resumed.data.sha256:
        raise UsageError(
            f"--resume: the run trained on {resumed.data.describe()}, but --data {path} is "
            f"other data (SHA-256 {data.source.sha256[:12]}..., the run recorded "
            f"{resumed.data.sha256[:12]}...)"
        )
    return data


def report_left_out(data: Data, note: Callable[[str], None]) -> None:
    """One note for the unreadable files skipped and one for the non-image files ignored."""
    settings = data.source.images
    if settings is None:
        return
    if settings.skipped:
        shown = ", ".join(settings.skipped[:3]) + (", ..." if len(settings.skipped) > 3 else "")
        note(
            f"skipped {len(settings.skipped)} unreadable image file(s) (--skip-bad-images): {shown}"
        )
    if settings.ignored:
        note(f"ignored {settings.ignored} file(s) that are not images by name (see docs/data.md)")


def recorded_data(
    checkpoint: train.Checkpoint, flag: str, note: Callable[[str], None] = lambda _: None
) -> Data:
    """The data a run recorded, loaded again the same way and checked against its SHA-256."""
    source, config = checkpoint.data, checkpoint.config
    if source is not None and source.kind not in ("shapes", "mnist"):
        try:
            data = load_recorded(source, progress=True)
        except MissingFileError as err:
            raise UsageError(
                f"{flag}: the run's data, {source.describe()}, is missing ({err}); "
                f"pass --data PATH to use other data explicitly"
            ) from None
        except DataChangedError as err:
            raise UsageError(_changed(flag, source, err.found)) from None
        report_left_out(data, note)
    elif config is not None and config.model is not None:
        data = DATA[config.model](config.seed)
    else:
        raise UsageError(f"{flag}: the checkpoint records no data to use; pass --data PATH")
    if source is not None and data.source.sha256 != source.sha256:
        raise UsageError(_changed(flag, source, data.source.sha256))
    return data


def _changed(flag: str, source: DataSource, found: str) -> str:
    return (
        f"{flag}: the run's data, {source.describe()}, has changed since it trained "
        f"(SHA-256 {found[:12]}..., the run recorded {source.sha256[:12]}...); "
        f"pass --data PATH to use data explicitly"
    )


def other_data(checkpoint: train.Checkpoint, path: Path) -> Data:
    """``eval --data PATH``: an image folder is read with the run's size and colour."""
    settings = None if checkpoint.data is None else checkpoint.data.images
    if settings is None or not path.is_dir():
        return load_data(path, progress=True)
    return load_data(path, image_size=settings.size, color=settings.color, progress=True)


def sized_model(config: train.TrainConfig, data: Data) -> Layer:
    """The config's built-in model with one output per class of ``data``."""
    classes = class_count(data)
    if classes < 2:
        raise UsageError(
            f"{data.source.describe()} has one class only (every label is 0); "
            f"a classifier needs two or more"
        )
    try:
        model = config.build_model(classes=classes)
    except InputError as err:
        raise UsageError(
            f"{data.source.describe()} has {classes} classes (labels 0..{classes - 1}), but {err}"
        ) from None
    return model


def check_fits(model: Layer, data: Data, name: str) -> None:
    """Images of the model's input shape and labels it can output, or a usage error."""
    wanted = input_shape_of(model)
    got = data.train[0].shape[1:]
    if wanted is not None and tuple(got) != wanted:
        raise UsageError(
            f"{data.source.describe()} has images of shape {_hwc(got)} (H x W x C), but model "
            f"{name} takes {_hwc(wanted)} images"
        )
    classes = max(2, _outputs(model, data))
    for split, (_, labels) in (("training", data.train), ("test", data.test)):
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise UsageError(
                f"{data.source.describe()}: {split} labels must be in 0..{classes - 1} for "
                f"model {name} ({classes} classes), got values {labels.min()} to {labels.max()}"
            )


def _outputs(model: Layer, data: Data) -> int:
    """How many logits the model returns (computed abstractly)."""
    example = (-1, *data.train[0].shape[1:])
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), example)[1])
    return train.output_classes("eval", model, params, jnp.asarray(data.train[0][:1]))


def _hwc(shape: tuple[int, ...] | np.ndarray) -> str:
    return "x".join(str(size) for size in shape)
