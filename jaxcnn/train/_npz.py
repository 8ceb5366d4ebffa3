"""The checkpoint's ``.npz`` reader: bounded memory, refusing from the zip directory first.

An ``.npz`` is a zip of ``.npy`` members. A hostile one can declare a
central directory of millions of entries, hold a member that inflates to
gigabytes, lie about sizes, or carry members that are not ``.npy`` at all.
This reader looks before it reads:

1. the end-of-central-directory record (the file's last 22 bytes; no archive
   comment) bounds the number of members and the directory's size before
   :mod:`zipfile` parses the directory;
2. the directory's names, count, compression and declared uncompressed
   sizes are checked (:func:`open_archive`), before anything is decompressed;
3. each member is read against what the caller expects (:func:`read_array`):
   its declared size must fit the expected array, its ``.npy`` header must
   name the expected dtype and shape, and exactly that many bytes are read
   (the zip's CRC is checked on the way). Nothing is ever unpickled.

Every problem raises :class:`ArchiveError` (a ``ValueError``) saying what is
wrong; callers add the file name.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from jaxcnn.errors import JaxcnnError

ZIP_MAGIC = b"PK\x03\x04"
NPY_SUFFIX = ".npy"
MAX_MEMBERS = 4096
"""More members than any checkpoint of a model that fits in memory."""
MAX_DIRECTORY_BYTES = 4 * 1024**2
"""The central directory of ``MAX_MEMBERS`` entries with names up to ~1 KB."""
MAX_NPY_HEADER = 4096
"""Bytes allowed for an ``.npy`` member's magic and header (NumPy writes 128)."""

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_UNSUPPORTED_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, compressed patch data, strong encryption
_UNREADABLE = "not a readable jaxcnn checkpoint (truncated or corrupted?)"
# What zipfile, zlib and numpy's header parser raise on malformed bytes.
_MALFORMED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error)


class ArchiveError(JaxcnnError, ValueError):
    """A malformed, hostile or unexpected ``.npz`` archive (the message says what)."""


class ArrayMismatchError(ArchiveError):
    """A well-formed member whose ``.npy`` header has another dtype or shape than expected."""


class Archive:
    """An open, directory-checked ``.npz``: ``members`` maps entry names (no ``.npy``) to infos."""

    def __init__(self, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> None:
        self.zip = archive
        self.members = members


@contextmanager
def open_archive(path: Path) -> Iterator[Archive]:
    """Open ``path`` as an ``.npz`` after checking its directory (nothing is decompressed).

    Raises:
      ArchiveError: not a zip, a zip comment or trailing bytes, too many
        members or too large a directory, a name that is not ``NAME.npy`` or
        appears twice, encryption, or a compression other than stored/deflate.
    """
    try:
        with open(path, "rb") as handle:
            _check_end_record(handle)
        archive = zipfile.ZipFile(path)
    except ArchiveError:
        raise
    except _MALFORMED as err:
        raise ArchiveError(f"{_UNREADABLE}: {err}") from None
    with archive:
        yield Archive(archive, _members(archive.infolist()))


def _check_end_record(handle: IO[bytes]) -> None:
    """Bound the member count and directory size from the end records alone."""
    if handle.read(4) != ZIP_MAGIC:
        raise ArchiveError("not an .npz file (no zip signature)")
    size = handle.seek(0, 2)
    if size < _END.size + len(ZIP_MAGIC):
        raise ArchiveError(f"{_UNREADABLE}: {size} bytes")
    handle.seek(size - _END.size)
    signature, *_, count, directory, _, comment = _END.unpack(handle.read(_END.size))
    if signature != _END_SIGNATURE or comment:
        raise ArchiveError(f"{_UNREADABLE}: it does not end with a zip end-of-directory record")
    if size >= _END.size + _ZIP64_LOCATOR.size:  # zipfile trusts a ZIP64 record if one is there
        handle.seek(size - _END.size - _ZIP64_LOCATOR.size)
        locator, _, offset, _ = _ZIP64_LOCATOR.unpack(handle.read(_ZIP64_LOCATOR.size))
        if locator == _ZIP64_LOCATOR_SIGNATURE:
            handle.seek(offset)
            record = handle.read(_ZIP64_END.size)
            if len(record) == _ZIP64_END.size:
                fields = _ZIP64_END.unpack(record)
                count, directory = max(count, fields[6]), max(directory, fields[7])
    if count > MAX_MEMBERS or directory > MAX_DIRECTORY_BYTES:
        raise ArchiveError(
            f"its zip directory declares {count} members in {directory} bytes; at most "
            f"{MAX_MEMBERS} members in {MAX_DIRECTORY_BYTES} bytes are read"
        )


def _members(infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    if len(infos) > MAX_MEMBERS:
        raise ArchiveError(f"{len(infos)} members; at most {MAX_MEMBERS} are read")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if not name.endswith(NPY_SUFFIX) or len(name) == len(NPY_SUFFIX):
            raise ArchiveError(f"member {name!r} is not an .npy array")
        if info.flag_bits & _UNSUPPORTED_FLAGS:
            raise ArchiveError(f"member {name!r} is encrypted or patched (zip flags)")
        if info.compress_type not in _COMPRESSIONS:
            raise ArchiveError(
                f"member {name!r} uses zip compression method {info.compress_type}; "
                f"only stored (0) and deflate (8) are read"
            )
        key = name[: -len(NPY_SUFFIX)]
        if key in members:
            raise ArchiveError(f"member {name!r} appears twice")
        members[key] = info
    return members


def read_array(
    archive: Archive,
    name: str,
    dtype: np.dtype,
    shape: tuple[int, ...] | None,
    *,
    max_bytes: int = 0,
) -> np.ndarray:
    """Read member ``name`` as an array of exactly ``dtype`` and ``shape``.

    With ``shape=None`` the member must be 1-D with at most ``max_bytes``
    bytes of data. The member's declared size is checked first, then its
    ``.npy`` header, then exactly the array's bytes are read.

    Raises:
      ArchiveError: a larger declared size, another dtype or shape, a
        truncated or oversized payload, a bad CRC.
    """
    info = archive.members[name]
    limit = (max_bytes if shape is None else _nbytes(dtype, shape)) + MAX_NPY_HEADER
    if info.file_size > limit:
        raise ArchiveError(
            f"member {info.filename!r} declares {info.file_size} bytes, "
            f"more than the {limit} its array can need"
        )
    try:
        with archive.zip.open(info) as member:
            return _read_npy(member, info.filename, dtype, shape, max_bytes)
    except ArchiveError:
        raise
    except _MALFORMED as err:
        raise ArchiveError(f"{_UNREADABLE}: member {info.filename!r}: {err}") from None


def _read_npy(
    member: IO[bytes], label: str, dtype: np.dtype, shape: tuple[int, ...] | None, max_bytes: int
) -> np.ndarray:
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
        raise ArchiveError(f"member {label!r} has .npy format version {version}")
    reader = np.lib.format.read_array_header_1_0
    if version != (1, 0):
        reader = np.lib.format.read_array_header_2_0
    found, fortran, found_dtype = reader(member, max_header_size=MAX_NPY_HEADER)
    if any(size < 0 for size in found):
        raise ArchiveError(f"member {label!r} has a negative size in its shape {found}")
    wanted = shape if shape is not None else found
    if found_dtype != dtype or found != wanted or (shape is None and len(found) != 1):
        raise ArrayMismatchError(
            f"{label[: -len(NPY_SUFFIX)]} has shape {found} dtype {found_dtype}, "
            f"expected shape {'(n,)' if shape is None else shape} dtype {dtype}"
        )
    size = _nbytes(dtype, found)
    if shape is None and size > max_bytes:
        raise ArchiveError(f"member {label!r} holds {size} bytes, more than {max_bytes}")
    data = member.read(size)
    if len(data) != size or member.read(1):
        raise ArchiveError(f"member {label!r} does not hold exactly the {size} bytes of {found}")
    return np.frombuffer(data, dtype).reshape(found, order="F" if fortran else "C")


def _nbytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count * dtype.itemsize
