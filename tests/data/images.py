"""Real image files for the tests: every format jaxcnn decodes, and hostile ones.

The pixels are written with Pillow (the encoder), so a lossless format must
decode to exactly the bytes written: those bytes are the oracle.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SAVE_OPTIONS: dict[str, dict[str, Any]] = {"WEBP": {"lossless": True}, "JPEG": {"quality": 95}}
SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "GIF": ".gif", "WEBP": ".webp"}


def encode(image: Image.Image, fmt: str) -> bytes:
    """``image`` as the bytes of a ``fmt`` file."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **SAVE_OPTIONS.get(fmt, {}))
    return buffer.getvalue()


def write_image(path: Path, image: Image.Image, fmt: str | None = None) -> Path:
    """Save ``image`` to ``path`` (the format from the suffix unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or next(f for f, s in SUFFIX.items() if s == path.suffix)
    path.write_bytes(encode(image, fmt))
    return path


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """``[H, W, 3]`` uint8 noise."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def random_gray(height: int, width: int, seed: int = 0) -> np.ndarray:
    """``[H, W]`` uint8 noise."""
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, *, rows: int | None = None) -> bytes:
    """A valid 8-bit grayscale PNG of zeros that declares ``width x height`` pixels.

    Its IDAT holds ``rows`` rows (all of them by default) of zero bytes,
    compressed in 1 MiB pieces: a 20000 x 20000 bomb is ~0.4 MB on disk and
    400 MB decoded.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    squeeze = zlib.compressobj(9)
    remaining = (width + 1) * (height if rows is None else rows)
    piece = bytes(min(remaining, 2**20))
    parts = []
    while remaining > 0:
        parts.append(squeeze.compress(piece[: min(remaining, len(piece))]))
        remaining -= len(piece)
    parts.append(squeeze.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def gif_bomb(width: int = 65535, height: int = 65535) -> bytes:
    """A 1-pixel GIF whose logical screen declares ``width x height`` (GIF's largest: 4.3 Gpx)."""
    raw = bytearray(encode(Image.new("L", (1, 1)), "GIF"))
    raw[6:10] = struct.pack("<HH", width, height)
    return bytes(raw)
