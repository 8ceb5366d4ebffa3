"""Streamed data (``ImageRows``, ``numpy.memmap``): fit, evaluate and the validation split.

A streamed epoch is fed from the host a chunk of steps at a time, through the same
step function as the in-memory epoch, over the same batch plan: the parameters and
the history must be bit-identical to training on the same arrays in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from PIL import Image

from jaxcnn import layers, models, train
from jaxcnn.data import ImageRows, load_data
from jaxcnn.train import _feed
from tests.data.images import random_rgb, write_image


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("streamed")
    for c, name in enumerate(("a", "b", "c")):
        for i in range(14):
            pixels = random_rgb(6, 5, seed=50 * c + i)
            pixels[..., c] //= 4  # something to learn: each class darker in one channel
            write_image(root / "photos" / name / f"{i}.png", Image.fromarray(pixels))
    return load_data(root / "photos", cache_dir=root / "cache")


def tiny_model() -> layers.Layer:
    return layers.serial(
        layers.Conv(2, 3, padding="same"),
        layers.Relu,
        layers.Flatten,
        layers.Dense(3),
        input_shape=(6, 5, 3),
        loss="softmax_cross_entropy",
    )


def in_memory(split: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(split[0]), split[1]


def fit_three(model: layers.Layer, train_set: Any, val: Any) -> train.FitResult:
    params = models.init_params(model, jax.random.key(0))
    return train.fit(
        model,
        params,
        train_set,
        val=val,
        optimizer=train.make_optimizer("sgd", 0.1),
        epochs=3,
        batch_size=5,
        key=jax.random.key(1),
        progress=False,
    )


def assert_same(a: train.FitResult, b: train.FitResult) -> None:
    assert a.history == b.history
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_streamed_fit_is_bit_identical_to_the_in_memory_fit(
    folder_data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(folder_data.train[0], ImageRows)
    assert _feed.is_streamed(folder_data.train[0])
    model = tiny_model()
    memory = fit_three(model, in_memory(folder_data.train), in_memory(folder_data.test))
    streamed = fit_three(model, folder_data.train, folder_data.test)
    assert_same(streamed, memory)
    monkeypatch.setattr(_feed, "FEED_CHUNK_BYTES", 1)  # one step per chunk: many chunks
    assert _feed.chunk_steps(5, (6, 5, 3)) == 1
    assert_same(fit_three(model, folder_data.train, folder_data.test), memory)
    for data in (folder_data.test, in_memory(folder_data.test)):
        assert train.evaluate(model, memory.params, data, batch_size=4) == train.evaluate(
            model, memory.params, in_memory(folder_data.test), batch_size=4
        )


def test_a_memmap_is_streamed_too(folder_data: Any, tmp_path: Path) -> None:
    images = np.asarray(folder_data.train[0])
    path = tmp_path / "x.npy"
    np.save(path, images)
    mapped = np.load(path, mmap_mode="r")
    assert _feed.is_streamed(mapped)
    assert not _feed.is_streamed(images)
    model = tiny_model()
    assert_same(
        fit_three(model, (mapped, folder_data.train[1]), None),
        fit_three(model, (images, folder_data.train[1]), None),
    )


def test_the_validation_split_of_streamed_data_stays_streamed(folder_data: Any) -> None:
    key = jax.random.key(3)
    train_part, val_part = train.validation_split(folder_data.train, 0.25, key=key)
    assert isinstance(train_part[0], ImageRows)
    assert isinstance(val_part[0], ImageRows)
    want_train, want_val = train.validation_split(in_memory(folder_data.train), 0.25, key=key)
    np.testing.assert_array_equal(np.asarray(train_part[0]), want_train[0])
    np.testing.assert_array_equal(np.asarray(val_part[0]), want_val[0])
    np.testing.assert_array_equal(val_part[1], want_val[1])
