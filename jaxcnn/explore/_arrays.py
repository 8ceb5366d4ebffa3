"""Arrays on the wire: base64 float32, so a feature map costs a copy, not a number per pixel.

``{"shape": [d0, d1, ...], "f32": "<base64 of little-endian float32, C order>"}``.
The page decodes it with ``Float32Array``; every value reaches it exactly.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def encode(values: Any) -> dict[str, Any]:
    """``values`` (any array-like) as float32 ``{"shape", "f32"}``."""
    array = np.ascontiguousarray(np.asarray(values, dtype="<f4"))
    return {"shape": list(array.shape), "f32": base64.b64encode(array.tobytes()).decode("ascii")}


def decode(message: Any) -> np.ndarray:
    """Inverse of :func:`encode` (for tests and clients written in Python)."""
    raw = base64.b64decode(message["f32"], validate=True)
    return np.frombuffer(raw, dtype="<f4").reshape(message["shape"]).astype(np.float32)


def numbers(values: Any) -> list[float] | float:
    """Small arrays as JSON numbers: each float32 written as the double it is (exact)."""
    array = np.asarray(values, dtype=np.float32)
    listed: list[float] | float = array.astype(np.float64).tolist()
    return listed
