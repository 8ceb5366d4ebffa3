"""Checkpoints: exact round trip of any model, atomic writes, a clear error for every bad file."""

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

from jaxcnn import layers, manual, models
from jaxcnn.data import DataSource
from jaxcnn.train import (
    CheckpointError,
    TrainConfig,
    load_checkpoint,
    make_optimizer,
    predict,
    save_checkpoint,
)
from jaxcnn.train import _checkpoint as ckpt
from tests import rounding

CONFIG = TrainConfig(model="shapes", optimizer="adam", lr=0.01, epochs=7, seed=3)
V1_CHECKPOINT = Path(__file__).parent / "data" / "checkpoint_v1.npz"
"""Written by jaxcnn 0.1 (format 1, config only) with CONFIG after ``trained_state()``."""


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
    assert loaded.key is not None
    np.testing.assert_array_equal(
        jax.random.key_data(loaded.key), jax.random.key_data(jax.random.key(11))
    )
    assert jax.random.uniform(loaded.key) == jax.random.uniform(jax.random.key(11))
    assert loaded.model == models.shapes_cnn()
    assert loaded.data is None


def test_file_is_plain_npz_with_json_metadata(saved: Path) -> None:
    with np.load(saved, allow_pickle=False) as npz:
        names = set(npz.files)
        metadata = json.loads(npz[ckpt.METADATA].tobytes())
    assert {"params['conv0']['w']", "params['dense4']['b']", "key"} <= names
    assert "opt_state[0].mu['dense4']['w']" in names
    assert metadata["format"] == "jaxcnn-checkpoint"
    assert metadata["format_version"] == 2
    assert metadata["config"]["model"] == "shapes"
    assert metadata["model"] == json.loads(json.dumps(layers.to_spec(models.shapes_cnn())))
    assert metadata["model"]["config"]["input_shape"] == [28, 28, 1]
    assert metadata["params_dtype"] == "float32"
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
    assert loaded.key is not None
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
        set_metadata(arrays, {**metadata_of(arrays), "format_version": 3})

    rewrite(saved, bump)
    expect_error(saved, r"format version 3; this jaxcnn .* reads versions \[1, 2\]")


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


# --------------------------------------------------------------------------- any model


def custom_model(**changes: Any) -> layers.Layer:
    """Not one of the article's models: other layers, initializers, nesting, input and classes."""
    options: dict[str, Any] = {
        "kind": "my_cnn",
        "loss": "softmax_cross_entropy",
        "input_shape": (12, 10, 2),
    }
    return layers.serial(
        layers.Conv(4, (3, 2), stride=(1, 2), padding="same", w_init=layers.ScaledNormal(0.2)),
        layers.Relu,
        layers.serial(layers.AvgPool(2), layers.Conv(3, 2, padding=1, impl="lax")),
        layers.MaxPool(2, stride=1),
        layers.Flatten,
        layers.Dense(5),
        layers.Relu,
        layers.Dense(3),
        **{**options, **changes},
    )


def test_any_model_round_trips_with_bit_identical_outputs(tmp_path: Path) -> None:
    model = custom_model()
    _, params = model.init(jax.random.key(5))
    path = save_checkpoint(tmp_path / "c.npz", model=model, params=params)
    loaded = load_checkpoint(path)
    assert loaded.model == model
    assert loaded.model is not model
    assert_trees_equal(loaded.params, params)
    assert (loaded.opt_state, loaded.key, loaded.config, loaded.data) == (None, None, None, None)
    assert loaded.epoch == 0
    x = jax.random.uniform(jax.random.key(6), (7, 12, 10, 2))
    want = np.asarray(model.apply(params, x))
    np.testing.assert_array_equal(np.asarray(loaded.model.apply(loaded.params, x)), want)
    np.testing.assert_array_equal(
        np.asarray(predict(loaded.model, loaded.params, x)), np.asarray(predict(model, params, x))
    )


def test_an_optimizer_state_without_config_needs_its_optimizer(tmp_path: Path) -> None:
    model, adam = custom_model(), make_optimizer("adam", 1e-3)
    _, params = model.init(jax.random.key(5))
    with jax.numpy_dtype_promotion("standard"):
        _, opt_state = adam.update(jax.tree.map(jnp.ones_like, params), adam.init(params), params)
    path = save_checkpoint(tmp_path / "c.npz", model=model, params=params, opt_state=opt_state)
    expect_error(path, r"holds an optimizer state but no config .* optimizer=")
    assert_trees_equal(load_checkpoint(path, optimizer=adam).opt_state, opt_state)
    config = TrainConfig(optimizer="adam", lr=1e-3)  # no built-in model: the spec says what it is
    path = save_checkpoint(path, model=model, params=params, opt_state=opt_state, config=config)
    loaded = load_checkpoint(path)
    assert_trees_equal(loaded.opt_state, opt_state)
    assert loaded.config == config


def test_float64_params_round_trip_and_need_x64_to_load(tmp_path: Path) -> None:
    model = custom_model()
    with jax.enable_x64(True):
        _, params = model.init(jax.random.key(5), dtype=jnp.float64)
        path = save_checkpoint(tmp_path / "c.npz", model=model, params=params)
        loaded = load_checkpoint(path)
        assert_trees_equal(loaded.params, params)
        assert {leaf.dtype for leaf in jax.tree.leaves(loaded.params)} == {np.dtype("float64")}
    expect_error(path, "cannot rebuild the model's params: .*jax_enable_x64")


def _double() -> layers.Layer:
    return layers.Layer(lambda key, shape: (shape, {}), lambda params, x: 2 * x, "double")


def _my_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    return jnp.zeros(shape, dtype)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (
            layers.serial(layers.Flatten, _double(), layers.Dense(2), input_shape=(4, 4, 1)),
            r"cannot store the model: to_spec: layer model/double1 \(kind 'double'\) was built "
            r"by hand, not by jaxcnn.layers",
        ),
        (
            layers.serial(layers.Conv(2, 3, w_init=_my_init), input_shape=(4, 4, 1)),
            r"cannot store the model: to_spec: layer model/conv0 has w_init=<function _my_init "
            r".*>, not one of jaxcnn's "
            r"initializers",
        ),
        (
            manual.with_manual_grads(models.shapes_cnn()),
            r"cannot store the model: to_spec: layer model \(kind 'shapes_cnn'\) was built by hand",
        ),
        (
            layers.serial(layers.Flatten, layers.Dense(2)),
            r"model 'serial' records no input shape, .* serial\(\.\.\., input_shape=\(H, W, C\)\)",
        ),
    ],
    ids=["hand-built layer", "custom initializer", "manual twin", "no input shape"],
)
def test_saving_refuses_a_model_jaxcnn_cannot_describe(
    tmp_path: Path, model: layers.Layer, match: str
) -> None:
    _, params = model.init(jax.random.key(0), (-1, *(layers.input_shape_of(model) or (4, 4, 1))))
    with pytest.raises(ValueError, match="save_checkpoint: " + match):
        save_checkpoint(tmp_path / "c.npz", model=model, params=params)
    assert not (tmp_path / "c.npz").exists()


def test_saving_refuses_params_or_state_that_do_not_fit(tmp_path: Path) -> None:
    params, opt_state = trained_state()
    dense_params, _ = trained_state(TrainConfig(model="mnist-dense"))
    half_bias = {**params, "conv0": {**params["conv0"], "b": jnp.zeros(2, jnp.float16)}}
    sgd_state = make_optimizer("sgd", 0.1).init(params)
    path = tmp_path / "c.npz"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"params": dense_params, "config": CONFIG}, r"params do not fit model 'shapes_cnn': miss"),
        (
            {"params": half_bias, "config": CONFIG},
            r"params must all have one floating dtype, got \['float16', 'float32'\]",
        ),
        (
            {"params": params, "opt_state": sgd_state, "config": CONFIG},
            r"opt_state is not the state of the config's 'adam' optimizer",
        ),
        ({"params": params}, r"pass model= \(the Layer the params belong to\)"),
    ]
    for arguments, match in cases:
        with pytest.raises(ValueError, match="save_checkpoint: " + match):
            save_checkpoint(path, **arguments)
        assert not path.exists()
    save_checkpoint(path, params=params, opt_state=opt_state, config=CONFIG)  # the right ones
    assert load_checkpoint(path).epoch == 0


def test_format_1_checkpoints_still_load() -> None:
    loaded = load_checkpoint(V1_CHECKPOINT)
    # Bit for bit what the file holds, each leaf from the entry of its own name.
    with np.load(V1_CHECKPOINT, allow_pickle=False) as stored:
        for prefix, tree in (("params", loaded.params), ("opt_state", loaded.opt_state)):
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                name = prefix + jax.tree_util.keystr(path)
                np.testing.assert_array_equal(np.asarray(leaf), stored[name], err_msg=name)
    # And what jaxcnn 0.1 saved is trained_state() as this jaxcnn computes it. The file was
    # written on another CPU: its normal draws (an erf_inv polynomial, a dozen elementwise
    # roundings) and the Adam step (a few more) may round otherwise there, so the leaves
    # agree to gamma(16) of their magnitudes plus the step's (lr), not bit for bit; a leaf
    # read into the wrong place would be off by its whole size.
    params, opt_state = trained_state()
    assert str(jax.tree.structure((loaded.params, loaded.opt_state))) == str(
        jax.tree.structure((params, opt_state))
    )
    for got, want in zip(
        jax.tree.leaves((loaded.params, loaded.opt_state)),
        jax.tree.leaves((params, opt_state)),
        strict=True,
    ):
        want = np.asarray(want)
        assert np.asarray(got).dtype == want.dtype
        bound = rounding.gamma(16) * (np.abs(want.astype(np.float64)) + CONFIG.lr)
        rounding.assert_within(got, want, bound)
    assert loaded.config == CONFIG
    assert loaded.model == models.shapes_cnn()
    assert (loaded.epoch, loaded.data) == (2, None)
    assert loaded.key is not None
    assert jax.random.uniform(loaded.key) == jax.random.uniform(jax.random.key(11))


def test_format_1_checkpoint_with_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "v1.npz"
    path.write_bytes(V1_CHECKPOINT.read_bytes())

    def rename(arrays: dict[str, np.ndarray]) -> None:
        metadata = metadata_of(arrays)
        metadata["config"]["model"] = "resnet"
        set_metadata(arrays, metadata)

    rewrite(path, rename)
    expect_error(path, r"bad config in metadata: TrainConfig: model must be one of")


def test_data_source_round_trips(tmp_path: Path) -> None:
    params, _ = trained_state()
    source = DataSource("idx", "ab" * 32, "/data/fashion")
    path = save_checkpoint(tmp_path / "c.npz", params=params, config=CONFIG, data=source)
    assert load_checkpoint(path).data == source

    def corrupt(arrays: dict[str, np.ndarray]) -> None:
        set_metadata(arrays, {**metadata_of(arrays), "data": {"kind": "ftp", "sha256": "x"}})

    rewrite(path, corrupt)
    expect_error(path, r"bad data source in metadata: DataSource: expected a dict with keys")


def test_bad_or_missing_model_spec(saved: Path) -> None:
    original = saved.read_bytes()

    def unknown_layer(arrays: dict[str, np.ndarray]) -> None:
        metadata = metadata_of(arrays)
        metadata["model"]["layers"][1]["kind"] = "attention"
        set_metadata(arrays, metadata)

    rewrite(saved, unknown_layer)
    expect_error(saved, r"bad model spec in metadata: from_spec: model/attention1 has kind")
    saved.write_bytes(original)
    rewrite(saved, lambda arrays: set_metadata(arrays, {**metadata_of(arrays), "model": None}))
    expect_error(saved, r"metadata field 'model' missing or not a dict")


def test_a_config_says_how_to_train_not_what_the_model_is() -> None:
    config = TrainConfig(optimizer="adam", lr=1e-3)
    assert config.model is None
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"build_model: this config names no built-in model"):
        config.build_model()
    shape, _ = TrainConfig(model="mnist-cnn").build_model(classes=5).init(jax.random.key(0))
    assert shape == (-1, 5)
