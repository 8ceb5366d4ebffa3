"""Whole models: chained manual backward == jax.grad; training on manual gradients.

The reference is ``jax.grad`` of the model rebuilt from plain lax
(:func:`tests.reference.plain_model`, with :func:`tests.reference.plain_loss`):
JAX's own derivation, sharing no code with jaxcnn, never the model as built
(its ops' custom VJPs share the manual formulas' kernels). Each layer's
formula is checked against the NumPy loop oracle in tests/manual/test_manual.py;
here the chaining is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxcnn import layers, manual, models
from jaxcnn.layers import Layer
from tests import reference

MODEL_NAMES = ["shapes", "mnist-cnn", "mnist-dense"]


def zoo_softmax() -> Layer:
    """Every layer kind and the awkward cases: stride 2, padding, overlapping pools, nesting."""
    return layers.serial(
        layers.serial(layers.Conv(3, 3, stride=2, padding="same"), layers.Relu),
        layers.AvgPool(2, stride=1),
        layers.Conv(4, (2, 3), padding=1, impl="lax"),
        layers.Relu,
        layers.MaxPool(2, stride=1),
        layers.Flatten,
        layers.Dense(5),
        layers.Relu,
        layers.Dense(3),
        kind="zoo_softmax",
        loss="softmax_cross_entropy",
    )


def zoo_sigmoid() -> Layer:
    return layers.serial(
        layers.Conv(2, 3, impl="lax"),
        layers.MaxPool(3, stride=2),
        layers.Relu,
        layers.GlobalAvgPool(),
        layers.Dense(1),
        kind="zoo_sigmoid",
        loss="binary_cross_entropy",
    )


MODELS: dict[str, Callable[[], Layer]] = {
    "shapes": models.shapes_cnn,
    "mnist-cnn": models.mnist_cnn,
    "mnist-dense": models.mnist_dense,
    "zoo-softmax": zoo_softmax,
    "zoo-sigmoid": zoo_sigmoid,
}
INPUT = {"zoo-softmax": (9, 8, 2), "zoo-sigmoid": (9, 8, 2)}


def setup(name: str, n: int, seed: int = 0, dtype: Any = jnp.float64) -> tuple[Any, ...]:
    """``(model, params, x, y, weights)`` for a model; call inside the x64 scope for float64."""
    model = MODELS[name]()
    shape = INPUT.get(name, models.IMAGE_SHAPE)
    # Jitted: eager init runs dozens of tiny ops, each compiled for its shape.
    init = jax.jit(lambda key: model.init(key, (-1, *shape))[1])
    params = jax.tree.map(lambda a: a.astype(dtype), init(jax.random.key(seed)))
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.random(size=(n, *shape)), dtype)
    if model.config["loss"] == "binary_cross_entropy":
        y = jnp.asarray(rng.integers(0, 2, size=n), dtype)
    else:
        classes = 3 if name.startswith("zoo") else 10
        y = jnp.asarray(rng.integers(0, classes, size=n))
    weights = jnp.asarray(rng.random(size=n) + 0.2, dtype)
    return model, params, x, y, weights


def autodiff_grads(model: Layer, params: Any, x: Any, y: Any, weights: Any = None) -> Any:
    """``jax.grad`` of the plain-autodiff model's loss (jitted: faster than eager, same numbers)."""
    loss = reference.plain_loss(model)
    plain = reference.plain_model(model)

    def grads(p: Any, x: Any, y: Any, w: Any) -> Any:
        return jax.grad(lambda p: loss(plain(p, x), y, w))(p)

    return jax.jit(grads)(params, x, y, weights)


def fast_grads(model: Layer, params: Any, x: Any, y: Any) -> Any:
    """``jax.grad`` of the model as built: conv and max-pool through the ops' custom VJPs."""
    loss: Callable[..., jax.Array] = models.loss_fn(model)
    return jax.jit(jax.grad(lambda p: loss(model.apply(p, x), y)))(params)


def max_abs_diff(a: Any, b: Any) -> float:
    assert str(jax.tree.structure(a)) == str(jax.tree.structure(b))
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in pairs)


def assert_trees_close(got: Any, want: Any, tol: float = 1e-10) -> None:
    assert str(jax.tree.structure(got)) == str(jax.tree.structure(want))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert a.shape == b.shape
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@functools.cache
def float64_case(name: str) -> tuple[Any, ...]:
    """Shared by the float64 tests: ``(model, params, x, y, weights, reference)``.

    ``reference`` = ``(grads, weighted grads, weighted loss)`` by ``jax.grad``
    of the plain-autodiff model, computed once per model (compiling is most of
    these tests' time). Only call inside ``jax.enable_x64(True)``.
    """
    model, params, x, y, weights = setup(name, n=3)
    loss = reference.plain_loss(model)
    plain = reference.plain_model(model)

    def by_jax(p: Any, x: Any, y: Any, w: Any) -> Any:
        def loss_of(p: Any, w: Any) -> jax.Array:
            return loss(plain(p, x), y, w)

        return jax.grad(loss_of)(p, None), *jax.value_and_grad(loss_of)(p, w)[::-1]

    return model, params, x, y, weights, jax.jit(by_jax)(params, x, y, weights)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_grads_equals_jax_grad(name: str) -> None:
    with jax.enable_x64(True):
        model, params, x, y, weights, (want, want_weighted, want_loss) = float64_case(name)

        def ours(p: Any, x: Any, y: Any, w: Any) -> Any:
            return manual.model_grads(model, p, x, y), manual.model_loss_and_grads(
                model, p, x, y, weights=w
            )

        grads, (loss, weighted) = jax.jit(ours)(params, x, y, weights)
        assert_trees_close(grads, want)
        # jax.grad of the model as built (the ops' custom VJPs) is the same gradient.
        assert_trees_close(fast_grads(model, params, x, y), want)
        assert_trees_close(weighted, want_weighted)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
        assert max_abs_diff(weighted, grads) > 1e-6  # the weights really mattered


@pytest.mark.parametrize("name", list(MODELS))
def test_with_manual_grads_is_the_same_model_with_manual_backward(name: str) -> None:
    with jax.enable_x64(True):
        model, params, x, y, weights, (_, want_weighted, want_loss) = float64_case(name)
        twin = manual.with_manual_grads(model)
        assert (twin.kind, dict(twin.config)) == (model.kind, dict(model.config))
        assert twin.init is model.init
        assert [c.kind for c in twin.children] == [c.kind for c in model.children]
        assert twin.apply is not model.apply
        loss = manual.loss_fn(twin)

        def manual_grad(p: Any, x: Any, y: Any, w: Any) -> Any:
            value = lambda p: loss(twin.apply(p, x), y, weights=w)  # noqa: E731
            return twin.apply(p, x), model.apply(p, x), jax.value_and_grad(value)(p)

        ours, plain, (value, grads) = jax.jit(manual_grad)(params, x, y, weights)
        np.testing.assert_allclose(ours, plain, rtol=1e-12)
        np.testing.assert_allclose(value, want_loss, rtol=1e-12)
        assert_trees_close(grads, want_weighted)


@pytest.mark.parametrize(
    "name", ["shapes", "mnist-dense", pytest.param("zoo-sigmoid", marks=pytest.mark.slow)]
)
def test_per_sample_gradients_average_to_the_batch_gradient(name: str) -> None:
    """The article's loop: per-sample gradients, accumulated, divided by the batch size.

    Also the regression test for a max-pool backward that compared pixels with
    the cached forward maximum: under ``jit(vmap(...))`` XLA recomputed
    ``relu(conv(x))`` with other rounding, no pixel matched, and the shapes
    model's conv gradients came out ~20% off.
    """
    with jax.enable_x64(True):
        model, params, x, y, weights = setup(name, n=5, seed=2)
        loss = reference.plain_loss(model)
        plain = reference.plain_model(model)

        def one(p: Any, xi: Any, yi: Any, apply: Any = plain) -> Any:
            return jax.grad(lambda p: loss(apply(p, xi[None]), yi[None]))(p)

        def one_manual(p: Any, xi: Any, yi: Any) -> Any:
            return manual.model_grads(model, p, xi[None], yi[None])

        def per_sample_of(fn: Any) -> Any:
            return jax.jit(jax.vmap(fn, in_axes=(None, 0, 0)))(params, x, y)

        per_sample = per_sample_of(one)
        assert_trees_close(per_sample_of(one_manual), per_sample)
        # vmap of the ops' custom VJPs (the model as built) too.
        assert_trees_close(per_sample_of(functools.partial(one, apply=model.apply)), per_sample)
        batch = autodiff_grads(model, params, x, y)
        assert_trees_close(jax.tree.map(lambda g: g.mean(axis=0), per_sample), batch)
        # Weighted: sum_n w_n g_n / sum(w) is the weighted-loss gradient.
        weighted = jax.tree.map(
            lambda g: jnp.tensordot(weights, g, axes=1) / weights.sum(), per_sample
        )
        assert_trees_close(weighted, autodiff_grads(model, params, x, y, weights))


def sgd_params(apply: Any, loss: Callable[..., jax.Array], params: Any, data: Any) -> Any:
    """A tiny jitted SGD loop over ``lax.scan`` with masked (weighted) batches."""

    def step(p: Any, batch: Any) -> tuple[Any, jax.Array]:
        x, y, w = batch
        value, grads = jax.value_and_grad(lambda p: loss(apply(p, x), y, weights=w))(p)
        return jax.tree.map(lambda a, g: a - 0.05 * g, p, grads), value

    return jax.jit(lambda p, data: lax.scan(step, p, data))(params, data)


SGD_TOL = 1e-9
"""Four float64 SGD steps, differently compiled: each gradient entry sums at most
~25,000 products (rounding <= 25,000 * 2**-53 ~ 3e-12 of the sum of magnitudes),
and four steps at lr 0.05 amplify that by far less than 100. A wrong gradient
moves the parameters by 1e-3 or more (the first assertion)."""


@pytest.mark.parametrize(
    "name",
    [
        "shapes",
        *(pytest.param(name, marks=pytest.mark.slow) for name in MODELS if name != "shapes"),
    ],
)
def test_sgd_on_manual_gradients_matches_autodiff(name: str) -> None:
    with jax.enable_x64(True):
        model, params, x, y, _ = setup(name, n=4 * 8, seed=3)
        mask = jnp.ones(32).at[-3:].set(0.0)  # a padded last batch
        data = (x.reshape(4, 8, *x.shape[1:]), y.reshape(4, 8), mask.reshape(4, 8))
        plain, plain_losses = sgd_params(
            reference.plain_model(model), reference.plain_loss(model), params, data
        )
        twin = manual.with_manual_grads(model)
        ours, our_losses = sgd_params(twin.apply, manual.loss_fn(twin), params, data)
        assert max_abs_diff(ours, params) > 1e-3  # training moved the parameters
        assert_trees_close(ours, plain, tol=SGD_TOL)
        np.testing.assert_allclose(our_losses, plain_losses, rtol=SGD_TOL)
        fast, fast_losses = sgd_params(model.apply, models.loss_fn(model), params, data)
        assert_trees_close(fast, plain, tol=SGD_TOL)  # the ops' custom VJPs
        np.testing.assert_allclose(fast_losses, plain_losses, rtol=SGD_TOL)
        if name == "shapes":  # manual layers with the ops loss (what fit may pair them with)
            also = sgd_params(twin.apply, models.loss_fn(model), params, data)[0]
            assert_trees_close(also, plain, tol=SGD_TOL)


def test_the_reference_model_has_no_custom_vjp() -> None:
    """The reference is independent: JAX derives every gradient of it (and of it only)."""
    model = models.mnist_cnn()
    _, params = model.init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
    x = jnp.zeros((2, *models.IMAGE_SHAPE))
    assert "custom_vjp_call" in str(jax.make_jaxpr(model.apply)(params, x))
    plain = reference.plain_model(model)
    assert "custom_vjp_call" not in str(jax.make_jaxpr(plain)(params, x))
    # Two programs (plain lax and jaxcnn's convolutions): float64, where their logits
    # (sums of up to 9,216 terms) agree to ~1e-12, not float32 with a tolerance found here.
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64 = jnp.full((2, *models.IMAGE_SHAPE), 0.5, jnp.float64)
        np.testing.assert_allclose(
            plain(params64, x64), model.apply(params64, x64), rtol=1e-9, atol=1e-12
        )


def test_model_grads_rejects_unknown_layers() -> None:
    odd = layers.Layer(lambda key, shape: (shape, {}), lambda p, x: x * 2, "double")
    model = layers.serial(layers.Flatten, odd, layers.Dense(2), loss="softmax_cross_entropy")
    _, params = model.init(jax.random.key(0), (-1, 4, 4, 1))
    x, y = jnp.ones((2, 4, 4, 1)), jnp.asarray([0, 1])
    with pytest.raises(ValueError, match=r"model_grads: layer kind must be one of .*got 'double'"):
        manual.model_grads(model, params, x, y)
    with pytest.raises(ValueError, match=r"with_manual_grads: layer kind must be one of"):
        manual.with_manual_grads(model)
