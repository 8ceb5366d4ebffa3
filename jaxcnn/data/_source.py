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
  ``test_images`` and ``test_labels``: the file's bytes (``sha256sum FILE``);
* ``"images"``: a folder of class folders of image files (see
  :mod:`jaxcnn.data._folder`): every image file's path and bytes
  (:func:`~jaxcnn.data._folder.files_sha256`); ``source.images`` records how
  they were read (:class:`ImageSettings`: class names, colour, size, split).

The files are hashed as they are read (MNIST: about 0.05 s of a 0.8 s load).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxcnn._io import read_bytes
from jaxcnn.data._cache import check_sha256, decode_folder
from jaxcnn.data._folder import ImageSettings, list_folder, looks_like_class_folders, split_rows
from jaxcnn.data._image import check_color, check_size
from jaxcnn.data._mnist_spec import MNIST_FILES
from jaxcnn.data.mnist import (
    check_pinned,
    data_root,
    default_mnist_dir,
    find_idx_file,
    read_idx_folder,
)
from jaxcnn.data.shapes import make_shapes
from jaxcnn.errors import InputError, InputTypeError, MissingFileError

Split = tuple[np.ndarray, np.ndarray]

SOURCE_KINDS = ("shapes", "mnist", "idx", "npz", "images")
"""Where data can come from (see the module docstring)."""

NPZ_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
"""The arrays an ``.npz`` data set holds (loaded with ``allow_pickle=False``)."""

_WHAT_DATA_IS = (
    "--data takes a folder of class folders of images (photos/cat/1.jpg, photos/dog/2.png, "
    "or photos/train/cat/... and photos/test/cat/...), a folder of the four MNIST-format IDX "
    "files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    f"t10k-labels-idx1-ubyte, raw or .gz) or an .npz file holding {', '.join(NPZ_KEYS)}"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class DataSource:
    """Where a run's data came from, and the SHA-256 that identifies it.

    Attributes:
      kind: one of :data:`SOURCE_KINDS`.
      sha256: 64 hex digits (what it covers depends on ``kind``).
      path: the absolute folder or file for ``"mnist"``, ``"idx"``,
        ``"npz"`` and ``"images"``; None for generated shapes.
      images: for ``"images"`` only, how the folder was read.
    """

    kind: str
    sha256: str
    path: str | None = None
    images: ImageSettings | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise InputError(f"DataSource: kind must be one of {SOURCE_KINDS}, got {self.kind!r}")
        if not (isinstance(self.sha256, str) and _SHA256.fullmatch(self.sha256)):
            raise InputError(f"DataSource: sha256 must be 64 hex digits, got {self.sha256!r}")
        if self.path is not None and not isinstance(self.path, str):
            raise InputTypeError(f"DataSource: path must be a str or None, got {self.path!r}")
        if (self.kind == "images") != isinstance(self.images, ImageSettings):
            raise InputError(
                f"DataSource: images (ImageSettings) is required for kind 'images' and only "
                f"for it, got kind {self.kind!r} with images={self.images!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The source as a JSON-ready dict (``images`` only for image folders)."""
        values: dict[str, Any] = {"kind": self.kind, "sha256": self.sha256, "path": self.path}
        if self.images is not None:
            values["images"] = self.images.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: Any) -> DataSource:
        """Inverse of :meth:`to_dict`; anything else is an ``InputError``."""
        keys = {"kind", "sha256", "path"}
        if not isinstance(values, Mapping) or set(values) - {"images"} != keys:
            raise InputError(
                f"DataSource: expected a dict with keys ['kind', 'path', 'sha256'] (and "
                f"'images' for an image folder), got {values!r}"
            )
        images = values.get("images")
        settings = None if images is None else ImageSettings.from_dict(images)
        return cls(values["kind"], values["sha256"], values["path"], settings)

    def load_options(self) -> dict[str, Any]:
        """The :func:`load_data` keywords that read this source the same way again."""
        settings = self.images
        if settings is None:
            return {}
        options: dict[str, Any] = {"skip_bad": bool(settings.skipped)}
        if settings.resize:
            options["image_size"] = settings.size
        if settings.convert:
            options["color"] = settings.color
        if settings.test_fraction is not None:
            options |= {"test_fraction": settings.test_fraction, "seed": settings.seed}
        return options

    def describe(self) -> str:
        """Where the data came from, in words (``"the IDX folder /data/fashion"``)."""
        return {
            "shapes": "the generated shapes",
            "mnist": f"MNIST ({self.path})",
            "idx": f"the IDX folder {self.path}",
            "npz": f"the file {self.path}",
            "images": f"the image folder {self.path}",
        }[self.kind]


class Data(NamedTuple):
    """A data set: ``(images [n, H, W, C] float32, labels [n] int32)`` twice, and its source.

    An image folder's images are :class:`~jaxcnn.data.ImageRows` (read from
    the decoded cache on demand); every other kind's are NumPy arrays.
    """

    train: Split
    test: Split
    source: DataSource


def load_data(
    path: str | os.PathLike[str],
    *,
    image_size: tuple[int, int] | None = None,
    color: str | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    skip_bad: bool = False,
    progress: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
) -> Data:
    """Load a data set: a folder of class folders of images, of IDX files, or an ``.npz``.

    **Image folders** (``photos/cat/*.jpg, photos/dog/*.png``, or
    ``photos/train/<class>/...`` and ``photos/test/<class>/...``): PNG, JPEG,
    BMP, GIF and WebP files, decoded by :func:`decode_image` once into a cache
    under ``cache_dir`` (default ``data_root()``, i.e. ``$JAXCNN_DATA``) and
    read from it row by row: the images are an :class:`ImageRows`, not an
    array in memory, so a data set larger than memory loads (and ``fit``
    streams it). Labels are the class folders' indices in sorted order
    (``source.images.classes``). See docs/data.md.

    IDX images are bytes and become ``bytes / 255``, ``[n, H, W, 1]``. An
    ``.npz`` holds :data:`NPZ_KEYS`: images ``[n, H, W]`` or ``[n, H, W, C]``,
    either ``uint8`` (then divided by 255) or floating (used as they are,
    finite); labels ``[n]`` integers >= 0. Nothing is unpickled.

    Args:
      path: the folder or file.
      image_size: image folders: ``(H, W)`` to resize every image to
        (Pillow's bilinear filter); None: the first image's size, which every
        image must have.
      color: image folders: ``"grayscale"`` or ``"rgb"`` to convert every
        image to; None: the first image's mode, which every image must have.
      seed: image folders without ``train/`` and ``test/``: the seed of the
        test split.
      test_fraction: that split's share of each class, in ``(0, 1)``.
      skip_bad: image folders: leave unreadable files out (counted in
        ``source.images.skipped``) instead of raising.
      progress: show progress bars while hashing and decoding.
      cache_dir: where decoded image folders are kept (``<cache_dir>/images``).
      sha256: the SHA-256 the data must have (a run's recorded one): data
        that differs raises :class:`~jaxcnn.errors.DataChangedError`; an
        image folder is refused before anything is decoded.

    Returns:
      :class:`Data` with images float32 and labels int32; ``source.path`` is
      the absolute path.

    Raises:
      MissingFileError: ``path`` (or one of the IDX files) does not exist.
      ImageFileError: an unreadable image file, named (without ``skip_bad``).
      DataChangedError: the data is not the ``sha256`` given.
      InputError: anything else wrong, naming the file and the array.
    """
    data = _load(
        Path(path).expanduser(),
        image_size,
        color,
        seed,
        test_fraction,
        skip_bad,
        progress,
        cache_dir,
        sha256,
    )
    check_sha256(data.source.describe(), data.source.sha256, sha256)
    return data


def _load(
    where: Path,
    image_size: Any,
    color: Any,
    seed: Any,
    test_fraction: Any,
    skip_bad: bool,
    progress: bool,
    cache_dir: Any,
    sha256: str | None,
) -> Data:
    folder_options = {"image_size": image_size, "color": color, "skip_bad": skip_bad}
    idx = where.is_dir() and find_idx_file(where, MNIST_FILES[0]) is not None
    if where.is_dir() and not idx and looks_like_class_folders(where):
        root = Path(cache_dir) if cache_dir is not None else data_root()
        return _load_image_folder(
            where, image_size, color, (seed, test_fraction), (skip_bad, progress, sha256), root
        )
    given = [name for name, value in folder_options.items() if value not in (None, False)]
    if given:
        raise InputError(f"load_data: {given} apply to image folders only, and {where} is not one")
    if where.is_dir():
        folder = read_idx_folder(where, fn="load_data", hint=_WHAT_DATA_IS)
        source = DataSource("idx", idx_digest(folder.digests), str(where.resolve()))
        return Data(folder.train, folder.test, source)
    if not where.exists():
        raise MissingFileError(f"load_data: {where} does not exist; {_WHAT_DATA_IS}")
    return _load_npz(where)


def _load_image_folder(
    where: Path,
    image_size: Any,
    color: Any,
    split: tuple[Any, Any],
    how: tuple[bool, bool, str | None],
    cache_root: Path,
) -> Data:
    """:func:`load_data` of a folder of class folders; ``how = (skip_bad, progress, sha256)``."""
    skip_bad, progress, sha256 = how
    size = check_size("load_data", image_size, "image_size")
    color = check_color("load_data", color)
    seed, fraction = split
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"load_data: seed must be an int >= 0, got {seed!r}")
    if not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise InputError(f"load_data: test_fraction must be in (0, 1), got {fraction!r}")
    listing = list_folder("load_data", where)
    decoded = decode_folder(
        listing,
        cache_root=cache_root,
        color=color,
        size=size,
        skip_bad=skip_bad,
        progress=progress,
        workers=min(8, os.cpu_count() or 1),
        expect_sha256=sha256,
    )
    labels = decoded.labels
    if listing.presplit:
        test = np.arange(len(labels)) >= decoded.n_train
    else:
        test = split_rows(labels, float(fraction), seed)
    for part, rows in (("training", ~test), ("test", test)):
        if not rows.any():
            raise InputError(
                f"load_data: {where} leaves no {part} images"
                + ("" if listing.presplit else f" with test_fraction {fraction}")
            )
    settings = ImageSettings(
        listing.classes,
        decoded.color,
        decoded.size,
        resize=size is not None,
        convert=color is not None,
        test_fraction=None if listing.presplit else float(fraction),
        seed=None if listing.presplit else seed,
        skipped=tuple(name for name, _ in decoded.skipped),
        ignored=len(listing.ignored),
    )
    train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
    return Data(
        (decoded.images[train_rows], labels[train_rows]),
        (decoded.images[test_rows], labels[test_rows]),
        DataSource("images", decoded.sha256, str(listing.root), settings),
    )


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


def load_recorded(source: DataSource, *, seed: int = 0, progress: bool = False) -> Data:
    """The data ``source`` describes, loaded again the same way and checked against its SHA-256.

    Args:
      source: a run's recorded :class:`DataSource`.
      seed: the run's seed (the generated shapes are drawn from it).
      progress: show progress bars while hashing and decoding an image folder.

    Raises:
      MissingFileError: the data is no longer there (MNIST: not fetched).
      DataChangedError: it is, but it has changed since the run recorded it.
    """
    if source.kind == "shapes":
        data = shapes_data(seed)
    elif source.kind == "mnist":
        data = mnist_data()
    else:
        options = source.load_options()
        data = load_data(str(source.path), sha256=source.sha256, progress=progress, **options)
    check_sha256(source.describe(), data.source.sha256, source.sha256)
    return data


def class_names(data: Data) -> tuple[str, ...]:
    """The name of each class: an image folder's class folders, else ``"0"``, ``"1"``, ..."""
    if data.source.images is not None:
        return data.source.images.classes
    return tuple(str(label) for label in range(class_count(data)))


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
