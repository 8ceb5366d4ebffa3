"""stax-style layers: inferred shapes, params, errors."""

from __future__ import annotations

import json
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import layers, ops


def test_serial_infers_shapes_and_names_params() -> None:
    init, apply = layers.serial(
        layers.Conv(4, (3, 2), stride=(2, 1), padding="same"),
        layers.Relu,
        layers.AvgPool(2),
        layers.Flatten,
        layers.Dense(3),
    )
    shape, params = init(jax.random.key(0), (-1, 9, 8, 2))
    assert shape == (-1, 3)
    assert params["conv0"]["w"].shape == (3, 2, 2, 4)
    assert params["dense4"]["w"].shape == (2 * 4 * 4, 3)
    assert params["relu1"] == {}
    x = jnp.ones((5, 9, 8, 2), jnp.float32)
    assert apply(params, x).shape == (5, 3)


def test_layer_apply_equals_ops() -> None:
    init, apply = layers.Conv(3, 3, padding=1)
    _, params = init(jax.random.key(1), (2, 6, 6, 2))
    x = jax.random.normal(jax.random.key(2), (2, 6, 6, 2))
    np.testing.assert_array_equal(
        apply(params, x), ops.conv2d(x, params["w"], params["b"], padding=1)
    )


def test_global_avg_pool_layer() -> None:
    init, apply = layers.GlobalAvgPool()
    shape, params = init(jax.random.key(0), (-1, 5, 5, 7))
    assert shape == (-1, 7)
    assert apply(params, jnp.ones((2, 5, 5, 7))).shape == (2, 7)


def test_he_normal_scale() -> None:
    w = layers.he_normal(jax.random.key(0), (400, 300))
    np.testing.assert_allclose(float(jnp.std(w)), np.sqrt(2 / 400), rtol=0.02)


def test_layer_errors() -> None:
    init, _ = layers.Dense(3)
    with pytest.raises(ValueError, match=re.escape("Dense: input_shape must be 2-D (N, n_in)")):
        init(jax.random.key(0), (-1, 4, 4, 1))
    with pytest.raises(ValueError, match=re.escape("Conv: kernel 5x5 is larger than the padded")):
        layers.Conv(2, 5).init(jax.random.key(0), (-1, 4, 4, 1))
    with pytest.raises(ValueError, match="Conv: filters must be >= 1, got 0"):
        layers.Conv(0, 3)
    with pytest.raises(TypeError, match="serial: layer 1 must be a Layer"):
        layers.serial(layers.Relu, "relu")  # type: ignore[arg-type]


def test_layers_built_by_jaxcnn_compare_by_value() -> None:
    from jaxcnn import manual, models

    assert models.mnist_cnn() == models.mnist_cnn()
    assert hash(models.shapes_cnn()) == hash(models.shapes_cnn())
    assert layers.Conv(2, 3, padding="same") == layers.Conv(2, 3, padding=((1, 1), (1, 1)))
    assert models.shapes_cnn() != models.shapes_cnn("lax")
    assert layers.Conv(2, 3) != layers.Conv(3, 3)
    assert layers.Conv(2, 3) != layers.Conv(2, 3, w_init=layers.scaled_normal(0.1))
    assert layers.Dense(4) != layers.Dense(4, w_init=layers.scaled_normal(0.5))
    assert layers.MaxPool(2) != layers.AvgPool(2)
    # The manual-gradient twin computes other gradients: never equal to the model.
    assert manual.with_manual_grads(models.shapes_cnn()) != models.shapes_cnn()


def test_a_layer_built_by_hand_compares_by_identity() -> None:
    def init(key: jax.Array, shape: tuple[int, ...]) -> tuple[tuple[int, ...], dict]:
        return shape, {}

    mine = layers.Layer(init, lambda params, x: x * 2, "double")
    same_functions = layers.Layer(init, mine.apply, "double")
    assert mine == mine
    assert mine != same_functions
    assert len({mine, same_functions}) == 2


# --------------------------------------------------------------------------- dtype


def test_default_params_are_float32_and_follow_the_init_formulas() -> None:
    # An oracle of the inits written out by hand: serial splits its key once per layer.
    model = layers.serial(
        layers.Conv(2, 3, w_init=layers.scaled_normal(0.1)),
        layers.Flatten,
        layers.Dense(4),
        input_shape=(5, 5, 1),
    )
    key = jax.random.key(7)
    _, params = model.init(key)
    conv_key, _, dense_key = jax.random.split(key, 3)
    want_conv = np.asarray(jax.random.normal(conv_key, (3, 3, 1, 2))) * np.float32(0.1)
    want_dense = np.asarray(jax.random.normal(dense_key, (18, 4))) * np.float32(np.sqrt(2 / 18))
    np.testing.assert_array_equal(params["conv0"]["w"], want_conv)
    np.testing.assert_array_equal(params["dense2"]["w"], want_dense)
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {np.dtype("float32")}
    _, explicit = model.init(key, dtype=jnp.float32)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(explicit), strict=True):
        np.testing.assert_array_equal(a, b)


def test_float64_params_need_no_casting() -> None:
    model = layers.serial(
        layers.Conv(2, 3, w_init=layers.scaled_normal(0.1)), layers.Flatten, layers.Dense(4)
    )
    key = jax.random.key(7)
    with jax.enable_x64(True):
        _, params = model.init(key, (-1, 5, 5, 1), dtype=jnp.float64)
        conv_key = jax.random.split(key, 3)[0]
        want = np.asarray(jax.random.normal(conv_key, (3, 3, 1, 2), jnp.float64)) * 0.1
        x = jnp.ones((2, 5, 5, 1), jnp.float64)
        assert model.apply(params, x).dtype == jnp.float64  # strict promotion: no mixing
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {np.dtype("float64")}
    np.testing.assert_array_equal(params["conv0"]["w"], want)


def test_bad_dtypes() -> None:
    model = layers.serial(layers.Flatten, layers.Dense(2), input_shape=(2, 2, 1))
    with pytest.raises(TypeError, match=r"serial: dtype must be a floating dtype .* got int32"):
        model.init(jax.random.key(0), dtype=jnp.int32)
    with pytest.raises(ValueError, match=r"Dense: dtype float64 needs .*jax_enable_x64"):
        layers.Dense(2).init(jax.random.key(0), (-1, 3), dtype=jnp.float64)
    with pytest.raises(TypeError, match="Conv: dtype must be a floating dtype, got 'real'"):
        layers.Conv(2, 1).init(jax.random.key(0), (-1, 3, 3, 1), dtype="real")


def test_a_hand_built_layer_without_dtype_still_works_in_serial() -> None:
    def init(key: jax.Array, shape: tuple[int, ...]) -> tuple[tuple[int, ...], dict]:
        return shape, {}

    model = layers.serial(layers.Flatten, layers.Layer(init, lambda p, x: x, "same"))
    shape, _ = model.init(jax.random.key(0), (-1, 2, 3, 1))
    assert shape == (-1, 6)


# --------------------------------------------------------------------------- input shape


def test_serial_records_its_input_shape() -> None:
    model = layers.serial(layers.Flatten, layers.Dense(3), input_shape=[4, 5, 2])
    assert layers.input_shape_of(model) == (4, 5, 2)
    assert model.config["input_shape"] == (4, 5, 2)
    shape, params = model.init(jax.random.key(0))
    assert shape == (-1, 3)
    assert params["dense1"]["w"].shape == (40, 3)
    assert model.init(jax.random.key(0), (8, 4, 5, 2))[0] == (8, 3)
    assert model != layers.serial(layers.Flatten, layers.Dense(3))  # part of what it is
    with pytest.raises(
        ValueError, match=r"built for inputs of shape \(4, 5, 2\) .*got input_shape"
    ):
        model.init(jax.random.key(0), (-1, 28, 28, 1))
    unrecorded = layers.serial(layers.Flatten, layers.Dense(3))
    assert layers.input_shape_of(unrecorded) is None
    with pytest.raises(ValueError, match=r"records none \(build it with serial\(\.\.\., input_sha"):
        unrecorded.init(jax.random.key(0))
    for bad in [(4, 0, 2), "28x28", (), 28]:
        with pytest.raises((ValueError, TypeError), match="serial: input_shape"):
            layers.serial(layers.Flatten, input_shape=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- JSON specs


def zoo() -> list[layers.Layer]:
    """Every layer kind, both initializers, strides, paddings, impls, nesting."""
    from jaxcnn import models

    return [
        models.shapes_cnn(),
        models.shapes_cnn("sliding"),
        models.mnist_cnn(classes=7),
        models.mnist_dense(),
        layers.serial(
            layers.Conv(3, (3, 2), stride=(2, 1), padding=((0, 1), (2, 0)), impl="lax"),
            layers.Relu,
            layers.serial(layers.AvgPool(2, stride=1), layers.MaxPool((2, 1))),
            layers.Conv(4, 1, w_init=layers.ScaledNormal(0.37), padding="same"),
            layers.GlobalAvgPool(),
            layers.Dense(2, w_init=layers.scaled_normal(2)),
            kind="zoo",
            loss="softmax_cross_entropy",
            input_shape=(9, 8, 3),
            note="any JSON value",
            tags=("a", 1, 2.5, None, True),
        ),
        layers.Dense(3),
        layers.Relu,
    ]


@pytest.mark.parametrize("model", zoo(), ids=lambda m: m.kind)
def test_a_model_survives_json(model: layers.Layer) -> None:
    text = json.dumps(layers.to_spec(model))
    rebuilt = layers.from_spec(json.loads(text))
    assert rebuilt == model
    assert hash(rebuilt) == hash(model)
    assert json.dumps(layers.to_spec(rebuilt)) == text
    shape = layers.input_shape_of(model) or ((-1, 6) if model.kind == "dense" else (4, 4, 2))
    full = shape if model.kind == "dense" else (-1, *shape)
    key = jax.random.key(3)
    (out_a, params_a), (out_b, params_b) = model.init(key, full), rebuilt.init(key, full)
    assert out_a == out_b
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
        np.testing.assert_array_equal(a, b)
    x = jax.random.uniform(jax.random.key(4), (3, *full[1:]))
    np.testing.assert_array_equal(model.apply(params_a, x), rebuilt.apply(params_b, x))


def test_the_spec_is_plain_readable_json() -> None:
    from jaxcnn import models

    spec = layers.to_spec(models.shapes_cnn())
    assert spec["spec_version"] == layers.SPEC_VERSION == 1
    assert spec["kind"] == "shapes_cnn"
    assert spec["config"] == {
        "loss": "binary_cross_entropy",
        "impl": "auto",
        "input_shape": [28, 28, 1],
    }
    assert spec["layers"][0] == {
        "kind": "conv",
        "config": {
            "filters": 2,
            "kernel_size": [3, 3],
            "stride": [1, 1],
            "padding": [[1, 1], [1, 1]],
            "impl": "auto",
            "w_init": {"kind": "scaled_normal", "scale": 0.1},
        },
    }
    assert [layer["kind"] for layer in spec["layers"]] == [
        "conv",
        "relu",
        "max_pool",
        "flatten",
        "dense",
    ]
    assert spec["layers"][4]["config"] == {"n_out": 1, "w_init": {"kind": "he_normal"}}


def _custom_init(key: jax.Array, shape: tuple[int, ...], dtype: object = None) -> jax.Array:
    return jnp.zeros(shape)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: layers.serial(
                layers.Relu, layers.Layer(lambda k, s: (s, {}), lambda p, x: x, "mine")
            ),
            r"to_spec: layer model/mine1 \(kind 'mine'\) was built by hand, not by jaxcnn.layers",
        ),
        (
            lambda: layers.serial(layers.serial(layers.Dense(2, w_init=_custom_init))),
            r"to_spec: layer model/serial0/dense0 has w_init=<function _custom_init",
        ),
        (
            lambda: layers.serial(layers.Relu, note=object()),
            r"to_spec: layer model\['note'\] holds <object .*>, which JSON cannot describe",
        ),
        (
            lambda: layers.serial(layers.Relu, ratio=float("nan")),
            r"to_spec: layer model\['ratio'\] holds nan",
        ),
    ],
    ids=["hand-built", "custom init", "object in config", "nan in config"],
)
def test_to_spec_refuses_what_it_cannot_describe(build: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        layers.to_spec(build())


def test_to_spec_refuses_the_manual_gradient_twin() -> None:
    from jaxcnn import manual, models

    with pytest.raises(ValueError, match=r"layer model \(kind 'mnist_dense'\) was built by hand"):
        layers.to_spec(manual.with_manual_grads(models.mnist_dense()))
    with pytest.raises(TypeError, match="to_spec: model must be a Layer, got tuple"):
        layers.to_spec((1, 2))  # type: ignore[arg-type]


def _spec(**changes: Any) -> dict[str, Any]:
    conv = {"kind": "conv", "config": {"filters": 2, "kernel_size": [3, 3]}}
    return {"spec_version": 1, "kind": "serial", "config": {}, "layers": [conv], **changes}


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ([1, 2], TypeError, "from_spec: spec must be a dict, got list"),
        ({"kind": "relu"}, ValueError, r"spec_version must be 1 .*, got None"),
        (_spec(spec_version=2), ValueError, "spec_version must be 1"),
        (_spec(extra=1), ValueError, r"model must be \{'kind': str, 'config': dict\}"),
        (_spec(layers=[]), ValueError, "model's layers must be a non-empty list"),
        (
            _spec(layers=[{"kind": "lstm", "config": {}}]),
            ValueError,
            r"model/lstm0 has kind 'lstm'; expected one of \['avg_pool', 'conv', 'dense'",
        ),
        (
            _spec(layers=[{"kind": "conv", "config": {"filters": 0, "kernel_size": 3}}]),
            ValueError,
            "from_spec: model/conv0: Conv: filters must be >= 1, got 0",
        ),
        (
            _spec(layers=[{"kind": "dense", "config": {"n_out": 2, "bias": False}}]),
            ValueError,
            r"model/dense0 \(kind 'dense'\) has a bad config: .*unexpected keyword argument 'bias'",
        ),
        (
            _spec(layers=[{"kind": "dense", "config": {"n_out": 2, "w_init": {"kind": "glorot"}}}]),
            ValueError,
            r"model/dense0's w_init must be \{'kind': 'he_normal'\}",
        ),
        (_spec(config=[]), ValueError, "model's config must be a dict"),
        (_spec(layers=["relu"]), TypeError, "from_spec: model/0 must be a dict, got str"),
        (
            _spec(config={"input_shape": [28, -1]}),
            ValueError,
            "from_spec: model: serial: input_shape must be >= 1",
        ),
    ],
)
def test_from_spec_errors_name_the_layer(spec: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        layers.from_spec(spec)
