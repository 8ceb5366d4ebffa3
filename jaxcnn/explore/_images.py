"""The images the page holds: the article's square and circle, a run's test images, uploads.

Views 1 and 2 work on grey ``[H, W]`` images in ``[0, 1]``; the model views on
images of the run's shape ``[H, W, C]``, decoded as its training images were.
An upload (a file, or a digit drawn on the page's canvas, sent as PNG) is
decoded once, by :func:`jaxcnn.data.decode_image`, in both forms, and kept
under an id derived from its bytes in a small store.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from typing import NamedTuple

import numpy as np

from jaxcnn.data import decode_image
from jaxcnn.data.shapes import demo_shapes
from jaxcnn.errors import InputError
from jaxcnn.train import Preprocessing

BUILTIN_SIZE = (28, 28)
UPLOAD_MAX_PIXELS = 40_000_000
"""Uploads declaring more pixels are refused from their header, before decoding."""
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
"""ITU-R 601-2 luma weights: how an RGB image becomes grey (as Pillow's ``"L"`` mode)."""


def builtin_images() -> dict[str, np.ndarray]:
    """The article's square and circle, ``[28, 28]`` float32 each, by name."""
    square, circle = demo_shapes()
    return {"square": square, "circle": circle}


def to_gray(image: np.ndarray) -> np.ndarray:
    """``[H, W, 1]`` or ``[H, W, 3]`` in ``[0, 1]`` -> ``[H, W]`` float32 (luma for RGB)."""
    pixels = np.asarray(image, np.float32)
    if pixels.shape[-1] == 1:
        return pixels[..., 0]
    return np.asarray(pixels @ LUMA, np.float32)


class Upload(NamedTuple):
    """An uploaded image, decoded for both kinds of view."""

    gray: np.ndarray  # [H, W]: the page's grey size
    model: np.ndarray | None  # [H, W, C]: the run's preprocessing; None without a run


class UploadStore:
    """The last :data:`CAPACITY` uploads by id (thread-safe; oldest dropped first)."""

    CAPACITY = 32

    def __init__(self) -> None:
        self._items: collections.OrderedDict[str, Upload] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, raw: bytes, gray_size: tuple[int, int], run: Preprocessing | None) -> str:
        """Decode ``raw`` (PNG, JPEG, BMP, GIF or WebP) and keep it; returns its id.

        Raises:
          ImageFileError: not a readable image of a supported format, or too large.
        """
        name = "the uploaded image"
        gray = decode_image(
            raw, color="grayscale", size=gray_size, name=name, max_pixels=UPLOAD_MAX_PIXELS
        )[..., 0]
        model = None
        if run is not None:
            model = decode_image(
                raw, color=run.color, size=run.size, name=name, max_pixels=UPLOAD_MAX_PIXELS
            )
        key = "u" + hashlib.sha256(raw).hexdigest()[:16]
        with self._lock:
            self._items[key] = Upload(gray, model)
            self._items.move_to_end(key)
            while len(self._items) > self.CAPACITY:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> Upload:
        """The upload ``key``.

        Raises:
          InputError: no such upload (never made, or dropped as one of the oldest).
        """
        with self._lock:
            upload = self._items.get(key)
        if upload is None:
            raise InputError(
                f"image: no upload with id {key!r} (the page keeps the last {self.CAPACITY}); "
                f"upload the image again"
            )
        return upload
