"""Atomic, durable writes (``jaxcnn._io``): full disks, kills mid-write, fsync order, leftovers."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jaxcnn import _io
from jaxcnn.errors import MissingFileError, StorageError

ROOT = Path(__file__).resolve().parents[1]


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(_io.TEMPORARY_SUFFIX))


class FullDisk:
    """A file handle that accepts ``room`` bytes, then fails like a full disk."""

    def __init__(self, handle: Any, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return int(self.handle.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_names_the_file_keeps_the_old_one_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    target = tmp_path / "history.json"
    _io.write_json(target, {"epoch": 1})
    before = target.read_bytes()
    if where == "write":  # the disk fills while the bytes are written
        real_open = open
        monkeypatch.setattr(_io, "open", lambda *a: FullDisk(real_open(*a), 5), raising=False)
    else:  # delayed allocation: the write is accepted, the flush to disk fails

        def fsync(descriptor: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(_io.os, "fsync", fsync)
    with pytest.raises(StorageError) as info:
        _io.write_json(target, {"epoch": 2, "history": list(range(100))})
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert isinstance(info.value, OSError)
    assert target.read_bytes() == before
    assert temporaries(tmp_path) == []


def test_the_file_is_fsynced_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        calls.append("fsync folder" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "fsync file")
        real_fsync(descriptor)

    def replace(source: Any, target: Any) -> None:
        calls.append("rename")
        real_replace(source, target)

    monkeypatch.setattr(_io.os, "fsync", fsync)
    monkeypatch.setattr(_io.os, "replace", replace)
    _io.write_bytes(tmp_path / "checkpoint.npz", b"data")
    _io.write_json(tmp_path / "history.json", {"a": 1})
    assert calls == ["fsync file", "rename", "fsync folder"] * 2


def test_temporary_names_are_unique_per_writer(tmp_path: Path) -> None:
    names = {_io.temporary_name(tmp_path / "history.json").name for _ in range(100)}
    assert len(names) == 100
    assert all(name.startswith(f".history.json.{os.getpid()}.") for name in names)


def test_a_missing_folder_is_a_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"cannot write .*/nope/x.json: .*nope does not"):
        _io.write_json(tmp_path / "nope" / "x.json", {})


def test_only_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".checkpoint.npz.{dead_pid}.0badf00d.tmp"
    live = tmp_path / f".checkpoint.npz.{os.getpid()}.12345678.tmp"
    other = tmp_path / f".history.json.{dead_pid}.0badf00d.tmp"
    odd = tmp_path / ".checkpoint.npz.notapid.tmp"
    for path in (stale, live, other, odd):
        path.write_bytes(b"half")
    assert _io.remove_stale_temporaries(tmp_path, "checkpoint.npz") == [stale]
    assert temporaries(tmp_path) == sorted(p.name for p in (live, other, odd))


def test_process_alive() -> None:
    assert _io.process_alive(os.getpid())
    assert not _io.process_alive(0)
    assert not _io.process_alive(-1)


CHILD = """
import sys, time
from pathlib import Path
from jaxcnn import _io

class Slow:
    def __init__(self, handle):
        self.handle = handle
    def write(self, data):
        self.handle.write(data[:3])
        self.handle.flush()
        Path(sys.argv[2]).touch()  # tell the parent we are inside the write
        time.sleep(60)
    def __getattr__(self, name):
        return getattr(self.handle, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.handle.close()

real_open = open
_io.open = lambda *args: Slow(real_open(*args))
_io.write_bytes(sys.argv[1], b"new contents")
"""


def test_sigkill_during_a_write_keeps_the_old_file_and_the_leftover_is_cleaned(
    tmp_path: Path,
) -> None:
    target, inside = tmp_path / "checkpoint.npz", tmp_path / "inside"
    target.write_bytes(b"old contents")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target), str(inside)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not inside.exists():
            assert child.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old contents"
    (leftover,) = temporaries(tmp_path)
    assert leftover.startswith(f".checkpoint.npz.{child.pid}.")
    assert (tmp_path / leftover).read_bytes() == b"new"
    assert [p.name for p in _io.remove_stale_temporaries(tmp_path, target.name)] == [leftover]
    assert temporaries(tmp_path) == []
