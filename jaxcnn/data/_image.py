"""One image file to pixels: :func:`decode_image`, the only place jaxcnn decodes an image.

Decoding is Pillow's, restricted to five formats (:data:`IMAGE_FORMATS`):
PNG, JPEG, BMP, GIF (its first frame) and WebP. Every other plugin Pillow has
(EPS, which runs Ghostscript; TIFF; ...) is never tried. What one call does,
in order:

1. **Open** the file and read its header only (Pillow is lazy). The content
   decides the format, never the name: content of no supported format is
   refused, and so is a file whose name ends in another supported format's
   extension (``photo.jpg`` holding a PNG): see :data:`IMAGE_SUFFIXES`.
2. **Refuse a decompression bomb before decoding**: the header's declared
   ``width * height`` must be at most ``max_pixels`` (:data:`MAX_PIXELS`
   unless given). A few KB of PNG can declare gigapixels; nothing of them is
   decoded, so memory stays bounded by the file, not by what it declares.
3. **Decode** the first frame. Truncated or corrupt data is refused (Pillow's
   ``LOAD_TRUNCATED_IMAGES`` is never turned on).
4. **Colour**: ``"grayscale"`` is one channel, Pillow's ``"L"`` conversion of
   colour (ITU-R 601-2 luma: ``L = (299 R + 587 G + 114 B) / 1000``);
   ``"rgb"`` is three, a grayscale file repeated in each channel. With
   ``color=None`` a grayscale file (Pillow modes ``1``, ``L``, ``LA``, ``I``,
   ``I;16``, or a palette whose every entry is gray) stays grayscale and every
   other (RGB, RGBA, a colour palette, CMYK) becomes rgb. Transparency
   (RGBA, LA, a palette's transparent entry) is composited onto **white**
   (:data:`BACKGROUND`), as an image viewer shows it, before the conversion.
   16-bit grayscale is scaled to 8 bits (``round(v / 257)``).
5. **Resize** to ``size = (H, W)`` with Pillow's bilinear filter, which
   widens its support when shrinking (so it antialiases), after the colour
   conversion, on the 8-bit image.
6. **Scale**: ``float32(byte) / 255``, so values are in ``[0, 1]`` exactly as
   ``jaxcnn.data.load_data`` scales ``uint8`` arrays.

Every failure is an :class:`~jaxcnn.errors.ImageFileError` naming the file
and the cause; Pillow's own exceptions and its ``DecompressionBombWarning``
never reach the caller.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from jaxcnn.errors import ImageFileError, InputError, InputTypeError

COLOR_MODES = ("grayscale", "rgb")
"""The colour modes of decoded images: 1 channel or 3."""

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
"""The formats jaxcnn decodes (Pillow's names)."""

IMAGE_SUFFIXES: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".bmp": "BMP",
    ".dib": "BMP",
    ".gif": "GIF",
    ".webp": "WEBP",
}
"""File name extensions (lower case) of image files, and the format each promises."""

MAX_PIXELS = 2**26
"""Default bound on a file's declared ``width * height`` (67,108,864: an 8192 x 8192 image).

Decoded as 8-bit RGB that is 192 MiB; the float32 result (only at the size
asked for) is never larger than ``size`` allows.
"""

BACKGROUND = (255, 255, 255)
"""The colour transparent pixels are composited onto (white)."""

_OPEN_LOCK = threading.Lock()
_GRAYSCALE_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def decode_image(
    source: bytes | bytearray | str | os.PathLike[str],
    *,
    color: str | None = None,
    size: tuple[int, int] | None = None,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Decode one PNG, JPEG, BMP, GIF or WebP file into pixels (see the module docstring).

    Args:
      source: the file's contents (``bytes``) or its path.
      color: ``"grayscale"`` (1 channel), ``"rgb"`` (3), or None: grayscale
        files stay grayscale, all others become rgb.
      size: ``(H, W)`` to resize to (bilinear), or None for the file's size.
      name: what to call the file in errors (default: its path, or
        ``"the image"`` for bytes).
      max_pixels: the largest declared ``width * height`` decoded.

    Returns:
      pixels: ``[H, W, C]`` float32 in ``[0, 1]``, ``C`` 1 or 3.

    Raises:
      ImageFileError: the file is missing or unreadable, not an image of a
        supported format, named with another format's extension, larger than
        ``max_pixels``, truncated or corrupt.
      InputError: a bad ``color``, ``size`` or ``max_pixels``.
    """
    _check_options(color, size, max_pixels)
    label = name if name is not None else _default_name(source)
    named = None if isinstance(source, bytes | bytearray | memoryview) else source
    return as_unit_floats(decode_bytes(source, color, size, label, max_pixels, named))


def as_unit_floats(values: np.ndarray) -> np.ndarray:
    """uint8 bytes -> float32 ``byte / 255`` (how every jaxcnn loader scales bytes)."""
    return values.astype(np.float32) / np.float32(255)


def decode_bytes(
    source: bytes | bytearray | str | os.PathLike[str],
    color: str | None,
    size: tuple[int, int] | None,
    label: str,
    max_pixels: int = MAX_PIXELS,
    named: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """:func:`decode_image` before scaling: ``[H, W, C]`` uint8 (options already checked).

    ``named`` is the path whose extension must match the content (None: no check).
    """
    with _opened(source, label) as image:
        _check_format(image, named, label)
        _check_pixels(image, label, max_pixels)
        _load(image, label)
        return _bytes(_converted(image, color), size)


def stored_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` as ``path``'s header declares them; nothing is decoded.

    Raises:
      ImageFileError: the file cannot be read or is not an image jaxcnn reads.
    """
    with _opened(path, str(path)) as image:
        width, height = image.size
        return int(width), int(height)


def check_color(fn: str, color: Any) -> str | None:
    """Require one of :data:`COLOR_MODES` or None."""
    if color is not None and color not in COLOR_MODES:
        raise InputError(f"{fn}: color must be one of {COLOR_MODES} or None, got {color!r}")
    return color


def check_size(fn: str, size: Any, name: str = "size") -> tuple[int, int] | None:
    """Require ``(H, W)``, two ints > 0, or None; returns a tuple of ints."""
    if size is None:
        return None
    if not (
        isinstance(size, tuple | list)
        and len(size) == 2
        and all(isinstance(n, int | np.integer) and not isinstance(n, bool) and n > 0 for n in size)
    ):
        raise InputError(f"{fn}: {name} must be (H, W), two ints > 0, or None, got {size!r}")
    return int(size[0]), int(size[1])


def _check_options(color: Any, size: Any, max_pixels: Any) -> None:
    check_color("decode_image", color)
    check_size("decode_image", size)
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1:
        raise InputError(f"decode_image: max_pixels must be an int >= 1, got {max_pixels!r}")


def _default_name(source: Any) -> str:
    return "the image" if isinstance(source, bytes | bytearray | memoryview) else str(source)


@contextmanager
def _opened(source: Any, label: str) -> Iterator[Image.Image]:
    """The file opened by Pillow (header read, nothing decoded), closed afterwards."""
    if isinstance(source, bytes | bytearray | memoryview):
        stream: Any = io.BytesIO(bytes(source))
    elif isinstance(source, str | os.PathLike):
        try:
            stream = open(source, "rb")  # noqa: SIM115 (closed below, with the image)
        except FileNotFoundError:
            raise ImageFileError(f"{label}: no such file") from None
        except OSError as err:
            raise ImageFileError(f"{label}: cannot be read: {err.strerror or err}") from None
    else:
        raise InputTypeError(
            f"decode_image: source must be bytes or a path, got {type(source).__name__}"
        )
    try:
        # Pillow's bomb warning is emitted by open() only; warnings.catch_warnings (below)
        # changes process-wide filters, so threads decoding at once take turns here.
        with _OPEN_LOCK, _pillow_errors(label, "is not a PNG, JPEG, BMP, GIF or WebP image"):
            image = Image.open(stream, formats=IMAGE_FORMATS)
        with image:
            yield image
    finally:
        stream.close()


@contextmanager
def _pillow_errors(label: str, what: str) -> Iterator[None]:
    """Turn whatever Pillow raises (or warns about a bomb) into one ``ImageFileError``.

    Pillow raises many exception types on malformed input (``OSError``,
    ``SyntaxError``, ``ValueError``, ``struct.error``, ``EOFError``, its
    ``DecompressionBombError``...), none of which the caller should see.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except ImageFileError:
            raise
        except Image.UnidentifiedImageError:  # its message only repeats the stream's repr
            raise ImageFileError(f"{label}: {what}") from None
        except Image.DecompressionBombError as err:
            raise ImageFileError(f"{label}: refused before decoding: {err}") from None
        except Exception as err:  # hostile bytes: any failure of Pillow's is the file's
            detail = str(err) or type(err).__name__
            raise ImageFileError(f"{label}: {what} ({detail})") from None


def _check_format(image: Image.Image, named: Any, label: str) -> None:
    """A file named ``*.jpg`` must hold a JPEG, and so on for every suffix we know."""
    if named is None:
        return
    suffix = Path(named).suffix.lower()
    promised = IMAGE_SUFFIXES.get(suffix)
    if promised is not None and promised != image.format:
        right = next(ext for ext, fmt in IMAGE_SUFFIXES.items() if fmt == image.format)
        raise ImageFileError(
            f"{label}: its name ends in {suffix} ({promised}) but it holds a {image.format} "
            f"image; rename it to {right}"
        )


def _check_pixels(image: Image.Image, label: str, max_pixels: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageFileError(
            f"{label}: refused before decoding: it declares {width} x {height} = "
            f"{width * height:,} pixels, more than the {max_pixels:,} allowed "
            f"(a decompression bomb, or an image too large to train on)"
        )


def _load(image: Image.Image, label: str) -> None:
    with _pillow_errors(label, "is truncated or corrupt"):
        image.seek(0)
        image.load()


def _converted(image: Image.Image, color: str | None) -> Image.Image:
    """8-bit ``"L"`` or ``"RGB"``: transparency onto white, then the colour conversion."""
    mode = "L" if color == "grayscale" or (color is None and is_grayscale(image)) else "RGB"
    if image.mode.startswith("I"):
        image = _eight_bit(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        flat = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        image = Image.alpha_composite(flat, image.convert("RGBA"))
    return image.convert(mode)


def is_grayscale(image: Image.Image) -> bool:
    """Whether Pillow's ``image`` holds gray values only: a gray mode, or a palette of grays."""
    if image.mode == "P" or image.mode == "PA":
        palette = image.getpalette() or [0, 0, 0]
        return palette[0::3] == palette[1::3] == palette[2::3]
    return image.mode in _GRAYSCALE_MODES


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit grayscale (Pillow's ``I;16`` or ``I``) scaled to ``"L"``: ``round(v / 257)``."""
    values = np.asarray(image, dtype=np.int64)
    scaled = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)


def _bytes(image: Image.Image, size: tuple[int, int] | None) -> np.ndarray:
    if size is not None and (image.height, image.width) != tuple(size):
        image = image.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
    values = np.asarray(image, dtype=np.uint8)
    return values[:, :, np.newaxis] if values.ndim == 2 else values
