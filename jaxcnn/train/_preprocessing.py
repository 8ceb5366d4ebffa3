"""How a run's images were read: what to do to a new image file before the model sees it.

``jaxcnn predict`` and ``jaxcnn explore`` decode image files the way the run's
training images were decoded, from what its checkpoint recorded.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxcnn.data import shapes
from jaxcnn.errors import InputError
from jaxcnn.layers import input_shape_of
from jaxcnn.train._checkpoint import Checkpoint
from jaxcnn.train._predict import predict


class Preprocessing(NamedTuple):
    """A run's colour mode, image size and class names."""

    color: str  # one of jaxcnn.data.COLOR_MODES
    size: tuple[int, int]  # (H, W)
    classes: tuple[str, ...]  # the name of each class


def preprocessing(checkpoint: Checkpoint, fn: str = "predict") -> Preprocessing:
    """The run's colour, size and class names (recorded for image folders, else derived).

    A run trained on an image folder recorded them (``source.images``). Any
    other run's model records its input shape: ``C == 1`` means grayscale,
    ``(H, W)`` the size. The generated shapes' classes are
    ``("square", "circle")``; other classes are named ``"0"``, ``"1"``, ...

    Raises:
      InputError: the model does not take images ``[H, W, 1 or 3]``.
    """
    source = checkpoint.data
    if source is not None and source.images is not None:
        settings = source.images
        return Preprocessing(settings.color, settings.size, settings.classes)
    shape = input_shape_of(checkpoint.model)
    if shape is None or len(shape) != 3 or shape[2] not in (1, 3):
        raise InputError(
            f"{fn}: the run's model takes inputs of shape {shape}, not images [H, W, 1 or 3]"
        )
    one = np.zeros((1, *shape), np.float32)
    count = predict(checkpoint.model, checkpoint.params, one).shape[1]
    color = "grayscale" if shape[2] == 1 else "rgb"
    names = tuple(str(i) for i in range(count))
    if source is not None and source.kind == "shapes" and count == len(shapes.CLASS_NAMES):
        names = shapes.CLASS_NAMES
    return Preprocessing(color, (shape[0], shape[1]), names)
