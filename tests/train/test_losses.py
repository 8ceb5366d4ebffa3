"""``loss=`` in fit, evaluate and make_epoch_fn: names, functions, the model's default, errors."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcnn import layers, manual, ops
from jaxcnn.data import make_shapes
from jaxcnn.train import evaluate, fit, make_epoch_fn, make_optimizer
from tests import rounding

NAMES = r"\['binary_cross_entropy', 'softmax_cross_entropy'\]"


def no_loss_model(outputs: int = 2) -> layers.Layer:
    """The issue's model: built from jaxcnn.layers, naming no loss."""
    return layers.serial(
        layers.Conv(2, 3, padding="same"),
        layers.Relu,
        layers.MaxPool(2),
        layers.Flatten,
        layers.Dense(outputs),
        input_shape=(28, 28, 1),
    )


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any]:
    (train, _) = make_shapes(30, seed=1, test_fraction=0.2)  # 48 images
    return train


def quick_fit(model: layers.Layer, data: Any, **kwargs: Any) -> Any:
    _, params = model.init(jax.random.key(0))
    options = {"optimizer": make_optimizer("sgd", 0.1), "epochs": 2, "batch_size": 16}
    return fit(model, params, data, key=jax.random.key(1), progress=False, **options | kwargs)


def test_a_model_naming_no_loss_needs_one_and_says_how(data: Any) -> None:
    model = no_loss_model()
    with pytest.raises(ValueError, match=r"^fit: model 'serial' names no loss") as err:
        quick_fit(model, data)
    for part in ["pass fit(..., loss=NAME)", "serial(..., loss=NAME)", "binary_cross_entropy"]:
        assert part in str(err.value)
    _, params = model.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"evaluate: .* pass evaluate\(\.\.\., loss=NAME\)"):
        evaluate(model, params, data)


def test_a_loss_name_trains_a_model_that_names_none(data: Any) -> None:
    _, history = quick_fit(no_loss_model(), data, loss="softmax_cross_entropy", epochs=3)
    assert history["train_loss"][-1] < history["train_loss"][0]
    _, history = quick_fit(no_loss_model(1), data, loss="binary_cross_entropy", epochs=3)
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_a_loss_function_is_what_fit_and_evaluate_use(data: Any) -> None:
    def doubled(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
        return 2 * ops.softmax_cross_entropy(logits, labels, weights)

    model, frozen = no_loss_model(), optax.sgd(0.0)  # params never move: every batch comparable
    named = quick_fit(model, data, loss="softmax_cross_entropy", optimizer=frozen, val=data)
    mine = quick_fit(model, data, loss=doubled, optimizer=frozen, val=data)
    # Doubling is exact, but the two losses compile to two programs, which may sum the same
    # 48 positive per-example losses in other orders: within 2 gamma(48 + 4) of each other
    # (the sum, the batch means and the epoch mean), far from a factor of 2.
    rtol = 2 * rounding.gamma(len(data[1]) + 4)
    for name in ("train_loss", "val_loss"):
        np.testing.assert_allclose(
            mine.history[name], 2 * np.asarray(named.history[name]), rtol=rtol
        )
    assert mine.history["train_accuracy"] == named.history["train_accuracy"]  # hit counts
    params = named.params
    np.testing.assert_allclose(
        evaluate(model, params, data, loss=doubled).loss,
        2 * evaluate(model, params, data, loss="softmax_cross_entropy").loss,
        rtol=rtol,
    )


def test_a_loss_function_has_no_manual_backward(data: Any) -> None:
    def mine(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
        return ops.softmax_cross_entropy(logits, labels, weights)

    match = r"fit: manual gradients need a named loss, one of .*grads='autodiff'"
    with pytest.raises(ValueError, match=match):
        quick_fit(no_loss_model(), data, loss=mine, grads="manual")
    _, params = no_loss_model().init(jax.random.key(0))
    with pytest.raises(ValueError, match="model_grads: manual gradients need a named loss"):
        manual.model_grads(no_loss_model(), params, data[0][:2], data[1][:2], loss=mine)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("loss", "error", "match"),
    [
        ("mse", ValueError, rf"fit: loss must be one of {NAMES} or a function \(logits, "),
        (3, TypeError, rf"fit: loss must be one of {NAMES} .*got 3"),
        (
            lambda logits, labels, weights: jnp.sum(logits, axis=1),
            ValueError,
            r"fit: loss must return a scalar \(the weighted mean over the batch\), got shape",
        ),
    ],
    ids=["unknown name", "not a name", "not a scalar"],
)
def test_bad_losses(data: Any, loss: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        quick_fit(no_loss_model(), data, loss=loss)


def test_manual_grads_of_a_named_loss_match_autodiff() -> None:
    model = no_loss_model(1)
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        _, params = model.init(jax.random.key(0), dtype=jnp.float64)
        x = jnp.asarray(rng.random((5, 28, 28, 1)))
        y = jnp.asarray(rng.integers(0, 2, 5), jnp.float64)
        got = manual.model_grads(model, params, x, y, loss="binary_cross_entropy")
        want = jax.grad(lambda p: ops.binary_cross_entropy(model.apply(p, x), y))(params)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        with pytest.raises(ValueError, match=r"model_grads: model 'serial' names no loss"):
            manual.model_grads(model, params, x, y)


def test_manual_training_with_a_loss_name(data: Any) -> None:
    _, history = quick_fit(no_loss_model(), data, loss="softmax_cross_entropy", grads="manual")
    assert len(history["train_loss"]) == 2


def test_equal_losses_share_one_compiled_epoch() -> None:
    model, sgd = no_loss_model(), make_optimizer("sgd", 0.1)

    def spec(loss: Any) -> Any:
        epoch_fn = make_epoch_fn(model, sgd, batch_size=8, loss=loss)
        assert isinstance(epoch_fn, functools.partial)  # the shared jitted epoch, keyed on spec
        return epoch_fn.keywords["spec"]

    def mine(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
        return ops.softmax_cross_entropy(logits, labels, weights)

    assert spec("softmax_cross_entropy") == spec("softmax_cross_entropy")
    assert hash(spec("softmax_cross_entropy")) == hash(spec("softmax_cross_entropy"))
    assert spec(mine) == spec(mine)
    assert spec(mine) != spec(lambda logits, labels, weights: mine(logits, labels, weights))
    assert spec(mine) != spec("softmax_cross_entropy")
