"""``manual.input_gradient``: d class score / d image by the chained manual formulas.

References: ``jax.grad`` with respect to the input of the plain-autodiff model
(:func:`tests.reference.plain_model`: conv and max-pool as JAX
differentiates ``lax`` itself, no custom VJP), and ``jax.grad`` of the model
as built, both in float64.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import manual
from tests.manual.test_manual_model import MODELS, setup
from tests.reference import plain_model

TOL = 1e-10


def class_scores(logits: jax.Array, target: jax.Array) -> jax.Array:
    """Each image's score for its target: the target's logit, or +-z for one logit."""
    if logits.shape[1] == 1:
        return jnp.where(target == 1, logits[:, 0], -logits[:, 0])
    return jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]


@functools.partial(jax.jit, static_argnums=0)
def reference(apply: Any, params: Any, x: jax.Array, target: jax.Array) -> jax.Array:
    """``jax.grad`` of the summed scores w.r.t. ``x`` (images are independent)."""
    return jax.grad(lambda x: jnp.sum(class_scores(apply(params, x), target)))(x)


input_gradient = jax.jit(manual.input_gradient, static_argnums=0)
"""Jitted: eager, every op of the chain would compile on its own."""


def predicted(logits: jax.Array) -> jax.Array:
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).astype(jnp.int32)
    return jnp.argmax(logits, axis=1).astype(jnp.int32)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "mnist-cnn" else n for n in MODELS],
)
def test_input_gradient_equals_jax_grad_of_the_plain_lax_forward(name: str) -> None:
    with jax.enable_x64(True):
        model, params, x, _, _ = setup(name, n=3, seed=4)
        plain = plain_model(model)
        logits = plain(params, x)
        classes = max(2, logits.shape[1])
        for target in (predicted(logits), (predicted(logits) + 1) % classes):
            want = reference(plain, params, x, target)
            got = input_gradient(model, params, x, target=target)
            assert got.shape == x.shape
            assert got.dtype == jnp.float64
            np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
            assert float(jnp.max(jnp.abs(want))) > 1e-3  # a gradient worth comparing
        # The default target is the predicted class.
        default = input_gradient(model, params, x)
        want = reference(plain, params, x, predicted(logits))
        np.testing.assert_allclose(default, want, rtol=TOL, atol=TOL)
        # jax.grad through the model as built (the ops' custom VJPs) agrees too.
        built = reference(model.apply, params, x, predicted(logits))
        np.testing.assert_allclose(built, want, rtol=TOL, atol=TOL)


def test_each_row_is_that_image_alone_the_per_sample_recipe() -> None:
    # vmap over single images needs a batch axis: x[None] inside, [0] outside.
    with jax.enable_x64(True):
        model, params, x, _, _ = setup("shapes", n=4, seed=5)
        batch = input_gradient(model, params, x)

        def one(xi: jax.Array) -> jax.Array:
            return manual.input_gradient(model, params, xi[None])[0]

        per_image = jax.jit(jax.vmap(one))(x)
        np.testing.assert_allclose(per_image, batch, rtol=TOL, atol=TOL)
        alone = input_gradient(model, params, x[2:3])
        np.testing.assert_allclose(alone[0], batch[2], rtol=TOL, atol=TOL)


def test_one_logit_classes_have_opposite_gradients() -> None:
    # For a sigmoid model the two classes' scores are z and -z.
    with jax.enable_x64(True):
        model, params, x, _, _ = setup("shapes", n=2, seed=6)
        ones = input_gradient(model, params, x, target=jnp.ones(2, jnp.int32))
        zeros = input_gradient(model, params, x, target=jnp.zeros(2, jnp.int32))
        np.testing.assert_array_equal(np.asarray(ones), -np.asarray(zeros))


@pytest.fixture(scope="module")
def shapes32() -> tuple[Any, Any]:
    model, params, _, _, _ = setup("shapes", n=1, dtype=jnp.float32)
    return model, params


@pytest.mark.parametrize(
    ("x", "target", "error", "match"),
    [
        (np.zeros((28, 28, 1)), None, ValueError, r"input_gradient: x must be 4-D"),
        (np.zeros((2, 28, 28, 1), np.int32), None, TypeError, "x must have a real floating"),
        (np.zeros((2, 28, 28, 1)), np.zeros(2), TypeError, "target must hold integer classes"),
        (np.zeros((2, 28, 28, 1)), np.zeros(3, np.int32), ValueError, r"target must have shape"),
        (np.zeros((2, 28, 28, 1)), np.array([0, 2]), ValueError, r"in \[0, 2\), got values"),
        (np.zeros((2, 28, 28, 1)), np.array([-1, 0]), ValueError, r"in \[0, 2\), got values"),
    ],
)
def test_input_gradient_rejects_bad_arguments(
    shapes32: tuple[Any, Any], x: Any, target: Any, error: type, match: str
) -> None:
    model, params = shapes32
    with pytest.raises(error, match=match):
        manual.input_gradient(model, params, np.asarray(x, x.dtype), target=target)
