"""The page's requests, checked field by field before anything is computed.

Each function takes the decoded JSON body (or one field of it) and returns
plain Python / NumPy values, or raises :class:`~jaxcnn.errors.InputError`
naming the field and the cause; the server answers that with ``400`` and the
page shows the message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxcnn.errors import InputError

KERNEL_LIMIT = 1e6
"""The largest kernel weight the page accepts (in absolute value)."""
IMAGE_SOURCES = ("builtin", "test", "upload")


class ImageRef(NamedTuple):
    """Which image: ``("builtin", "square")``, ``("test", 12)`` or ``("upload", "u1f2e...")``."""

    source: str
    key: Any


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; NaN and Infinity are refused, as in strict JSON."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise InputError("body: must be UTF-8 JSON") from None
    except json.JSONDecodeError as err:
        raise InputError(f"body: not valid JSON ({err.msg} at character {err.pos})") from None
    except RecursionError:
        raise InputError("body: JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise InputError(f"body: must be a JSON object, got {type(body).__name__}")
    return body


def _refuse_constant(name: str) -> Any:
    raise InputError(f"body: {name} is not a number JSON allows; every value must be finite")


def field(body: dict[str, Any], name: str) -> Any:
    """``body[name]``, or an error saying it is missing."""
    if name not in body:
        raise InputError(f"{name}: missing; the request must give it")
    return body[name]


def integer(value: Any, name: str, low: int, high: int) -> int:
    """An int in ``low..high`` (JSON numbers like ``2.0`` are not ints here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name}: must be an integer, got {value!r}")
    if not low <= value <= high:
        raise InputError(f"{name}: must be in {low}..{high}, got {value}")
    return value


def choice(value: Any, name: str, options: Sequence[Any]) -> Any:
    """One of ``options`` (ints compared as ints, never bools)."""
    if isinstance(value, bool) or value not in options:
        raise InputError(f"{name}: must be one of {list(options)}, got {value!r}")
    return value


def kernel(value: Any, name: str = "kernel") -> np.ndarray:
    """A 3x3 list of finite numbers of at most :data:`KERNEL_LIMIT` -> ``[3, 3]`` float32."""
    if not (isinstance(value, list) and len(value) == 3):
        raise InputError(f"{name}: must be 3 rows of 3 numbers, got {_short(value)}")
    for row, values in enumerate(value):
        if not (isinstance(values, list) and len(values) == 3):
            raise InputError(f"{name}[{row}]: must be a row of 3 numbers, got {_short(values)}")
        for col, number in enumerate(values):
            _kernel_number(number, f"{name}[{row}][{col}]")
    return np.asarray(value, np.float32)


def _kernel_number(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name}: must be a number, got {_short(value)}")
    if not math.isfinite(value) or abs(value) > KERNEL_LIMIT:
        raise InputError(
            f"{name}: must be finite and at most {KERNEL_LIMIT:g} in size, got {value}"
        )


def image_ref(value: Any, name: str = "image", sources: Sequence[str] = IMAGE_SOURCES) -> ImageRef:
    """``{"builtin": name}``, ``{"test": index}`` or ``{"upload": id}`` (one key)."""
    if not (isinstance(value, dict) and len(value) == 1):
        raise InputError(
            f"{name}: must be an object with one of the keys {list(sources)}, got {_short(value)}"
        )
    ((source, key),) = value.items()
    if source not in sources:
        raise InputError(f"{name}: the key must be one of {list(sources)}, got {source!r}")
    if source == "test":
        return ImageRef(source, integer(key, f"{name}.test", 0, 2**31 - 1))
    if not (isinstance(key, str) and 0 < len(key) <= 64 and key.isascii() and key.isprintable()):
        raise InputError(f"{name}.{source}: must be a short name, got {_short(key)}")
    return ImageRef(source, key)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
