"""stax-style layers: inferred shapes, params, errors."""

from __future__ import annotations

import re

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
