"""Training controls: optimizers and schedules by hand-derived formulas, validation split,
best epoch and early stopping, ``fit``'s result, ``TrainConfig``'s new settings."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import models
from jaxcnn.data import make_shapes
from jaxcnn.train import (
    MONITORS,
    Best,
    EpochEnd,
    FitResult,
    TrainConfig,
    best_epoch,
    fit,
    make_optimizer,
    should_stop,
    validation_split,
)
from tests import rounding

MODEL = models.shapes_cnn()
Data = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def small() -> tuple[Data, Data]:
    """70 training images (35 per class) and 10 test images."""
    return make_shapes(40, seed=1, test_fraction=0.125)


def init_params(seed: int = 0) -> Any:
    return models.init_params(MODEL, jax.random.key(seed))


def sgd_steps(optimizer: Any, steps: int, params: Any, grad: Any) -> np.ndarray:
    """``steps`` updates with a constant gradient; returns every step's update ``[steps, n]``."""
    p = {"w": jnp.asarray(params, jnp.float32)}
    state = optimizer.init(p)
    updates = []
    for _ in range(steps):
        with jax.numpy_dtype_promotion("standard"):
            update, state = optimizer.update({"w": jnp.asarray(grad, jnp.float32)}, state, p)
        updates.append(np.asarray(update["w"]))
    return np.stack(updates)


# ------------------------------------------------------------------ optimizers


def test_sgd_weight_decay_is_an_l2_term_in_the_gradient() -> None:
    p, g = np.array([1.0, -2.0], np.float32), np.array([0.5, 0.25], np.float32)
    (update,) = sgd_steps(make_optimizer("sgd", 0.1, weight_decay=0.01), 1, p, g)
    np.testing.assert_allclose(update, -0.1 * (g + 0.01 * p), rtol=1e-6)


def test_adamw_first_step_by_hand() -> None:
    # Step 1: m = (1 - b1) g, v = (1 - b2) g^2, bias-corrected m / (1 - b1) = g, v -> g^2,
    # so adam's direction is g / (|g| + eps); adamw adds weight_decay * p, times -lr.
    p, g = np.array([1.0, -2.0, 3.0], np.float32), np.array([0.5, -0.25, 2.0], np.float32)
    lr, decay, eps = 0.01, 0.1, 1e-8
    (update,) = sgd_steps(make_optimizer("adamw", lr, weight_decay=decay), 1, p, g)
    np.testing.assert_allclose(update, -lr * (g / (np.abs(g) + eps) + decay * p), rtol=1e-5)
    default = make_optimizer("adamw", lr)  # optax's default decay, 1e-4
    (update,) = sgd_steps(default, 1, p, g)
    np.testing.assert_allclose(update, -lr * (g / (np.abs(g) + eps) + 1e-4 * p), rtol=1e-5)


def cosine(lr: float, t: np.ndarray, total: int) -> np.ndarray:
    return lr * 0.5 * (1 + np.cos(np.pi * np.minimum(t, total) / total))


def schedule_tolerance(lr: float) -> float:
    """How far optax's float32 schedule may sit from the float64 formula, derived.

    The angle ``pi * t / T`` takes three float32 roundings (pi, the product, the
    quotient): off by ``3 u pi`` at most, which moves the cosine by as much. The
    cosine itself, ``1 +``, the power and the products add a few ``u`` each (16 u
    allowed). All of it is scaled by ``lr / 2``.
    """
    return 0.5 * lr * (3 * np.pi + 16) * rounding.unit_roundoff(np.float32)


def test_cosine_schedule_by_hand() -> None:
    lr, total = 0.2, 10
    updates = sgd_steps(make_optimizer("sgd", lr, schedule="cosine", total_steps=total), 12, 0, 1)
    tolerance = schedule_tolerance(lr)
    np.testing.assert_allclose(-updates, cosine(lr, np.arange(12.0), total), atol=tolerance)
    assert updates[0] == pytest.approx(-lr)
    # Decayed to zero (to the rounding of cos(float32(pi))), and stays there exactly.
    assert abs(float(updates[total])) <= tolerance
    np.testing.assert_array_equal(updates[total:], updates[total])


def test_warmup_cosine_schedule_by_hand() -> None:
    lr, total, warmup = 0.2, 20, 4
    optimizer = make_optimizer(
        "sgd", lr, schedule="warmup-cosine", total_steps=total, warmup_steps=warmup
    )
    t = np.arange(total, dtype=np.float64)
    rate = np.where(t < warmup, lr * t / warmup, cosine(lr, t - warmup, total - warmup))
    np.testing.assert_allclose(
        -sgd_steps(optimizer, total, 0, 1), rate, atol=schedule_tolerance(lr)
    )
    # The default warm-up is 5% of the steps, at least one.
    default = make_optimizer("sgd", lr, schedule="warmup-cosine", total_steps=100)
    updates = -sgd_steps(default, 6, 0, 1)
    want = [0, 0.04, 0.08, 0.12, 0.16, 0.2]
    np.testing.assert_allclose(updates[:6], want, atol=schedule_tolerance(lr))


def test_equal_settings_give_one_optimizer_object() -> None:
    assert make_optimizer("sgd", 0.1) is make_optimizer("sgd", 0.1, total_steps=50)
    assert make_optimizer("adamw", 1e-3) is make_optimizer("adamw", 1e-3, weight_decay=1e-4)
    cos = make_optimizer("sgd", 0.1, schedule="cosine", total_steps=50)
    assert cos is make_optimizer("sgd", 0.1, schedule="cosine", total_steps=50)
    assert cos is not make_optimizer("sgd", 0.1, schedule="cosine", total_steps=51)
    config = TrainConfig(model="shapes", optimizer="adamw", schedule="warmup-cosine")
    assert config.build_optimizer(100) is TrainConfig.from_dict(config.to_dict()).build_optimizer(
        100
    )
    assert config.build_optimizer(100) is make_optimizer(
        "adamw", 0.25, schedule="warmup-cosine", total_steps=100 * config.epochs
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (
            ("adam", 0.1),
            {"weight_decay": 0.01},
            r"weight_decay must be 0 with 'adam' \(use 'adamw'",
        ),
        (("sgd", 0.1), {"weight_decay": -1.0}, "weight_decay must be a finite number >= 0"),
        (("sgd", 0.1), {"weight_decay": float("nan")}, "weight_decay must be a finite number"),
        (("sgd", 0.1), {"schedule": "step"}, r"schedule must be one of \['constant', 'cosine'"),
        (("sgd", 0.1), {"schedule": "cosine"}, "schedule 'cosine' needs total_steps"),
        (("sgd", 0.1), {"schedule": "cosine", "total_steps": 0}, "total_steps must be >= 1"),
        (
            ("sgd", 0.1),
            {"schedule": "warmup-cosine", "total_steps": 10, "warmup_steps": 10},
            "warmup_steps must be fewer than total_steps=10, got 10",
        ),
        (
            ("sgd", 0.1),
            {"schedule": "cosine", "total_steps": 10, "warmup_steps": 2},
            "warmup_steps is for schedule 'warmup-cosine'",
        ),
        (("rmsprop", 0.1), {}, r"name must be one of \['sgd', 'adam', 'adamw'\]"),
    ],
)
def test_make_optimizer_rejects_bad_settings(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match="make_optimizer: " + match):
        make_optimizer(*args, **kwargs)


# ------------------------------------------------------------------ config


def test_train_config_records_the_new_settings_and_loads_old_configs() -> None:
    config = TrainConfig(
        model="shapes",
        optimizer="adamw",
        schedule="cosine",
        val_fraction=0.1,
        patience=3,
        keep_best=True,
        monitor="val_accuracy",
    )
    assert config.weight_decay == 1e-4  # the optimizer's default, resolved
    assert TrainConfig.from_dict(config.to_dict()) == config
    old = {"model": "shapes", "impl": "auto", "optimizer": "sgd", "lr": 0.25, "batch_size": 32}
    loaded = TrainConfig.from_dict({**old, "epochs": 20, "seed": 0, "grads": "autodiff"})
    assert (loaded.weight_decay, loaded.schedule, loaded.val_fraction) == (0.0, "constant", 0.0)
    assert (loaded.patience, loaded.keep_best, loaded.monitor) == (None, False, "val_loss")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patience": 2}, "patience need a validation split"),
        ({"keep_best": True}, "keep_best need a validation split"),
        ({"patience": 2, "keep_best": True}, "patience and keep_best need a validation split"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \[0, 1\), got 1.0"),
        ({"val_fraction": -0.1}, r"val_fraction must be in \[0, 1\)"),
        ({"val_fraction": 0.1, "patience": 0}, "patience must be >= 1, got 0"),
        ({"val_fraction": 0.1, "keep_best": 1}, "keep_best must be a bool, got 1"),
        ({"monitor": "loss"}, r"monitor must be one of \['val_loss', 'val_accuracy'\]"),
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"optimizer": "adam", "weight_decay": 0.1}, "weight_decay must be 0 with 'adam'"),
    ],
)
def test_train_config_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match="TrainConfig: " + match):
        TrainConfig(model="shapes", **kwargs)


def test_schedules_need_the_steps_per_epoch() -> None:
    config = TrainConfig(model="shapes", schedule="cosine")
    with pytest.raises(ValueError, match="schedule 'cosine' needs steps_per_epoch"):
        config.build_optimizer()
    assert TrainConfig(model="shapes").build_optimizer() is make_optimizer("sgd", 0.25)


# ------------------------------------------------------------------ validation split


def test_validation_split_partitions_each_class() -> None:
    labels = np.array([0] * 30 + [1] * 50 + [2] * 7, np.int32)
    images = np.arange(len(labels), dtype=np.float32).reshape(-1, 1, 1, 1) * np.ones((1, 2, 2, 1))
    (train, train_y), (val, val_y) = validation_split((images, labels), 0.2, key=jax.random.key(3))
    ids = np.concatenate([train[:, 0, 0, 0], val[:, 0, 0, 0]]).astype(int)
    assert sorted(ids) == list(range(len(labels)))  # a partition
    np.testing.assert_array_equal(labels[ids], np.concatenate([train_y, val_y]))  # pairs kept
    assert [int(np.sum(val_y == c)) for c in range(3)] == [6, 10, 1]  # round(0.2 * n_c)
    assert np.all(np.diff(train[:, 0, 0, 0]) > 0)  # original order
    assert np.all(np.diff(val[:, 0, 0, 0]) > 0)
    again = validation_split((images, labels), 0.2, key=jax.random.key(3))[1]
    np.testing.assert_array_equal(again[0], val)  # a function of the key
    other = validation_split((images, labels), 0.2, key=jax.random.key(4))[1]
    assert not np.array_equal(other[0], val)


@pytest.mark.parametrize(
    ("fraction", "match"),
    [
        (0.0, r"fraction must be in \(0, 1\), got 0"),
        (1.0, r"fraction must be in \[0, 1\), got 1.0"),
        (0.01, "fraction 0.01 of 4 samples leaves the validation part empty"),
        (0.9, "fraction 0.9 of 4 samples leaves the training part empty"),
    ],
)
def test_validation_split_rejects_empty_parts(fraction: float, match: str) -> None:
    data = (np.zeros((4, 2, 2, 1), np.float32), np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="validation_split: " + match):
        validation_split(data, fraction, key=jax.random.key(0))


# ------------------------------------------------------------------ best epoch, stopping


def test_best_epoch_is_the_first_to_reach_the_best_value() -> None:
    history = {"val_loss": [0.5, 0.3, 0.3, 0.4, 0.2, 0.2], "val_accuracy": [0.5, 0.9, 0.9, 1.0]}
    assert best_epoch(history, "val_loss") == Best(5, 0.2)
    assert best_epoch(history, "val_accuracy") == Best(4, 1.0)
    assert best_epoch({"val_loss": [float("nan"), 0.4, float("nan")]}) == Best(2, 0.4)
    assert best_epoch({"val_loss": []}) is None
    assert set(MONITORS) == {"val_loss", "val_accuracy"}


def test_should_stop_after_patience_epochs_without_improvement() -> None:
    losses = [0.5, 0.3, 0.3, 0.4, 0.2, 0.25, 0.2, 0.21]
    stops = [should_stop({"val_loss": losses[:n]}, "val_loss", 2) for n in range(len(losses) + 1)]
    # improvements at epochs 1, 2, 5: 2 epochs in a row without one after epochs 4 and 7.
    assert stops == [False, False, False, False, True, False, False, True, True]
    assert not should_stop({"val_loss": losses}, "val_loss", None)
    assert should_stop({"val_loss": [float("nan")] * 2}, "val_loss", 2)


@pytest.mark.parametrize(
    ("history", "monitor", "match"),
    [
        ({"val_loss": [1.0]}, "loss", r"monitor must be one of \['val_loss', 'val_accuracy'\]"),
        ({"train_loss": [1.0]}, "val_loss", "history has no 'val_loss' .train with val="),
    ],
)
def test_best_epoch_rejects_bad_arguments(history: dict, monitor: str, match: str) -> None:
    with pytest.raises(ValueError, match="best_epoch: " + match):
        best_epoch(history, monitor)


# ------------------------------------------------------------------ fit


def small_fit(data: tuple[Data, Data], params: Any = None, **kwargs: Any) -> FitResult:
    """``fit`` of MODEL (from ``init_params()`` unless ``params``): Adam 0.01, 30 epochs,
    batch 16, key 1, validating on ``data[1]``; ``kwargs`` override or add."""
    train, test = data
    args: dict[str, Any] = {
        "optimizer": make_optimizer("adam", 0.01),
        "epochs": 30,
        "batch_size": 16,
        "key": jax.random.key(1),
        "progress": False,
        "val": test,
    }
    return fit(MODEL, init_params() if params is None else params, train, **(args | kwargs))


def test_patience_stops_at_the_first_epoch_should_stop_names(small: tuple[Data, Data]) -> None:
    # 10 validation images: val_accuracy improves strictly at most 10 times, so with
    # patience 1 the run stops long before 30 epochs.
    ends: list[EpochEnd] = []
    result = small_fit(small, patience=1, monitor="val_accuracy", on_epoch=ends.append)
    history = result.history
    done = len(history["train_loss"])
    assert result.stopped_early
    assert result.epoch == done < 30
    assert [end.epoch for end in ends] == list(range(1, done + 1))
    for n in range(done):
        assert not should_stop({k: v[:n] for k, v in history.items()}, "val_accuracy", 1)
    assert should_stop(history, "val_accuracy", 1)
    assert result.best == best_epoch(history, "val_accuracy")
    assert result.best is not None
    best_end = ends[result.best.epoch - 1]
    for got, want in zip(
        jax.tree.leaves(result.best_params), jax.tree.leaves(best_end.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_fit_result_unpacks_and_carries_the_optimizer_state(small: tuple[Data, Data]) -> None:
    ends: list[EpochEnd] = []
    result = small_fit(small, epochs=4, on_epoch=ends.append)
    params, history = result
    assert params is result.params
    assert history is result.history
    assert len(result) == 2
    assert result[0] is params
    assert result[1] is history
    assert (result.epoch, result.stopped_early) == (4, False)
    for got, want in zip(
        jax.tree.leaves(result.opt_state), jax.tree.leaves(ends[-1].opt_state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), want)
    # Continuing from the result's state is the uninterrupted run, bit for bit.
    head = small_fit(small, epochs=2)
    tail = small_fit(
        small,
        head.params,
        epochs=4,
        opt_state=head.opt_state,
        start_epoch=2,
        history=head.history,
    )
    for got, want in zip(jax.tree.leaves(tail.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert tail.history == history
    assert tail.best == best_epoch(history)
    assert tail.best is not None
    # Parameters of a best epoch that ran before this call are not there to return.
    assert (tail.best_params is None) == (tail.best.epoch <= 2)
    assert small_fit(small, epochs=1, val=None).best is None


def test_patience_needs_val(small: tuple[Data, Data]) -> None:
    with pytest.raises(ValueError, match=r"fit: patience needs val=.* to monitor 'val_loss'"):
        small_fit(small, val=None, patience=2)
    with pytest.raises(ValueError, match="fit: patience must be >= 1, got 0"):
        small_fit(small, patience=0)
    with pytest.raises(ValueError, match="fit: monitor must be one of"):
        small_fit(small, monitor="train_loss")


def test_a_stopped_run_resumed_stays_stopped(small: tuple[Data, Data]) -> None:
    ends: list[EpochEnd] = []
    result = small_fit(small, patience=1, monitor="val_accuracy", on_epoch=ends.append)
    last = ends[-1]
    resumed = small_fit(
        small,
        last.params,
        opt_state=last.opt_state,
        start_epoch=last.epoch,
        history=last.history,
        patience=1,
        monitor="val_accuracy",
    )
    assert resumed.stopped_early
    assert resumed.epoch == result.epoch
    assert resumed.history == result.history
    assert math.isfinite(resumed.history["train_loss"][-1])
