"""One writer per run directory: a lock, leftovers cleaned at start, ``--overwrite`` made safe.

``jaxcnn train --out DIR`` holds ``DIR/.jaxcnn.lock`` for the whole run:

* The lock is an ``flock(2)`` on that file, which names its holder (pid, host,
  start time). A second ``train`` on the same directory fails at once (exit
  2), naming the holder. The kernel releases an ``flock`` when its process
  ends, however it ends, so a lock left by a killed process (its file still
  names a dead pid) is simply taken over, with a note.
* Holding the lock, the run removes what killed writers left behind: the
  temporary files of atomic writes (``.checkpoint.npz.<pid>.<hex>.tmp``, whose
  writer process is gone) and a half-discarded old run.
* ``--overwrite`` first renames the old run's checkpoint (then its history)
  into ``DIR/.discarded`` and ``fsync``-s the directory, then deletes them: from
  the moment the rename is durable the old run cannot be resumed by mistake,
  even if the new run dies in its first epoch.

The lock file is removed when the run ends. Locks need a file system that
supports ``flock`` (local disks; NFSv4 across hosts).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from jaxcnn._io import fsync_folder, remove_stale_temporaries
from jaxcnn.cli._common import UsageError, check_writable
from jaxcnn.errors import StorageError

LOCK = ".jaxcnn.lock"
"""The lock file of a run directory."""
DISCARDED = ".discarded"
"""Where ``--overwrite`` moves the old run before deleting it."""


@contextlib.contextmanager
def claim(
    out: Path, files: Sequence[str], note: Callable[[str], None] = lambda _: None
) -> Iterator[None]:
    """Hold ``out``'s lock for the block, after cleaning leftovers of killed runs.

    Args:
      out: the run directory (created if missing, and removed again if the
        block leaves it empty).
      files: the run's files (e.g. ``checkpoint.npz``, ``history.json``)
        whose stale temporaries are removed.
      note: called with one line for each thing recovered (a stale lock,
        leftover files).

    Raises:
      UsageError: another process holds the directory (names its pid and host),
        or the directory cannot be written.
    """
    created = not out.exists()
    check_writable(out)
    path = out / LOCK
    descriptor, previous = _acquire(path)
    try:
        if previous:
            note(f"took over the lock of a run that is no longer running ({previous})")
        _clean(out, files, note)
        yield
    finally:
        _release(path, descriptor)
        if created:  # a run that wrote nothing (e.g. a usage error) leaves nothing
            with contextlib.suppress(OSError):
                out.rmdir()


def discard_run(out: Path, files: Sequence[str]) -> None:
    """Move ``files`` (the one a resume reads first) out of ``out`` durably, then delete them."""
    trash = out / DISCARDED
    try:
        trash.mkdir(exist_ok=True)
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                os.replace(out / name, trash / name)
        fsync_folder(out)
    except OSError as err:
        raise StorageError(
            f"--overwrite: cannot move the old run out of {out}: {err.strerror or err}"
        ) from None
    shutil.rmtree(trash, ignore_errors=True)


def _acquire(path: Path) -> tuple[int, str]:
    """Lock ``path``; returns the descriptor and the holder it named before (a dead one)."""
    while True:
        descriptor = _open(path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _holder(descriptor)
            os.close(descriptor)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UsageError(
                    f"{path.parent} is in use by another jaxcnn train "
                    f"({holder or 'a process that is starting'}); wait for it to end, "
                    f"or pass another --out"
                ) from None
            raise StorageError(f"cannot lock {path}: {err.strerror or err}") from None
        if _is_same_file(path, descriptor):  # not removed by its last holder meanwhile
            break
        os.close(descriptor)
    previous = _holder(descriptor)
    _write_holder(path, descriptor)
    return descriptor, previous


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise StorageError(f"cannot open the lock file {path}: {err.strerror or err}") from None


def _is_same_file(path: Path, descriptor: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


def _holder(descriptor: int) -> str:
    """``pid N on host H since T`` from the lock file's JSON ('' if empty or unreadable)."""
    text = ""
    try:
        text = os.pread(descriptor, 4096, 0).decode("utf-8")
        holder = json.loads(text) if text else {}
        return f"pid {holder['pid']} on host {holder['host']} since {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process whose lock file is unreadable" if text else ""


def _write_holder(path: Path, descriptor: int) -> None:
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode("utf-8") + b"\n", 0)
        os.fsync(descriptor)
    except OSError as err:
        _release(path, descriptor)
        raise StorageError(f"cannot write the lock file {path}: {err.strerror or err}") from None


def _release(path: Path, descriptor: int) -> None:
    """Remove the lock file (while still holding it), then unlock by closing."""
    try:
        if _is_same_file(path, descriptor):
            path.unlink()
    except OSError:
        pass  # the lock is released by close() below all the same
    finally:
        os.close(descriptor)


def _clean(out: Path, files: Sequence[str], note: Callable[[str], None]) -> None:
    removed = [p.name for name in files for p in remove_stale_temporaries(out, name)]
    if (out / DISCARDED).exists():
        shutil.rmtree(out / DISCARDED, ignore_errors=True)
        removed.append(DISCARDED)
    if removed:
        note(f"removed {len(removed)} leftover file(s) of a killed run: {', '.join(removed)}")
