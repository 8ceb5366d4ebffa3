"""The bad-data matrix: every bad sample is an error naming it, before anything compiles.

A NaN pixel used to surface as "training diverged (try a smaller learning
rate)", and a label outside the model's classes trained or evaluated with no
error at all. Here each is refused by ``fit`` / ``evaluate`` with the argument,
the first bad index and its value, and no epoch is compiled.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxcnn import models
from jaxcnn.errors import InputError, InputTypeError
from jaxcnn.layers import Conv, serial
from jaxcnn.train import check_dataset, check_images, evaluate, fit, make_optimizer
from tests.compile_count import compile_log

SHAPES = models.shapes_cnn()  # one logit: labels 0/1
MNIST = models.mnist_dense()  # ten logits: labels 0..9
SGD = make_optimizer("sgd", 0.1)


def params_of(model: Any) -> Any:
    return models.init_params(model, jax.random.key(0))


def data(n: int = 320, classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.random((n, 28, 28, 1), dtype=np.float32)
    return images, rng.integers(0, classes, n).astype(np.int32)


def with_pixel(value: float, index: int, pixel: tuple[int, int, int]) -> Any:
    images, labels = data()
    images[(index, *pixel)] = value
    return images, labels


def with_label(value: Any, index: int, classes: int = 2, dtype: Any = np.int32) -> Any:
    images, labels = data(classes=classes)
    labels = labels.astype(dtype)
    labels[index] = value
    return images, labels


def run_fit(model: Any, train: Any, val: Any = None) -> None:
    fit(
        model,
        params_of(model),
        train,
        val=val,
        optimizer=SGD,
        epochs=1,
        batch_size=32,
        key=jax.random.key(0),
        progress=False,
    )


# (model, train, val, error type, message): the findings, each a row.
MATRIX: dict[str, tuple[Any, Any, Any, type, str]] = {
    "nan pixel among 320": (
        SHAPES,
        with_pixel(np.nan, 123, (4, 5, 0)),
        None,
        InputError,
        r"fit: train images\[123\] holds nan at pixel \(4, 5, 0\) .* must be finite",
    ),
    "inf pixel": (
        SHAPES,
        with_pixel(np.inf, 0, (0, 0, 0)),
        None,
        InputError,
        r"fit: train images\[0\] holds inf at pixel \(0, 0, 0\)",
    ),
    "-inf pixel, last sample": (
        SHAPES,
        with_pixel(-np.inf, 319, (27, 27, 0)),
        None,
        InputError,
        r"fit: train images\[319\] holds -inf at pixel \(27, 27, 0\)",
    ),
    "label 10 on the mnist model": (
        MNIST,
        with_label(10, 77, classes=10),
        None,
        InputError,
        r"fit: train labels\[77\] is 10; labels must be in \[0, 10\)",
    ),
    "label 255 on the mnist model": (
        MNIST,
        with_label(255, 3, classes=10, dtype=np.uint8),
        None,
        InputError,
        r"fit: train labels\[3\] is 255; labels must be in \[0, 10\)",
    ),
    "label -1 on the mnist model": (
        MNIST,
        with_label(-1, 200, classes=10),
        None,
        InputError,
        r"fit: train labels\[200\] is -1; labels must be in \[0, 10\)",
    ),
    "label 2 on the two-class model": (
        SHAPES,
        with_label(2, 9),
        None,
        InputError,
        r"fit: train labels\[9\] is 2; labels must be 0 or 1",
    ),
    "label -1 on the two-class model": (
        SHAPES,
        with_label(-1, 10),
        None,
        InputError,
        r"fit: train labels\[10\] is -1; labels must be 0 or 1",
    ),
    "label 0.5 on the two-class model": (
        SHAPES,
        with_label(0.5, 11, dtype=np.float32),
        None,
        InputError,
        r"fit: train labels\[11\] is 0.5; labels must be 0 or 1",
    ),
    "all labels 5 on the two-class model": (
        SHAPES,
        (data()[0], np.full(320, 5, np.int32)),
        None,
        InputError,
        r"fit: train labels\[0\] is 5; labels must be 0 or 1",
    ),
    "a nan pixel in val only": (
        SHAPES,
        data(),
        with_pixel(np.nan, 42, (1, 2, 0)),
        InputError,
        r"fit: val images\[42\] holds nan at pixel \(1, 2, 0\)",
    ),
    "label 10 in val only": (
        MNIST,
        data(classes=10),
        with_label(10, 5, classes=10),
        InputError,
        r"fit: val labels\[5\] is 10; labels must be in \[0, 10\)",
    ),
    "float labels on the mnist model": (
        MNIST,
        with_label(1.0, 0, classes=10, dtype=np.float32),
        None,
        InputTypeError,
        r"fit: train labels must be integer class ids, got dtype float32",
    ),
    "counts differ": (
        SHAPES,
        (data()[0], data()[1][:319]),
        None,
        InputError,
        r"fit: train labels must have shape \(N,\) = \(320,\), got \(319,\)",
    ),
}


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_fit_refuses_bad_data_before_compiling(case: str) -> None:
    model, train, val, error, match = MATRIX[case]
    with compile_log() as log, pytest.raises(error, match=match) as info:
        run_fit(model, train, val)
    assert "learning rate" not in str(info.value)
    assert log.compiles("_train_epoch") == 0
    assert log.compiles("_evaluate_jit") == 0


@pytest.mark.parametrize("case", [c for c in sorted(MATRIX) if MATRIX[c][2] is None])
def test_evaluate_refuses_the_same_bad_data(case: str) -> None:
    model, train, _, error, match = MATRIX[case]
    match = match.replace("fit: train", "evaluate: data")
    with compile_log() as log, pytest.raises(error, match=match):
        evaluate(model, params_of(model), train)
    assert log.compiles("_evaluate_jit") == 0


@pytest.mark.parametrize(
    ("model", "labels"),
    [
        (SHAPES, np.array([0, 1, 1, 0], np.int64)),
        (SHAPES, np.array([0.0, 1.0, 1.0, 0.0], np.float32)),
        (SHAPES, np.array([False, True, True, False])),
        (MNIST, np.array([0, 9, 5, 3], np.uint8)),
        (MNIST, np.array([0, 9, 5, 3], np.int64)),
    ],
)
def test_valid_labels_of_every_kind_pass(model: Any, labels: np.ndarray) -> None:
    images = data(4)[0]
    checked_images, checked = check_dataset(
        "fit", "train", (images, labels), model=model, params=params_of(model)
    )
    np.testing.assert_array_equal(np.asarray(checked_images), images)
    np.testing.assert_array_equal(np.asarray(checked), labels.astype(np.asarray(checked).dtype))


def test_only_the_first_bad_sample_is_named_and_values_are_reported_exactly() -> None:
    images, labels = data(classes=10)
    labels[[30, 40]] = [12, -3]
    images[[50, 60], 0, 0, 0] = [np.inf, np.nan]
    with pytest.raises(InputError, match=r"images\[50\] holds inf"):
        check_dataset("f", "d", (images, labels), model=MNIST, params=params_of(MNIST))
    images = data()[0]
    with pytest.raises(InputError, match=r"labels\[30\] is 12;"):
        check_dataset("f", "d", (images, labels), model=MNIST, params=params_of(MNIST))


def test_non_finite_params_are_refused_by_fit_and_evaluate() -> None:
    params = params_of(SHAPES)
    params["dense4"]["w"] = params["dense4"]["w"].at[3, 0].set(np.nan)
    match = r"params\['dense4'\]\['w'\]\[3, 0\] is nan; parameters must be finite"
    with pytest.raises(InputError, match="fit: " + match):
        fit(
            SHAPES,
            params,
            data(),
            optimizer=SGD,
            epochs=1,
            batch_size=32,
            key=jax.random.key(0),
            progress=False,
        )
    with pytest.raises(InputError, match="evaluate: " + match):
        evaluate(SHAPES, params, data())


def test_images_for_prediction_are_checked_alone() -> None:
    images = data()[0]
    assert check_images("predict", "images", images).shape == images.shape
    images[2, 3, 4, 0] = np.nan
    message = "predict: images[2] holds nan at pixel (3, 4, 0)"
    with pytest.raises(InputError, match=re.escape(message)):
        check_images("predict", "images", images)
    with pytest.raises(InputError, match="predict: images must hold at least one sample"):
        check_images("predict", "images", images[:0])


def test_a_model_that_does_not_output_logits_is_named() -> None:
    model = serial(Conv(2, 3), loss="softmax_cross_entropy")
    _, params = model.init(jax.random.key(0), (-1, 28, 28, 1))
    with pytest.raises(InputError, match=r"fit: the model must map images .* to logits \[N, K\]"):
        check_dataset("fit", "train", data(4), model=model, params=params)


def test_a_batch_larger_than_the_data_is_clamped_to_it_bit_for_bit() -> None:
    # 70 samples: a batch of 2**31 - 1 is the same single full-batch step as a batch of 70,
    # compiled once for 70 (never allocating the padding).
    train = data(70)
    params = params_of(SHAPES)
    results = []
    with compile_log() as log:
        for batch_size in (70, 2**31 - 1, 10**9):
            result = fit(
                SHAPES,
                params,
                train,
                optimizer=SGD,
                epochs=2,
                batch_size=batch_size,
                key=jax.random.key(3),
                progress=False,
            )
            results.append(result)
    assert log.compiles("_train_epoch") <= 1  # 0 if another test compiled batch 70 already
    first = jax.tree.leaves(results[0].params)
    for other in results[1:]:
        assert other.history == results[0].history
        for a, b in zip(first, jax.tree.leaves(other.params), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@settings(max_examples=40)
@given(
    shape=st.sampled_from([(1, 1, 1, 1), (5, 3, 4, 2), (33, 28, 28, 1)]),
    bad=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from([np.nan, np.inf, -np.inf])),
        max_size=3,
    ),
    dtype=st.sampled_from([np.float32, np.float16]),
    scale=st.sampled_from([1.0, 6e4]),
)
def test_the_first_non_finite_sample_is_found_wherever_it_is(
    shape: tuple[int, ...], bad: list[tuple[float, float]], dtype: Any, scale: float
) -> None:
    # The oracle: NumPy's isfinite, sample by sample. Large finite values must pass.
    rng = np.random.default_rng(len(bad))
    images = (scale * (rng.random(shape) - 0.5)).astype(dtype)
    flat = images.reshape(-1)
    for where, value in bad:
        flat[int(where * flat.size)] = value
    bad_samples = np.flatnonzero(~np.isfinite(images.reshape(shape[0], -1)).all(axis=1))
    if bad_samples.size == 0:
        check_images("f", "x", images)
        return
    with pytest.raises(InputError, match=rf"f: x\[{bad_samples[0]}\] holds (nan|inf|-inf) at"):
        check_images("f", "x", images)
