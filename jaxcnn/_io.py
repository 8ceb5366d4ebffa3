"""Atomic, durable file writes: the one way jaxcnn writes a file that must not be half-written.

A write goes to a temporary file with a unique name in the target's folder
(``.NAME.<pid>.<random>.tmp``), is flushed and ``fsync``-ed, renamed over the
target with ``os.replace`` (atomic on POSIX), and the folder is ``fsync``-ed so
the rename itself survives a power cut. Readers see the old file or the new
one, never a mix. Any failure removes the temporary file and raises a
:class:`~jaxcnn.errors.StorageError` that names the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from jaxcnn.errors import MissingFileError, StorageError

TEMPORARY_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """A fresh temporary file name beside ``path``: ``.NAME.<pid>.<hex>.tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a binary handle whose contents replace ``path`` when the block ends without error.

    >>> with atomic_file("out.bin") as handle:  # doctest: +SKIP
    ...     handle.write(b"...")
    """
    path = Path(path)
    temporary = temporary_name(path)
    try:
        with open(temporary, "xb") as handle:  # mode 0o666 & ~umask, like any new file
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_folder(path.parent)
    except FileNotFoundError:
        _remove(temporary)
        raise MissingFileError(f"cannot write {path}: {path.parent} does not exist") from None
    except OSError as err:
        _remove(temporary)
        raise StorageError(f"cannot write {path}: {err.strerror or err}") from err
    except BaseException:
        _remove(temporary)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)


def write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` as indented JSON (no NaN or infinity) to ``path`` atomically."""
    text = json.dumps(value, indent=1, allow_nan=False) + "\n"
    return write_bytes(path, text.encode("utf-8"))


def read_bytes(fn: str, path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path``; a missing or unreadable file is an error naming it and ``fn``."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"{fn}: {path} does not exist") from None
    except OSError as err:
        raise StorageError(f"{fn}: cannot read {path}: {err.strerror or err}") from None


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def remove_stale_temporaries(folder: Path, name: str) -> list[Path]:
    """Delete temporary files left beside ``folder/name`` by writers that were killed.

    Only files of the ``.NAME.<pid>.<hex>.tmp`` pattern whose writer process is
    gone are removed; returns them.
    """
    removed = []
    for candidate in folder.glob(f".{name}.*{TEMPORARY_SUFFIX}"):
        parts = candidate.name[len(name) + 2 : -len(TEMPORARY_SUFFIX)].split(".")
        if len(parts) == 2 and parts[0].isdigit() and not process_alive(int(parts[0])):
            _remove(candidate)
            removed.append(candidate)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
