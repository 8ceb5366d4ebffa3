"""The article's MNIST results on the real MNIST (slow; CI fetches the data first)."""

from __future__ import annotations

import jax
import pytest

from jaxcnn import models, train
from jaxcnn.data import load_mnist

pytestmark = pytest.mark.slow


def train_and_test(name: str, epochs: int, seed: int = 0, precision: str = "float32") -> float:
    """Train with the CLI's defaults for ``name`` (Adam 1e-3, batch 128); test accuracy."""
    train_data, test_data = load_mnist()
    model = models.get_model(name)
    init_key, order_key = jax.random.split(jax.random.key(seed))
    _, params = model.init(init_key, (-1, *models.IMAGE_SHAPE))
    params, history = train.fit(
        model,
        params,
        train_data,
        optimizer=train.make_optimizer("adam", 1e-3),
        epochs=epochs,
        batch_size=128,
        key=order_key,
        progress=False,
        precision=precision,
    )
    assert len(history["train_loss"]) == epochs
    return train.evaluate(model, params, test_data).accuracy


# Bounds below the spread over seeds (another CPU's rounding gives another trajectory, as
# another seed does), measured by `python scripts/accuracy_seeds.py` (docs/accuracy_seeds.json).


def test_mnist_cnn_one_epoch_reaches_97_percent() -> None:
    # Seeds 0-4: 97.91-98.47% after one epoch (the article's ~99% takes five).
    assert train_and_test("mnist-cnn", epochs=1) >= 0.97


def test_mnist_dense_reaches_97_percent() -> None:
    # Seeds 0-4: 97.68-97.79% after ten epochs.
    assert train_and_test("mnist-dense", epochs=10) >= 0.97


def test_mnist_cnn_in_bf16_reaches_float32s_accuracy_after_5_epochs() -> None:
    """Mixed precision costs no accuracy that matters.

    Seeds 0-4 after five epochs: float32 98.55-99.10%, bf16 98.88-99.05%, and bf16 minus
    float32 of the same seed -0.07 to +0.33 points: a pair of runs differs as much as two
    seeds do, so the bounds sit below the spread of each (the earlier 0.3-point bound on the
    difference failed for seed 2).
    """
    float32 = train_and_test("mnist-cnn", epochs=5)
    bf16 = train_and_test("mnist-cnn", epochs=5, precision="bf16")
    assert float32 >= 0.98
    assert bf16 >= 0.98
    assert bf16 >= float32 - 0.01
