"""A training run's data: the two splits, where they came from and the SHA-256 that pins them.

Every loader here returns :class:`Data` ``(train, test, source)``; a run
records ``source`` (``jaxcnn train`` writes it into the checkpoint and
``history.json``) so that ``jaxcnn eval`` can load the same data again and
refuse data that changed. The kinds of source and what their SHA-256 covers:

* ``"shapes"``: ``make_shapes(seed=...)``: the generated arrays (dtype,
  shape and bytes of each);
* ``"mnist"``: the default MNIST cache, whose four files must be MNIST's
  (pinned hashes): the files' uncompressed IDX bytes;
* ``"idx"``: any folder of the four MNIST-format IDX files (Fashion-MNIST,
  KMNIST, ...): the same digest as ``"mnist"``, so MNIST given as a folder
  has MNIST's digest;
* ``"npz"``: an ``.npz`` with ``train_images``, ``train_labels``,
  ``test_images`` and ``test_labels``: the file's bytes (``sha256sum FILE``).

The files are hashed as they are read (MNIST: about 0.05 s of a 0.8 s load).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxcnn._io import read_bytes
from jaxcnn.data._mnist_spec import MNIST_FILES
from jaxcnn.data.mnist import check_pinned, default_mnist_dir, read_idx_folder
from jaxcnn.data.shapes import make_shapes
from jaxcnn.errors import InputError, InputTypeError, MissingFileError

Split = tuple[np.ndarray, np.ndarray]

SOURCE_KINDS = ("shapes", "mnist", "idx", "npz")
"""Where data can come from (see the module docstring)."""

NPZ_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
"""The arrays an ``.npz`` data set holds (loaded with ``allow_pickle=False``)."""

_WHAT_DATA_IS = (
    "--data takes a folder of the four MNIST-format IDX files (train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or .gz) "
    f"or an .npz file holding {', '.join(NPZ_KEYS)}"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DataSource:
    """Where a run's data came from, and the SHA-256 that identifies it.

    Attributes:
      kind: one of :data:`SOURCE_KINDS`.
      sha256: 64 hex digits (what it covers depends on ``kind``).
      path: the absolute folder or file for ``"mnist"``, ``"idx"`` and
        ``"npz"``; None for generated shapes.
    """

    kind: str
    sha256: str
    path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise InputError(f"DataSource: kind must be one of {SOURCE_KINDS}, got {self.kind!r}")
        if not (isinstance(self.sha256, str) and _SHA256.fullmatch(self.sha256)):
            raise InputError(f"DataSource: sha256 must be 64 hex digits, got {self.sha256!r}")
        if self.path is not None and not isinstance(self.path, str):
            raise InputTypeError(f"DataSource: path must be a str or None, got {self.path!r}")

    def to_dict(self) -> dict[str, Any]:
        """The source as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> DataSource:
        """Inverse of :meth:`to_dict`; anything else is an ``InputError``."""
        if not isinstance(values, Mapping) or set(values) != {"kind", "sha256", "path"}:
            raise InputError(
                f"DataSource: expected a dict with keys ['kind', 'path', 'sha256'], got {values!r}"
            )
        return cls(**values)

    def describe(self) -> str:
        """Where the data came from, in words (``"the IDX folder /data/fashion"``)."""
        return {
            "shapes": "the generated shapes",
            "mnist": f"MNIST ({self.path})",
            "idx": f"the IDX folder {self.path}",
            "npz": f"the file {self.path}",
        }[self.kind]


class Data(NamedTuple):
    """A data set: ``(images [n, H, W, C] float32, labels [n] int32)`` twice, and its source."""

    train: Split
    test: Split
    source: DataSource


def load_data(path: str | os.PathLike[str]) -> Data:
    """Load a data set from a folder of MNIST-format IDX files or from an ``.npz`` file.

    IDX images are bytes and become ``bytes / 255``, ``[n, H, W, 1]``. An
    ``.npz`` holds :data:`NPZ_KEYS`: images ``[n, H, W]`` or ``[n, H, W, C]``,
    either ``uint8`` (then divided by 255) or floating (used as they are,
    finite); labels ``[n]`` integers >= 0. Nothing is unpickled.

    Returns:
      :class:`Data` with images float32 and labels int32; ``source.path`` is
      the absolute path.

    Raises:
      MissingFileError: ``path`` (or one of the IDX files) does not exist.
      InputError: anything else wrong, naming the file and the array.
    """
    where = Path(path).expanduser()
    if where.is_dir():
        folder = read_idx_folder(where, fn="load_data", hint=_WHAT_DATA_IS)
        source = DataSource("idx", idx_digest(folder.digests), str(where.resolve()))
        return Data(folder.train, folder.test, source)
    if not where.exists():
        raise MissingFileError(f"load_data: {where} does not exist; {_WHAT_DATA_IS}")
    return _load_npz(where)


def mnist_data() -> Data:
    """MNIST from the default cache (``jaxcnn data fetch mnist``), checked against its pins."""
    folder = default_mnist_dir()
    loaded = read_idx_folder(folder)  # says how to fetch MNIST when it is missing
    check_pinned(folder, loaded.digests)
    return Data(
        loaded.train, loaded.test, DataSource("mnist", idx_digest(loaded.digests), str(folder))
    )


def shapes_data(seed: int = 0, n_per_class: int = 2000) -> Data:
    """:func:`jaxcnn.data.make_shapes` and the SHA-256 of its arrays."""
    train, test = make_shapes(n_per_class, seed=seed)
    return Data(train, test, DataSource("shapes", arrays_sha256(*train, *test)))


def class_count(data: Data) -> int:
    """The number of classes the labels of both splits use: ``max(label) + 1``."""
    return int(max(data.train[1].max(), data.test[1].max())) + 1


def arrays_sha256(*arrays: np.ndarray) -> str:
    """SHA-256 over each array's dtype, shape and bytes, in order."""
    sha = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        sha.update(f"{array.dtype.str}\0{array.shape}\0".encode())
        sha.update(array.tobytes())
    return sha.hexdigest()


def idx_digest(digests: Mapping[str, str]) -> str:
    """One SHA-256 for the four IDX files: of the lines ``"<name> <its sha256>"``."""
    lines = "".join(f"{name} {digests[name]}\n" for name in MNIST_FILES)
    return hashlib.sha256(lines.encode()).hexdigest()


def _load_npz(path: Path) -> Data:
    raw = read_bytes("load_data", path)
    if not raw.startswith(b"PK"):
        raise InputError(f"load_data: {path} is neither a folder nor an .npz file; {_WHAT_DATA_IS}")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            found = list(npz.files)
            arrays = {name: npz[name] for name in NPZ_KEYS if name in found}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"load_data: {path} is not a readable .npz file: {err}") from None
    missing = [name for name in NPZ_KEYS if name not in arrays]
    if missing:
        raise InputError(f"load_data: {path} has no {missing}; it holds {found}; {_WHAT_DATA_IS}")
    train = _npz_split(path, "train", arrays)
    test = _npz_split(path, "test", arrays)
    if train[0].shape[1:] != test[0].shape[1:]:
        raise InputError(
            f"load_data: {path}: train_images are {train[0].shape[1:]} (H, W, C) but "
            f"test_images are {test[0].shape[1:]}"
        )
    return Data(
        train, test, DataSource("npz", hashlib.sha256(raw).hexdigest(), str(path.resolve()))
    )


def _npz_split(path: Path, split: str, arrays: Mapping[str, np.ndarray]) -> Split:
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    where = f"load_data: {path}: {split}_images"
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[0] == 0:
        raise InputError(f"{where} must be [n, H, W] or [n, H, W, C], n >= 1, got {images.shape}")
    if images.dtype == np.uint8:
        pixels = images.astype(np.float32) / np.float32(255)
    elif images.dtype.kind == "f":
        pixels = images.astype(np.float32)
        if not np.isfinite(pixels).all():
            raise InputError(f"{where} must be finite, got NaN or infinity")
    else:
        raise InputError(f"{where} must be uint8 (0..255) or floating, got {images.dtype}")
    return pixels, _npz_labels(path, split, labels, images.shape[0])


def _npz_labels(path: Path, split: str, labels: np.ndarray, count: int) -> np.ndarray:
    where = f"load_data: {path}: {split}_labels"
    if labels.dtype.kind not in "iu":
        raise InputError(f"{where} must be integer class ids, got dtype {labels.dtype}")
    if labels.shape != (count,):
        raise InputError(
            f"{where} must have shape ({count},), one per image of {split}_images, "
            f"got {labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= 2**31:
        raise InputError(
            f"{where} must be class ids >= 0, got values {labels.min()} to {labels.max()}"
        )
    return labels.astype(np.int32)
