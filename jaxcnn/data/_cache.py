"""Decode a class-folder data set once, into an on-disk cache read row by row.

A folder of image files is decoded the first time it is loaded (with a
progress bar, on a few threads: Pillow decodes without holding the GIL)
into ``<cache>/images/<key>/``: ``pixels.u8``, the raw ``uint8 [N, H, W, C]``
bytes (``numpy.memmap(path, np.uint8, "r", shape=...)`` maps it), and
``meta.json`` (shape, files, labels, skipped files). ``<key>`` is a SHA-256
of the files' SHA-256 and the decoding settings, so a changed file, another
``image_size`` or ``color`` is another cache entry; the entry is written into
a temporary folder and renamed into place, so a killed decode leaves no half
entry. Later loads hash the files again (to find the entry and pin the data)
but decode nothing.

:class:`ImageRows` is the data set's images as an array-like
``[N, H, W, C]`` float32 (``byte / 255``) that reads the rows it is indexed
with, with positional reads (``os.pread``), not a memory map: neither
decoding nor reading makes the process's memory grow with the data set
(``jaxcnn.train.fit`` streams such arrays, see docs/data.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from jaxcnn._io import write_json
from jaxcnn.data._folder import FolderListing, files_sha256
from jaxcnn.data._image import as_unit_floats, decode_bytes, stored_size
from jaxcnn.errors import DataChangedError, ImageFileError, InputError, StorageError

CACHE_VERSION = 1
"""Bumped when the decoding changes, so old cache entries are never reused."""
PIXELS = "pixels.u8"
META = "meta.json"
_HASH_BLOCK = 1 << 20
THREADED_DECODE_PIXELS = 128 * 128
"""Source images with fewer pixels decode on the calling thread: Pillow holds the GIL
for most of a small image's work, so threads only add contention (2-core Xeon, 4,000
64x64 JPEGs: 0.71 s on one thread, 1.15 s on two; 400 256x256: 0.30 s, 0.18 s)."""
SKIP_HINT = " (skip_bad=True, --skip-bad-images, leaves unreadable files out)"


class ImageRows:
    """Images ``[N, H, W, C]`` float32 in ``[0, 1]``, read on demand from a cache file.

    Indexing with an int reads that image (``[H, W, C]``); with a slice, an
    integer array or a boolean mask it returns another :class:`ImageRows`
    over those rows without reading anything; ``numpy.asarray(rows)`` reads
    them all. Values are ``float32(byte) / 255``, as
    :func:`~jaxcnn.data.decode_image` returns them.
    """

    dtype = np.dtype(np.float32)
    always_finite = True  # bytes / 255: fit need not scan it for NaN

    def __init__(self, path: Path, shape: Sequence[int], rows: np.ndarray | None = None) -> None:
        self.path = Path(path)
        self.stored = tuple(int(size) for size in shape)  # [N, H, W, C] of the whole file
        self.rows = np.arange(self.stored[0], dtype=np.int64) if rows is None else rows

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.stored[1:])

    @property
    def ndim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"ImageRows({str(self.path)!r}, shape={self.shape})"

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer):
            return self.read(self.rows[np.asarray([key])])[0]
        if isinstance(key, tuple):
            return np.asarray(self)[key]
        return ImageRows(self.path, self.stored, self.rows[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self.read(self.rows)
        return values if dtype is None else values.astype(dtype)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """``[len(rows), H, W, C]`` float32 of the file's ``rows`` (any order, repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        unique, inverse = np.unique(rows, return_inverse=True)
        size = int(np.prod(self.stored[1:]))
        out = np.empty((len(unique), size), np.uint8)
        with _reading(self.path) as descriptor:
            for start, stop in _runs(unique):
                data = os.pread(descriptor, (stop - start) * size, int(unique[start]) * size)
                if len(data) != (stop - start) * size:
                    raise StorageError(f"{self.path}: the image cache is truncated")
                out[start:stop] = np.frombuffer(data, np.uint8).reshape(stop - start, size)
        return as_unit_floats(out[inverse].reshape(len(rows), *self.stored[1:]))


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[int]:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise StorageError(f"cannot read the image cache {path}: {err.strerror}") from None
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def _runs(sorted_rows: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` positions of the runs of consecutive row numbers."""
    breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    edges = [0, *breaks.tolist(), len(sorted_rows)]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1) if edges[i] < edges[i + 1]]


@dataclass(frozen=True)
class Decoded:
    """A decoded folder: its cache entry, what was kept and what was skipped.

    Attributes:
      images: all kept images, in the listing's order.
      labels: ``[N]`` int32.
      files: the kept files (relative paths).
      n_train: how many of them are training files (pre-split folders).
      skipped: ``(file, cause)`` of each unreadable file left out.
      sha256: the SHA-256 over every image file of the listing.
      color: the colour mode of the images; size: their ``(H, W)``.
    """

    images: ImageRows
    labels: np.ndarray
    files: tuple[str, ...]
    n_train: int
    skipped: tuple[tuple[str, str], ...]
    sha256: str
    color: str
    size: tuple[int, int]


def hash_files(listing: FolderListing, *, progress: bool = False, workers: int = 4) -> str:
    """The SHA-256 over ``listing``'s files (see :func:`files_sha256`), reading each once."""
    paths = [listing.root / name for name in listing.files]
    with ThreadPoolExecutor(workers) as pool:
        digests = list(
            tqdm(
                pool.map(_file_sha256, paths),
                total=len(paths),
                desc="hashing",
                unit="file",
                disable=not progress or None,
                leave=False,
            )
        )
    return files_sha256(listing.files, digests)


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_HASH_BLOCK):
                sha.update(block)
    except OSError as err:
        sha.update(f"unreadable: {err.strerror}".encode())  # decoding names it, or skips it
    return sha.hexdigest()


def decode_folder(
    listing: FolderListing,
    *,
    cache_root: Path,
    color: str | None,
    size: tuple[int, int] | None,
    skip_bad: bool,
    progress: bool = False,
    workers: int = 4,
    expect_sha256: str | None = None,
) -> Decoded:
    """Decode every file of ``listing`` into a cache entry under ``cache_root`` (once).

    Args:
      color: ``"grayscale"``, ``"rgb"``, or None: the first readable image's.
      size: ``(H, W)`` to resize every image to, or None: the first
        image's, and every other image must have it.
      skip_bad: leave unreadable files out (:attr:`Decoded.skipped`)
        instead of raising.
      expect_sha256: the SHA-256 the files must have (checked before
        anything is decoded), or None.

    Raises:
      ImageFileError: an unreadable file (without ``skip_bad``), naming it.
      InputError: an image of another size or colour than the first (without
        ``size`` / ``color``), naming both files.
      DataChangedError: the files' SHA-256 is not ``expect_sha256``.
    """
    sha256 = hash_files(listing, progress=progress, workers=workers)
    check_sha256(f"the image folder {listing.root}", sha256, expect_sha256)
    first = _first_image(listing, color, size, skip_bad)
    mode = color or ("grayscale" if first.shape[2] == 1 else "rgb")
    resolved = size or (int(first.shape[0]), int(first.shape[1]))
    settings = [CACHE_VERSION, sha256, color, size, mode, list(resolved)]
    key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:40]
    entry = cache_root / "images" / key
    meta = _read_meta(entry)
    if meta is None:
        shape = (len(listing.files), *resolved, 1 if mode == "grayscale" else 3)
        meta = _write_entry(entry, listing, shape, (color, size, skip_bad), progress, workers)
    skipped = tuple((name, cause) for name, cause in meta["skipped"])
    if skipped and not skip_bad:
        _, cause = skipped[0]
        raise ImageFileError(f"{cause}{SKIP_HINT}")
    return Decoded(
        ImageRows(entry / PIXELS, meta["shape"]),
        np.asarray(meta["labels"], dtype=np.int32),
        tuple(meta["files"]),
        int(meta["n_train"]),
        skipped,
        sha256,
        mode,
        resolved,
    )


def check_sha256(what: str, found: str, expected: str | None) -> None:
    """Raise :class:`DataChangedError` when ``expected`` is given and is not ``found``."""
    if expected is not None and found != expected:
        raise DataChangedError(
            f"{what} has changed since the run recorded it (SHA-256 {found[:12]}..., "
            f"recorded {expected[:12]}...)",
            found,
            expected,
        )


def _first_image(
    listing: FolderListing, color: str | None, size: tuple[int, int] | None, skip_bad: bool
) -> np.ndarray:
    """The first readable image, decoded with the settings given (to resolve the others)."""
    for name in listing.files:
        try:
            return _decode_one(listing.root, name, color, size)
        except ImageFileError as err:
            if not skip_bad:
                raise ImageFileError(f"{err}{SKIP_HINT}") from None
    raise InputError(f"load_data: {listing.root} holds no readable image file")


def _decode_one(
    root: Path, name: str, color: str | None, size: tuple[int, int] | None
) -> np.ndarray:
    path = root / name
    return decode_bytes(path, color, size, str(path), named=path)


def _read_meta(entry: Path) -> dict[str, Any] | None:
    """The entry's metadata if it is complete and consistent, else None (decode again)."""
    try:
        meta = json.loads((entry / META).read_text("utf-8"))
        shape = [int(size) for size in meta["shape"]]
        if (entry / PIXELS).stat().st_size != int(np.prod(shape)) or meta["version"] != (
            CACHE_VERSION
        ):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(meta)


def _write_entry(
    entry: Path,
    listing: FolderListing,
    shape: tuple[int, ...],
    settings: tuple[str | None, tuple[int, int] | None, bool],
    progress: bool,
    workers: int,
) -> dict[str, Any]:
    """Decode into ``entry.<pid>.tmp``, then rename it to ``entry``; returns its metadata."""
    temporary = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        temporary.mkdir(parents=True)
        kept, skipped = _decode_into(
            temporary / PIXELS, listing, shape, settings, progress, workers
        )
    except OSError as err:
        shutil.rmtree(temporary, ignore_errors=True)
        raise StorageError(f"cannot write the image cache {temporary}: {err}") from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    meta = {
        "version": CACHE_VERSION,
        "shape": [len(kept), *shape[1:]],
        "files": [listing.files[i] for i in kept],
        "labels": [int(listing.labels[i]) for i in kept],
        "n_train": sum(1 for i in kept if i < listing.n_train),
        "skipped": skipped,
    }
    write_json(temporary / META, meta)
    with contextlib.suppress(OSError):  # another process wrote the same entry meanwhile
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(temporary, entry)
    shutil.rmtree(temporary, ignore_errors=True)
    return meta


def _decode_into(
    target: Path,
    listing: FolderListing,
    shape: tuple[int, ...],
    settings: tuple[str | None, tuple[int, int] | None, bool],
    progress: bool,
    workers: int,
) -> tuple[list[int], list[list[str]]]:
    """Decode every file in order, appending its bytes to ``target``; (kept, skipped).

    ``settings`` are ``(color, size, skip_bad)`` as requested: None decodes a
    file as it is, and it must then match ``shape`` (the first image's).
    """
    color, size, skip_bad = settings
    first = listing.files[0]
    kept: list[int] = []
    skipped: list[list[str]] = []

    def decode(index: int) -> np.ndarray | ImageFileError:
        try:
            return _decode_one(listing.root, listing.files[index], color, size)
        except ImageFileError as err:
            return err

    bar = tqdm(
        total=len(listing.files),
        desc=f"decoding {listing.root.name}",
        unit="image",
        disable=not progress or None,
    )
    threads = workers if _source_pixels(listing.root / first) >= THREADED_DECODE_PIXELS else 1
    window = 8 * threads  # files in flight: memory bounded by a few images per thread
    with bar, open(target, "wb") as out, ThreadPoolExecutor(threads) as pool:
        mapped = pool.map if threads > 1 else map
        for start in range(0, len(listing.files), window):
            indices = range(start, min(start + window, len(listing.files)))
            for index, pixels in zip(indices, mapped(decode, indices), strict=True):
                bar.update()
                if isinstance(pixels, ImageFileError):
                    if not skip_bad:
                        raise ImageFileError(f"{pixels}{SKIP_HINT}")
                    skipped.append([listing.files[index], str(pixels)])
                    continue
                _check_like_first(listing, index, pixels, shape, first)
                out.write(pixels.tobytes())
                kept.append(index)
    return kept, skipped


def _source_pixels(path: Path) -> int:
    """The pixels of ``path`` as stored (its header only); a large count if unreadable
    (decoding names it, or skips it)."""
    try:
        width, height = stored_size(path)
    except ImageFileError:
        return THREADED_DECODE_PIXELS
    return width * height


def _check_like_first(
    listing: FolderListing, index: int, pixels: np.ndarray, shape: tuple[int, ...], first: str
) -> None:
    """Without ``image_size`` / ``color``, every image must be like the first one."""
    if pixels.shape == tuple(shape[1:]):
        return
    path = listing.root / listing.files[index]
    (height, width, channels), (want_h, want_w, want_c) = pixels.shape, shape[1:]
    if (height, width) != (want_h, want_w):
        raise InputError(
            f"load_data: {path} is {height}x{width} (H x W) but the first image, {first}, is "
            f"{want_h}x{want_w}; pass image_size=(H, W) (--image-size H W) to resize them all"
        )
    modes = {1: "grayscale", 3: "rgb"}
    raise InputError(
        f"load_data: {path} is {modes[channels]} but the first image, {first}, is "
        f"{modes[want_c]}; pass color='grayscale' or 'rgb' (--color) to convert them all"
    )
