"""Hostile checkpoints: refused from the zip directory, in bounded memory, as CheckpointError.

The probe found a 2.09 MB file with a deflated 2 GiB extra entry costing 4.4 GB
of memory before being refused, a metadata entry that is not ``.npy`` crashing
with ``AttributeError``, NaN weights loading (and ``eval`` printing 50.00%),
and out-of-range metadata loading. Zip files here are forged byte by byte
(:func:`forge_zip`), so their directories can say anything.
"""

from __future__ import annotations

import re
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxcnn import cli
from jaxcnn.train import CheckpointError, TrainConfig, _npz, load_checkpoint, save_checkpoint
from jaxcnn.train import _checkpoint as ckpt
from tests.train.test_checkpoint import CONFIG, metadata_of, rewrite, set_metadata, trained_state

MiB = 1024**2


class Member(NamedTuple):
    """One forged zip member: what its directory entry declares and the bytes that follow."""

    name: str
    payload: bytes  # stored bytes (already deflated when method is 8)
    method: int = zipfile.ZIP_STORED
    size: int | None = None  # declared uncompressed size (default: len(payload))
    crc: int | None = None  # declared CRC-32 (default: of the payload)
    flags: int = 0


def forge_zip(members: list[Member], comment: bytes = b"") -> bytes:
    """A zip archive whose local headers and central directory declare exactly ``members``."""
    body, directory = b"", b""
    for m in members:
        name = m.name.encode()
        size = len(m.payload) if m.size is None else m.size
        crc = zlib.crc32(m.payload) if m.crc is None else m.crc
        fields = (m.flags, m.method, 0, 33, crc, len(m.payload), size, len(name))
        local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, *fields, 0)
        central = struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, *fields, 0, 0, 0, 0, 0, len(body)
        )
        directory += central + name
        body += local + name + m.payload
    end = struct.pack(
        "<4s4H2LH",
        b"PK\x05\x06",
        0,
        0,
        len(members),
        len(members),
        len(directory),
        len(body),
        len(comment),
    )
    return body + directory + end + comment


def members_of(path: Path) -> list[Member]:
    """The members of a real checkpoint, as stored."""
    with zipfile.ZipFile(path) as archive:
        return [Member(info.filename, archive.read(info)) for info in archive.infolist()]


def zero_bomb(gib: int) -> bytes:
    """A raw deflate stream of ``gib`` GiB of zeros (~1 KB per MiB), built in milliseconds.

    A full flush resets the compressor, so every 1 MiB block compresses to the
    same bytes and can be repeated.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * (1024 * gib) + compressor.flush()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    params, opt_state = trained_state()
    return save_checkpoint(
        tmp_path / "checkpoint.npz",
        params=params,
        opt_state=opt_state,
        epoch=2,
        key=jax.random.key(11),
        config=CONFIG,
        history={"train_loss": [0.5, 0.25], "train_accuracy": [0.75, 0.875]},
    )


def load_measured(path: Path) -> tuple[BaseException | None, int]:
    """``load_checkpoint(path)``: the exception it raised (or None) and its peak traced memory."""
    tracemalloc.start()
    try:
        load_checkpoint(path)
    except Exception as err:  # the test decides which are allowed
        return err, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


def expect_refused(path: Path, match: str, max_bytes: int = 8 * MiB) -> None:
    error, peak = load_measured(path)
    assert isinstance(error, CheckpointError), repr(error)
    assert str(path) in str(error)
    assert re.search(match, str(error)), str(error)
    assert peak < max_bytes, f"peak {peak / MiB:.1f} MiB"


def test_the_forger_writes_what_numpy_reads(saved: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.npz"
    copy.write_bytes(forge_zip(members_of(saved)))
    loaded, original = load_checkpoint(copy), load_checkpoint(saved)
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(original.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_an_extra_deflated_2_gib_entry_is_refused_before_it_is_read(
    saved: Path, tmp_path: Path
) -> None:
    # The probe's 2.09 MB file: a deflated entry of 2 GiB of zeros beside a real checkpoint.
    bomb = zero_bomb(2)
    assert len(bomb) < 2.2 * MiB
    extra = Member("extra.npy", bomb, zipfile.ZIP_DEFLATED, size=2 * 1024**3, crc=0)
    path = tmp_path / "bomb.npz"
    path.write_bytes(forge_zip([*members_of(saved), extra]))
    expect_refused(path, r"unexpected entries \['extra'\]")


def test_an_expected_entry_declaring_2_gib_is_refused_from_its_declared_size(
    saved: Path, tmp_path: Path
) -> None:
    name = "params['dense4']['b'].npy"
    members = [
        Member(m.name, zero_bomb(2), zipfile.ZIP_DEFLATED, size=2 * 1024**3, crc=0)
        if m.name == name
        else m
        for m in members_of(saved)
    ]
    path = tmp_path / "bomb.npz"
    path.write_bytes(forge_zip(members))
    expect_refused(path, r"member \"params\['dense4'\]\['b'\].npy\" declares 2147483648 bytes")


def test_a_bomb_that_lies_about_its_size_is_read_only_as_far_as_declared(
    saved: Path, tmp_path: Path
) -> None:
    # Declares the 132 bytes the array needs, inflates to 1 GiB: reading stops at 132.
    name = "params['dense4']['b'].npy"
    members = [
        Member(m.name, zero_bomb(1), zipfile.ZIP_DEFLATED, size=len(m.payload), crc=0)
        if m.name == name
        else m
        for m in members_of(saved)
    ]
    path = tmp_path / "liar.npz"
    path.write_bytes(forge_zip(members))
    expect_refused(path, r"dense4")


def test_a_metadata_entry_that_is_not_npy_is_a_checkpoint_error(
    saved: Path, tmp_path: Path
) -> None:
    members = [
        Member("__metadata__", m.payload) if m.name == "__metadata__.npy" else m
        for m in members_of(saved)
    ]
    path = tmp_path / "odd.npz"
    path.write_bytes(forge_zip(members))
    expect_refused(path, r"member '__metadata__' is not an .npy array")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda ms: ms * 2, r"appears twice"),
        (lambda ms: [m._replace(flags=1) for m in ms], r"is encrypted"),
        (lambda ms: [m._replace(method=14) for m in ms], r"compression method 14"),
        (
            lambda ms: ms + [Member(f"x{i}.npy", b"") for i in range(_npz.MAX_MEMBERS)],
            r"declares \d+ members .* at most 4096",
        ),
    ],
)
def test_directory_faults_are_refused_before_reading(
    saved: Path, tmp_path: Path, change: Callable[[list[Member]], list[Member]], match: str
) -> None:
    path = tmp_path / "forged.npz"
    path.write_bytes(forge_zip(change(members_of(saved))))
    expect_refused(path, match)


def test_a_zip_comment_or_trailing_bytes_are_refused(saved: Path, tmp_path: Path) -> None:
    path = tmp_path / "comment.npz"
    path.write_bytes(forge_zip(members_of(saved), comment=b"hello"))
    expect_refused(path, r"does not end with a zip end-of-directory record")
    path.write_bytes(saved.read_bytes() + b"\0")
    expect_refused(path, r"does not end with a zip end-of-directory record")


@pytest.mark.parametrize(
    ("declared", "match"),
    [
        (2**32 - 1, r"__metadata__.npy' declares 4294967295 bytes, more than"),
        (None, r"__metadata__.npy' holds 16777217 bytes, more than 16777216"),
    ],
)
def test_metadata_larger_than_its_bound_is_refused(
    saved: Path, tmp_path: Path, declared: int | None, match: str
) -> None:
    count = ckpt.MAX_METADATA_BYTES + 1
    text = b"{'descr': '|u1', 'fortran_order': False, 'shape': (%d,), }" % count
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + text.ljust(117) + b"\n"
    size = len(header) + count if declared is None else declared
    members = [
        Member(m.name, header, size=size) if m.name == "__metadata__.npy" else m
        for m in members_of(saved)
    ]
    path = tmp_path / "huge-metadata.npz"
    path.write_bytes(forge_zip(members))
    expect_refused(path, match)


def test_a_wrong_npy_header_is_refused_before_its_data(saved: Path, tmp_path: Path) -> None:
    def widen(arrays: dict[str, np.ndarray]) -> None:
        arrays["params['dense4']['b']"] = np.zeros(3, np.float32)

    rewrite(saved, widen)
    expect_refused(saved, r"does not fit the model: params\['dense4'\]\['b'\] has shape \(3,\)")


def set_config(saved: Path, **changes: Any) -> None:
    def change(arrays: dict[str, np.ndarray]) -> None:
        metadata = metadata_of(arrays)
        metadata["config"].update(changes)
        set_metadata(arrays, metadata)

    rewrite(saved, change)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"batch_size": 2**31}, r"TrainConfig: batch_size must be < 2147483648"),
        ({"epochs": 2**40}, r"TrainConfig: epochs must be < 2147483648"),
        ({"seed": 2**32}, r"TrainConfig: seed must be < 4294967296"),
        ({"seed": -1}, r"TrainConfig: seed must be >= 0"),
        ({"devices": 0}, r"TrainConfig: devices must be >= 1"),
        ({"batch_size": True}, r"TrainConfig: batch_size must be an int"),
        ({"epochs": 1}, r"bad metadata: epoch must be in \[0, epochs=1\], got 2"),
    ],
)
def test_metadata_is_range_checked(saved: Path, changes: dict[str, Any], match: str) -> None:
    set_config(saved, **changes)
    expect_refused(saved, match)


@pytest.mark.parametrize(
    ("metadata_change", "match"),
    [
        (lambda m: m.update(history={"train_loss": [0.5]}), r"must hold 2 values"),
        (lambda m: m.update(history={"lr": [1, 2]}), r"history must map some of"),
        (lambda m: m.update(history=[1, 2]), r"history must map some of"),
        (lambda m: m.update(epoch=True), r"'epoch' missing or not a int"),
        (lambda m: m.update(key_impl="bogus"), r"bad PRNG key: unrecognized PRNG implementation"),
    ],
)
def test_history_is_range_checked(saved: Path, metadata_change: Any, match: str) -> None:
    def change(arrays: dict[str, np.ndarray]) -> None:
        metadata = metadata_of(arrays)
        metadata_change(metadata)
        set_metadata(arrays, metadata)

    rewrite(saved, change)
    expect_refused(saved, match)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b'{"history": {"train_loss": [NaN, 1]}}', r"NaN is not a finite number"),
        (b"[" * 100_000, r"unreadable metadata"),
        (b"\xff\xfe", r"unreadable metadata"),
        (b'{"epoch": 1' + b"0" * 5000 + b"}", r"unreadable metadata"),
    ],
)
def test_hostile_metadata_json(saved: Path, text: bytes, match: str) -> None:
    rewrite(saved, lambda arrays: arrays.update({ckpt.METADATA: np.frombuffer(text, np.uint8)}))
    expect_refused(saved, match)


def nan_weights_with_a_good_checksum(path: Path) -> None:
    def poison(arrays: dict[str, np.ndarray]) -> None:
        weights = arrays["params['dense4']['w']"].copy()
        weights[7, 0] = np.nan
        arrays["params['dense4']['w']"] = weights
        metadata = metadata_of(arrays)
        without = {k: v for k, v in arrays.items() if k != ckpt.METADATA}
        set_metadata(arrays, {**metadata, "sha256": ckpt._digest(without)})

    rewrite(path, poison)


def test_nan_weights_with_a_recomputed_checksum_are_refused(saved: Path) -> None:
    nan_weights_with_a_good_checksum(saved)
    expect_refused(saved, r"params\['dense4'\]\['w'\]\[7, 0\] is nan: a checkpoint holds finite")


def test_eval_of_nan_weights_exits_2_instead_of_printing_an_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = TrainConfig(model="shapes", epochs=2)
    params, opt_state = trained_state(config)
    path = save_checkpoint(
        tmp_path / "checkpoint.npz",
        params=params,
        opt_state=opt_state,
        epoch=1,
        key=jax.random.key(0),
        config=config,
    )
    nan_weights_with_a_good_checksum(path)
    assert cli.main(["eval", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "is nan: a checkpoint holds finite weights" in err


def test_save_refuses_what_load_would_refuse(tmp_path: Path) -> None:
    params, opt_state = trained_state()
    args = {"opt_state": opt_state, "key": jax.random.key(0), "config": CONFIG}
    bad = jax.tree.map(lambda a: a, params)
    bad["conv0"]["b"] = bad["conv0"]["b"].at[1].set(np.inf)
    with pytest.raises(ValueError, match=r"save_checkpoint: params\['conv0'\]\['b'\]\[1\] is inf"):
        save_checkpoint(tmp_path / "c.npz", params=bad, epoch=1, **args)
    with pytest.raises(ValueError, match=r"save_checkpoint: epoch must be in \[0, epochs=7\]"):
        save_checkpoint(tmp_path / "c.npz", params=params, epoch=8, **args)
    with pytest.raises(ValueError, match=r"save_checkpoint: history\['train_loss'\] must hold 1"):
        save_checkpoint(
            tmp_path / "c.npz", params=params, epoch=1, history={"train_loss": [1, 2]}, **args
        )
    assert not (tmp_path / "c.npz").exists()


# --------------------------------------------------------------------------- fuzzing

_FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


def allowed_outcome(path: Path, reference: Any) -> None:
    """Loading raises CheckpointError, or returns exactly the reference (the change was inert)."""
    error, peak = load_measured(path)
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB"
    if error is None:
        loaded = load_checkpoint(path)
        state = (loaded.params, loaded.opt_state, loaded.epoch)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(reference), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    else:
        assert isinstance(error, CheckpointError), repr(error)


class Reference(NamedTuple):
    data: bytes  # a valid checkpoint file
    state: Any  # its (params, opt_state, epoch)

    def __repr__(self) -> str:
        return f"Reference({len(self.data)} bytes)"


@pytest.fixture
def reference(saved: Path) -> Reference:
    checkpoint = load_checkpoint(saved)
    return Reference(
        saved.read_bytes(), (checkpoint.params, checkpoint.opt_state, checkpoint.epoch)
    )


@_FUZZ
@given(data=st.binary(max_size=3000), zip_magic=st.booleans())
def test_random_bytes_raise_only_checkpoint_error(
    tmp_path: Path, data: bytes, zip_magic: bool
) -> None:
    path = tmp_path / "random.npz"
    path.write_bytes((_npz.ZIP_MAGIC if zip_magic else b"") + data)
    allowed_outcome(path, None)


@_FUZZ
@given(
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8)
)
def test_mutated_checkpoints_raise_only_checkpoint_error(
    tmp_path: Path, reference: Reference, edits: list[tuple[float, int]]
) -> None:
    data = bytearray(reference.data)
    for where, value in edits:
        data[int(where * len(data))] = value
    path = tmp_path / "mutated.npz"
    path.write_bytes(bytes(data))
    allowed_outcome(path, reference.state)


@_FUZZ
@given(cut=st.floats(0, 1, exclude_max=True), tail=st.binary(max_size=64))
def test_truncated_or_extended_checkpoints_raise_only_checkpoint_error(
    tmp_path: Path, reference: Reference, cut: float, tail: bytes
) -> None:
    path = tmp_path / "cut.npz"
    path.write_bytes(reference.data[: int(cut * len(reference.data))] + tail)
    allowed_outcome(path, None)
