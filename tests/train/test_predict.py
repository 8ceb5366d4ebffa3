"""``train.predict``: probabilities against a NumPy oracle, one image or a batch, clear errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import layers, models
from jaxcnn.data import make_shapes
from jaxcnn.train import evaluate, fit, make_optimizer, predict
from tests.compile_count import compile_log


def softmax64(logits: np.ndarray) -> np.ndarray:
    """The oracle: softmax in float64, max-shifted."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def small_cnn(classes: int = 3) -> layers.Layer:
    return layers.serial(
        layers.Conv(3, 3, padding="same"),
        layers.Relu,
        layers.MaxPool(2),
        layers.Flatten,
        layers.Dense(classes),
        loss="softmax_cross_entropy",
        input_shape=(6, 6, 1),
    )


def test_probabilities_match_a_float64_softmax_of_the_logits() -> None:
    with jax.enable_x64(True):  # float64 end to end: the only differences are rounding
        model = small_cnn()
        _, params = model.init(jax.random.key(0), dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(1), (7, 6, 6, 1), jnp.float64)
        logits = np.asarray(model.apply(params, x))
        probs = np.asarray(predict(model, params, x, batch_size=3))  # 3 batches, 2 padded rows
    assert probs.shape == (7, 3)
    assert probs.dtype == np.float64
    np.testing.assert_allclose(probs, softmax64(logits), rtol=1e-14, atol=1e-15)


def test_a_one_logit_model_gives_one_minus_p_and_p() -> None:
    # predict's compiled batches and an eager apply are two programs: float64, where their
    # logits differ by ~1e-15 (sums of a few hundred terms) and so do the probabilities.
    with jax.enable_x64(True):
        model = models.shapes_cnn()
        _, params = model.init(jax.random.key(0), dtype=jnp.float64)
        images = jnp.asarray(make_shapes(5, seed=0)[0][0], jnp.float64)
        probs = np.asarray(predict(model, params, images))
        p = 1 / (1 + np.exp(-np.asarray(model.apply(params, images))[:, 0]))
        huge = {**params, "dense4": {**params["dense4"], "b": jnp.asarray([1e4], jnp.float64)}}
        saturated = np.asarray(predict(model, huge, images))
    assert probs.shape == (len(images), 2)
    np.testing.assert_allclose(probs[:, 1], p, rtol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(saturated, [[0.0, 1.0]] * len(images))


def test_one_image_or_a_batch() -> None:
    model = models.mnist_dense()
    _, params = model.init(jax.random.key(0))
    batch = jax.random.uniform(jax.random.key(1), (4, 28, 28, 1))
    ones = [np.asarray(predict(model, params, one)) for one in (batch[2], batch[2, :, :, 0])]
    np.testing.assert_array_equal(ones[0], ones[1])  # [H, W, C] and [H, W]: the same batch of 1
    np.testing.assert_array_equal(ones[0], np.asarray(predict(model, params, batch[2:3])))
    assert ones[0].shape == (1, 10)
    assert predict(model, params, np.asarray(batch[0], np.float64)).dtype == jnp.float32
    with jax.enable_x64(True):  # a batch of 4 runs another program: compare in float64
        params64 = model.init(jax.random.key(0), dtype=jnp.float64)[1]
        batch64 = batch.astype(jnp.float64)
        whole = np.asarray(predict(model, params64, batch64))
        one = np.asarray(predict(model, params64, batch64[2]))
    np.testing.assert_allclose(one, whole[2:3], rtol=1e-13, atol=1e-15)


def test_one_compile_per_shape() -> None:
    model = small_cnn(classes=4)
    _, params = model.init(jax.random.key(0))
    x = jnp.ones((10, 6, 6, 1))
    with compile_log() as log:
        for _ in range(3):
            predict(model, params, x, batch_size=4)
        predict(small_cnn(classes=4), params, x + 1, batch_size=4)  # equal model, same shapes
    assert log.compiles("_predict_jit") == 1


def test_wrong_shapes_name_the_shape_the_model_was_built_for() -> None:
    model = models.mnist_cnn()
    _, params = model.init(jax.random.key(0))
    expected = r"built for input shape \(28, 28, 1\)"
    for shape in [(32, 32), (28, 28, 3), (2, 32, 32, 1), (28,), (1, 1, 28, 28, 1)]:
        with pytest.raises(ValueError, match=rf"predict: images must be one image .*{expected}"):
            predict(model, params, jnp.zeros(shape))
    images = np.zeros((8, 32, 32, 1), np.float32)
    labels = np.zeros(8, np.int32)
    message = r"train images must be \[N, 28, 28, 1\] for model 'mnist_cnn' \(built for input"
    with pytest.raises(ValueError, match="fit: " + message):
        fit(
            model,
            params,
            (images, labels),
            optimizer=make_optimizer("sgd", 0.1),
            epochs=1,
            batch_size=4,
            key=jax.random.key(0),
        )
    with pytest.raises(ValueError, match=r"evaluate: data images must be \[N, 28, 28, 1\]"):
        evaluate(model, params, (images, labels))


def test_other_errors() -> None:
    model = layers.serial(layers.Flatten, layers.Dense(2))
    _, params = model.init(jax.random.key(0), (-1, 2, 2, 1))
    with pytest.raises(ValueError, match=r"predict: model 'serial' records no input shape"):
        predict(model, params, jnp.zeros((1, 2, 2, 1)))
    recorded = layers.serial(layers.Flatten, layers.Dense(2), input_shape=(2, 2, 1))
    with pytest.raises(TypeError, match="predict: images must have a real floating dtype"):
        predict(recorded, params, np.zeros((2, 2, 1), np.uint8))
    with pytest.raises(ValueError, match="predict: batch_size must be >= 1, got 0"):
        predict(recorded, params, jnp.zeros((2, 2, 1)), batch_size=0)
