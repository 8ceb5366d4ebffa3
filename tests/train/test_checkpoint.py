"""Checkpoints: exact round trip, atomic writes, and a clear error for every bad file."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn.train import CheckpointError, TrainConfig, load_checkpoint, save_checkpoint
from jaxcnn.train import _checkpoint as ckpt

CONFIG = TrainConfig(model="shapes", optimizer="adam", lr=0.01, epochs=7, seed=3)


def trained_state(config: TrainConfig = CONFIG) -> tuple[Any, Any]:
    """Params and a non-trivial optimizer state (one Adam step taken)."""
    model, optimizer = config.build_model(), config.build_optimizer()
    _, params = model.init(jax.random.key(config.seed), (-1, 28, 28, 1))
    grads = jax.tree.map(jnp.ones_like, params)
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimizer.update(grads, optimizer.init(params), params)
    return jax.tree.map(jnp.add, params, updates), opt_state


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    params, opt_state = trained_state()
    history = {"train_loss": [0.5, 0.25], "train_accuracy": [0.75, 0.875]}
    return save_checkpoint(
        tmp_path / "checkpoint.npz",
        params=params,
        opt_state=opt_state,
        epoch=2,
        key=jax.random.key(11),
        config=CONFIG,
        history=history,
    )


def assert_trees_equal(a: Any, b: Any) -> None:
    assert str(jax.tree.structure(a)) == str(jax.tree.structure(b))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def rewrite(path: Path, change: Any) -> None:
    """Rewrite a checkpoint's entries (a dict name -> array) through ``change``."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    change(arrays)
    np.savez(path, **arrays)


def metadata_of(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return dict(json.loads(arrays[ckpt.METADATA].tobytes()))


def set_metadata(arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    arrays[ckpt.METADATA] = np.frombuffer(json.dumps(metadata).encode(), np.uint8)


def test_round_trip_is_exact(saved: Path) -> None:
    params, opt_state = trained_state()
    loaded = load_checkpoint(saved)
    assert_trees_equal(loaded.params, params)
    assert_trees_equal(loaded.opt_state, opt_state)
    assert int(loaded.opt_state[0].count) == 1
    assert loaded.epoch == 2
    assert loaded.config == CONFIG
    assert loaded.history == {"train_loss": [0.5, 0.25], "train_accuracy": [0.75, 0.875]}
    np.testing.assert_array_equal(
        jax.random.key_data(loaded.key), jax.random.key_data(jax.random.key(11))
    )
    assert jax.random.uniform(loaded.key) == jax.random.uniform(jax.random.key(11))


def test_file_is_plain_npz_with_json_metadata(saved: Path) -> None:
    with np.load(saved, allow_pickle=False) as npz:
        names = set(npz.files)
        metadata = json.loads(npz[ckpt.METADATA].tobytes())
    assert {"params['conv0']['w']", "params['dense4']['b']", "key"} <= names
    assert "opt_state[0].mu['dense4']['w']" in names
    assert metadata["format"] == "jaxcnn-checkpoint"
    assert metadata["format_version"] == 1
    assert metadata["config"]["model"] == "shapes"
    assert metadata["key_impl"] == "threefry2x32"
    assert len(metadata["sha256"]) == 64


def test_raw_uint32_key_and_sgd_state_round_trip(tmp_path: Path) -> None:
    config = TrainConfig(model="mnist-dense", optimizer="sgd", lr=0.1)
    params, opt_state = trained_state(config)
    path = save_checkpoint(
        tmp_path / "c.npz",
        params=params,
        opt_state=opt_state,
        epoch=0,
        key=jax.random.PRNGKey(4),
        config=config.to_dict(),
    )
    loaded = load_checkpoint(path)
    assert_trees_equal(loaded.params, params)
    assert loaded.history is None
    np.testing.assert_array_equal(jax.random.key_data(loaded.key), jax.random.PRNGKey(4))


def test_write_is_atomic_and_leaves_no_temporary_files(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = saved.read_bytes()

    def broken_savez(file: Any, *args: Any, **kwargs: Any) -> None:
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    params, opt_state = trained_state()
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(
            saved, params=params, opt_state=opt_state, epoch=3, key=jax.random.key(0), config=CONFIG
        )
    assert saved.read_bytes() == before  # the old checkpoint is intact
    assert os.listdir(saved.parent) == [saved.name]
    assert load_checkpoint(saved).epoch == 2


def test_overwrite_replaces(saved: Path) -> None:
    params, opt_state = trained_state()
    save_checkpoint(
        saved, params=params, opt_state=opt_state, epoch=5, key=jax.random.key(0), config=CONFIG
    )
    assert load_checkpoint(saved).epoch == 5
    assert os.listdir(saved.parent) == [saved.name]


def expect_error(path: Path, match: str, **kwargs: Any) -> None:
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path, **kwargs)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.npz", "no such checkpoint file")


def test_truncated_file(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    expect_error(saved, "truncated or corrupted")


def test_garbage_bytes(saved: Path) -> None:
    saved.write_bytes(b"\x00garbage" * 100)
    expect_error(saved, r"not a jaxcnn checkpoint \(not an .npz file\)")


def test_flipped_byte_inside_an_array(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("params['dense4']['w'].npy")
    data[info.header_offset + 200] ^= 0xFF  # inside the stored array bytes
    saved.write_bytes(bytes(data))
    expect_error(saved, "truncated or corrupted")  # the zip's CRC catches it


def test_wrong_checksum(saved: Path) -> None:
    # A well-formed zip whose array no longer matches the recorded SHA-256.
    def tamper(arrays: dict[str, np.ndarray]) -> None:
        arrays["params['conv0']['b']"] = arrays["params['conv0']['b']"] + np.float32(1)

    rewrite(saved, tamper)
    expect_error(saved, "checksum mismatch")


def test_plain_npz_without_metadata(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    np.savez(path, w=np.zeros(3))
    expect_error(path, "not a jaxcnn checkpoint")


def test_npy_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.npy"
    np.save(path, np.zeros(3))
    expect_error(path, r"not an .npz file")


def test_newer_format_version(saved: Path) -> None:
    def bump(arrays: dict[str, np.ndarray]) -> None:
        set_metadata(arrays, {**metadata_of(arrays), "format_version": 2})

    rewrite(saved, bump)
    expect_error(saved, "format version 2")


def test_wrong_model_template(saved: Path) -> None:
    other = TrainConfig(model="mnist-dense", optimizer="adam", lr=0.01)
    expect_error(saved, "does not fit the model: missing entry", template=trained_state(other))


def test_metadata_naming_another_model(saved: Path) -> None:
    # Consistent checksum, but the config says mnist-dense: the arrays do not fit it.
    def relabel(arrays: dict[str, np.ndarray]) -> None:
        metadata = metadata_of(arrays)
        metadata["config"]["model"] = "mnist-dense"
        set_metadata(arrays, metadata)

    rewrite(saved, relabel)
    expect_error(saved, "does not fit the model")


def test_wrong_shape_and_dtype(saved: Path) -> None:
    params, opt_state = trained_state()
    wide = {**params, "conv0": {"w": jnp.zeros((3, 3, 1, 4)), "b": params["conv0"]["b"]}}
    expect_error(saved, r"conv0'\]\['w'\] has shape \(3, 3, 1, 2\)", template=(wide, opt_state))
    doubles = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, np.float64), params)
    expect_error(saved, "expected shape .* dtype float64", template=(doubles, opt_state))


def test_extra_entries(saved: Path) -> None:
    def add(arrays: dict[str, np.ndarray]) -> None:
        arrays["params['conv9']['w']"] = np.zeros(2, np.float32)
        metadata = metadata_of(arrays)
        without = {k: v for k, v in arrays.items() if k != ckpt.METADATA}
        set_metadata(arrays, {**metadata, "sha256": ckpt._digest(without)})

    rewrite(saved, add)
    expect_error(saved, r"unexpected entries \[\"params\['conv9'\]\['w'\]\"\]")


def test_bad_config_in_metadata(saved: Path) -> None:
    def corrupt(arrays: dict[str, np.ndarray]) -> None:
        metadata = metadata_of(arrays)
        metadata["config"]["lr"] = -1
        set_metadata(arrays, metadata)

    rewrite(saved, corrupt)
    expect_error(saved, "bad config in metadata: TrainConfig: lr must be a finite number > 0")


def test_save_rejects_bad_arguments(tmp_path: Path) -> None:
    params, opt_state = trained_state()
    args = {"params": params, "opt_state": opt_state, "key": jax.random.key(0)}
    with pytest.raises(ValueError, match="save_checkpoint: epoch must be an int >= 0, got -1"):
        save_checkpoint(tmp_path / "c.npz", epoch=-1, config=CONFIG, **args)
    with pytest.raises(ValueError, match="TrainConfig: unknown keys"):
        save_checkpoint(tmp_path / "c.npz", epoch=0, config={"model": "shapes", "x": 1}, **args)
    with pytest.raises(FileNotFoundError):
        save_checkpoint(tmp_path / "no" / "c.npz", epoch=0, config=CONFIG, **args)
