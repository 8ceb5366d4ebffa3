"""Which data a run trains and is evaluated on, and the model sized to it.

``jaxcnn train MODEL`` uses the model's built-in data (:data:`DATA`), or
``--data PATH``: a folder of MNIST-format IDX files or an ``.npz``. The number
of classes comes from the labels and sizes the model's output layer. The run
records the data's :class:`~jaxcnn.data.DataSource` (where from, SHA-256);
``jaxcnn eval`` and ``--resume`` load it again and refuse it when it is
missing or has changed, unless ``--data`` names data explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxcnn import train
from jaxcnn.cli._common import UsageError
from jaxcnn.data import Data, class_count, load_data, mnist_data, shapes_data
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


def training_data(
    config: train.TrainConfig, resumed: train.Checkpoint | None, path: Path | None
) -> Data:
    """The data of ``jaxcnn train``: ``--data``, the resumed run's, or the model's own."""
    if resumed is None:
        return load_data(path) if path is not None else DATA[str(config.model)](config.seed)
    if path is None:
        return recorded_data(resumed, "--resume")
    data = load_data(path)
    if resumed.data is not None and data.source.sha256 != resumed.data.sha256:
        raise UsageError(
            f"--resume: the run trained on {resumed.data.describe()}, but --data {path} is "
            f"other data (SHA-256 {data.source.sha256[:12]}..., the run recorded "
            f"{resumed.data.sha256[:12]}...)"
        )
    return data


def recorded_data(checkpoint: train.Checkpoint, flag: str) -> Data:
    """The data a run recorded, loaded again and checked against its SHA-256."""
    source, config = checkpoint.data, checkpoint.config
    if source is not None and source.kind not in ("shapes", "mnist"):
        try:
            data = load_data(str(source.path))
        except MissingFileError as err:
            raise UsageError(
                f"{flag}: the run's data, {source.describe()}, is missing ({err}); "
                f"pass --data PATH to use other data explicitly"
            ) from None
    elif config is not None and config.model is not None:
        data = DATA[config.model](config.seed)
    else:
        raise UsageError(f"{flag}: the checkpoint records no data to use; pass --data PATH")
    if source is not None and data.source.sha256 != source.sha256:
        raise UsageError(
            f"{flag}: the run's data, {source.describe()}, has changed since it trained "
            f"(SHA-256 {data.source.sha256[:12]}..., the run recorded {source.sha256[:12]}...); "
            f"pass --data PATH to use data explicitly"
        )
    return data


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
