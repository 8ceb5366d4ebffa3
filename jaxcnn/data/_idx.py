"""The IDX file format of MNIST: a tiny big-endian header, then raw array bytes.

An IDX file is ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then ``prod(sizes)`` items of that dtype, big-endian, row-major.
MNIST images are ``0x00000803`` (unsigned bytes, 3-D ``[n, rows, cols]``) and
labels ``0x00000801`` (unsigned bytes, 1-D ``[n]``). Files may be gzipped; a
gzip stream is recognised by its magic bytes, whatever the file is called.

Reading is strict: the payload must be exactly as long as the header says, so
a truncated download or trailing bytes are errors that name the file. No pickle.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from pathlib import Path

import numpy as np

from jaxcnn._io import read_bytes, write_bytes
from jaxcnn.errors import InputError, InputTypeError

# IDX dtype code -> big-endian NumPy dtype (from the format's definition).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND: dict[tuple[str, int], int] = {
    (dtype.kind, dtype.itemsize): code for code, dtype in IDX_DTYPES.items()
}
_GZIP_MAGIC = b"\x1f\x8b"
# A cap on decompressed size: far above any MNIST-like set, far below "fill the disk".
_MAX_IDX_BYTES = 4 * 1024**3


def idx_magic(dtype_code: int, ndim: int) -> int:
    """The 32-bit magic number of an IDX file, e.g. ``0x00000803``."""
    return (dtype_code << 8) | ndim


def read_file_bytes(file: str | os.PathLike[str]) -> bytes:
    """The bytes of ``file``, gunzipped if they start with the gzip magic.

    Raises:
        MissingFileError: the file does not exist.
        ValueError: the gzip stream is corrupt or truncated (message names the file).
    """
    return gunzip_if_gzip(read_bytes("read_idx", file), str(file))


def gunzip_if_gzip(data: bytes, name: str) -> bytes:
    """``data`` decompressed if it is a gzip stream, else ``data`` itself.

    Inflates the IDX header first, then at most the size it declares plus one
    byte (enough to see trailing bytes), so a gzip bomb costs no more memory
    than the array its header promises (and never more than 4 GiB).

    Raises:
        ValueError: a corrupt or truncated gzip stream, or one that inflates past
            4 GiB (message names ``name``).
    """
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            raw = stream.read(4)
            if len(raw) == 4 and raw[:2] == b"\0\0":
                raw += stream.read(4 * raw[3])
            declared = _declared_file_size(raw)
            limit = _MAX_IDX_BYTES if declared is None else min(declared, _MAX_IDX_BYTES)
            raw += _read_at_most(stream, limit + 1 - len(raw))
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"read_idx: {name} is not a valid gzip file ({err})") from None
    if len(raw) > _MAX_IDX_BYTES:
        raise InputError(f"read_idx: {name} decompresses to more than {_MAX_IDX_BYTES} bytes")
    return raw


def _read_at_most(stream: gzip.GzipFile, size: int, chunk: int = 2**20) -> bytes:
    """Up to ``size`` bytes of ``stream``, read in chunks (``read(n)`` allocates ``n`` at once)."""
    parts = bytearray()
    while len(parts) < size:
        part = stream.read(min(chunk, size - len(parts)))
        if not part:
            break
        parts += part
    return bytes(parts)


def _declared_file_size(head: bytes) -> int | None:
    """Header plus payload bytes an IDX header declares; None if ``head`` is no full header."""
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_DTYPES:
        return None
    header_size = 4 + 4 * head[3]
    if len(head) < header_size:
        return None
    shape = (int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(head[3]))
    return header_size + math.prod(shape) * IDX_DTYPES[head[2]].itemsize


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file into a native-endian array.

    Args:
        data: the whole (uncompressed) file.
        name: how to call the file in error messages.

    Returns:
        A writable array of the header's dtype and shape, e.g. ``uint8 [n, 28, 28]``.

    Raises:
        ValueError: bad magic, unknown dtype code, truncated header, or a payload
            shorter or longer than the header says. The message names ``name``.
    """
    if len(data) < 4:
        raise InputError(
            f"read_idx: {name}: truncated header, expected at least 4 bytes, got {len(data)}"
        )
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0:
        raise InputError(
            f"read_idx: {name}: not an IDX file, magic number "
            f"0x{int.from_bytes(data[:4], 'big'):08X} does not start with two zero bytes"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise InputError(f"read_idx: {name}: unknown IDX dtype code 0x{code:02X}, expected {known}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise InputError(
            f"read_idx: {name}: truncated header, {ndim}-D needs {header_size} bytes, "
            f"got {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    given = len(data) - header_size
    if given != expected:
        problem = "truncated payload" if given < expected else "trailing bytes after payload"
        raise InputError(
            f"read_idx: {name}: {problem}, shape {shape} of {dtype.name} needs "
            f"{expected} bytes after the header, got {given}"
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_size)
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


def read_idx(file: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzipped) into a NumPy array.

    Args:
        file: path of the file, e.g. ``.../train-images-idx3-ubyte.gz``.

    Returns:
        The array with the header's shape and dtype, native byte order; MNIST's
        image file gives ``uint8 [60000, 28, 28]``, its label file ``uint8 [60000]``.

    Raises:
        MissingFileError: ``file`` does not exist.
        ValueError: the file is not a well-formed IDX file (message names it).
    """
    return parse_idx(read_file_bytes(file), str(file))


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as the bytes of an IDX file (header + big-endian payload).

    Args:
        array: any shape (at most 255 dims, each < 2**32) of uint8, int8,
            int16, int32, float32 or float64.
    """
    array = np.asarray(array)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise InputTypeError(
            f"write_idx: array dtype must be one of uint8, int8, int16, int32, float32, "
            f"float64, got {array.dtype}"
        )
    if array.ndim > 255 or any(size >= 2**32 for size in array.shape):
        raise InputError(f"write_idx: array shape {array.shape} does not fit an IDX header")
    header = bytes([0, 0, code, array.ndim])
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(file: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``file`` ends in ``.gz``.

    The write is atomic (temporary file + ``os.replace``). ``read_idx`` reads
    the result back exactly.

    Returns:
        The path written.
    """
    data = idx_bytes(array)
    if str(file).endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return write_bytes(file, data)
