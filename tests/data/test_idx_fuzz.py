"""Fuzzing the IDX reader: any bytes give an array or ``InputError``, in bounded memory.

``read_idx`` documents two errors: ``MissingFileError`` (no file) and a
``ValueError`` (``InputError``) naming the file for anything malformed. Random
bytes, mutated valid files (raw and gzipped) and forged headers must raise
nothing else, and never cost more memory than the array their header
promises (a gzip bomb is inflated only as far as its header declares).
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxcnn.data import read_idx, write_idx
from jaxcnn.data._idx import parse_idx
from jaxcnn.errors import InputError

MiB = 1024**2
_FUZZ = settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_measured(path: Path) -> tuple[np.ndarray | Exception, int]:
    """``read_idx(path)`` or the exception it raised, and the peak traced memory."""
    tracemalloc.start()
    try:
        result: np.ndarray | Exception = read_idx(path)
    except Exception as err:  # the test decides which are allowed
        result = err
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, peak


def assert_documented(path: Path, max_bytes: int = 4 * MiB) -> np.ndarray | None:
    """The read gives an array or an InputError naming the file, within ``max_bytes``."""
    result, peak = read_measured(path)
    assert peak < max_bytes, f"peak {peak / MiB:.1f} MiB"
    if isinstance(result, Exception):
        assert type(result) is InputError, repr(result)
        assert str(path) in str(result)
        return None
    return result


def valid_idx(gz: bool, tmp_path: Path) -> bytes:
    rng = np.random.default_rng(0)
    path = tmp_path / ("valid.gz" if gz else "valid")
    write_idx(path, rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    return path.read_bytes()


@_FUZZ
@given(data=st.binary(max_size=2000), gz=st.booleans())
def test_random_bytes_give_only_input_error(tmp_path: Path, data: bytes, gz: bool) -> None:
    path = tmp_path / "random"
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    assert_documented(path)


@_FUZZ
@given(
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
    cut=st.floats(0, 1),
    gz=st.booleans(),
)
def test_mutated_idx_files_give_an_array_or_input_error(
    tmp_path: Path, edits: list[tuple[float, int]], cut: float, gz: bool
) -> None:
    data = bytearray(valid_idx(gz, tmp_path))
    for where, value in edits:
        data[int(where * len(data))] = value
    path = tmp_path / "mutated"
    path.write_bytes(bytes(data[: max(1, int(cut * len(data)))]))
    assert_documented(path)  # an array when the mutation hit only the payload


@_FUZZ
@given(
    code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x0A, 0xFF]),
    shape=st.lists(st.integers(0, 2**32 - 1), max_size=6),
    payload=st.binary(max_size=64),
)
def test_forged_headers_never_allocate_what_they_declare(
    tmp_path: Path, code: int, shape: list[int], payload: bytes
) -> None:
    header = bytes([0, 0, code, len(shape)]) + b"".join(s.to_bytes(4, "big") for s in shape)
    path = tmp_path / "forged"
    path.write_bytes(header + payload)
    assert_documented(path)


def test_a_header_whose_size_overflows_int64_is_refused(tmp_path: Path) -> None:
    # 2**32-1 to the 4th power times 8 bytes wraps around in int64 arithmetic.
    header = bytes([0, 0, 0x0E, 4]) + (2**32 - 1).to_bytes(4, "big") * 4
    path = tmp_path / "overflow"
    path.write_bytes(header + bytes(8))
    with pytest.raises(InputError, match="truncated payload"):
        read_idx(path)
    with pytest.raises(InputError, match="truncated payload"):
        parse_idx(header + bytes(8))


@pytest.mark.parametrize("declared", [(10,), (0,)])
def test_a_gzip_bomb_is_inflated_only_as_far_as_its_header_declares(
    tmp_path: Path, declared: tuple[int, ...]
) -> None:
    # A valid header of a few bytes, then 1 GiB of zeros: refused as trailing bytes
    # after inflating at most one byte past what the header declares. A full flush
    # resets the compressor, so one compressed MiB of zeros can be repeated.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    header = bytes([0, 0, 0x08, 1]) + declared[0].to_bytes(4, "big")
    start = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    path = tmp_path / "bomb.gz"
    path.write_bytes(start + block * 1024 + compressor.flush())
    assert path.stat().st_size < 1.1 * MiB  # ~1 KB per MiB of zeros
    result, peak = read_measured(path)
    assert isinstance(result, InputError), repr(result)
    assert "trailing bytes after payload" in str(result)
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"
