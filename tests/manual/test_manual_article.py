"""The article's own backward pass has three slips; each would be caught by model_grads == jax.grad.

1. Un-flatten order: the forward flattens channel-major (all of channel 0,
   then channel 1), but ``backward`` un-flattens with ``grad.reshape(14, 14, 2)``
   (channels-last order), scrambling the gradient that reaches the pooling layer.
2. ``Conv2D.backward`` never sets ``grad_biases`` (``update`` uses it anyway).
3. ``Conv2D.backward`` returns no input gradient: harmless for a first layer,
   wrong as soon as convolutions are stacked.

Each test puts the slip into ``model_grads`` and shows which gradients go wrong.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import manual, ops
from jaxcnn.manual import _conv as _manual_conv
from tests.manual.test_manual_model import float64_case


def article_unflatten(g: jax.Array, x_shape: Any) -> jax.Array:
    """``grad.reshape(14, 14, 2)`` per example: reads the vector in (row, col, channel) order."""
    return g.reshape(x_shape)


def model_grads(model: Any, params: Any, x: Any, y: Any) -> Any:
    """``manual.model_grads``, jitted (traced afresh, so monkeypatches apply)."""
    return jax.jit(lambda p, x, y: manual.model_grads(model, p, x, y))(params, x, y)


def close(a: Any, b: Any) -> bool:
    return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12))


def test_article_unflatten_is_not_the_inverse_of_its_flatten() -> None:
    x = jnp.arange(2 * 14 * 14 * 2.0).reshape(2, 14, 14, 2)
    flat = ops.flatten(x)
    np.testing.assert_array_equal(manual.flatten_backward(flat, x.shape), x)
    assert not np.array_equal(article_unflatten(flat, x.shape), x)
    # The article's slip only agrees with a channels-last flatten, which it did not use:
    np.testing.assert_array_equal(article_unflatten(x.reshape(2, -1), x.shape), x)


def test_article_unflatten_slip_is_caught_by_the_gradient_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with jax.enable_x64(True):
        model, params, x, y, _, (want, _, _) = float64_case("shapes")
        right = model_grads(model, params, x, y)
        monkeypatch.setattr("jaxcnn.manual._model.flatten_backward", article_unflatten)
        slipped = model_grads(model, params, x, y)
    assert close(right["conv0"]["w"], want["conv0"]["w"])
    assert not close(slipped["conv0"]["w"], want["conv0"]["w"])  # below the flatten: wrong
    assert not close(slipped["conv0"]["b"], want["conv0"]["b"])
    assert close(slipped["dense4"]["w"], want["dense4"]["w"])  # above it: unaffected


def without_bias_gradient(*args: Any, **kwargs: Any) -> tuple[jax.Array, ...]:
    dx, dw, db = _manual_conv.conv2d_backward(*args, **kwargs)
    return dx, dw, jnp.zeros_like(db)


def without_input_gradient(*args: Any, **kwargs: Any) -> tuple[jax.Array, ...]:
    dx, dw, db = _manual_conv.conv2d_backward(*args, **kwargs)
    return jnp.zeros_like(dx), dw, db


def test_missing_conv_bias_gradient_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jaxcnn.manual._model.conv2d_backward", without_bias_gradient)
    with jax.enable_x64(True):
        model, params, x, y, _, (want, _, _) = float64_case("shapes")
        slipped = model_grads(model, params, x, y)
    assert close(slipped["conv0"]["w"], want["conv0"]["w"])
    assert not close(slipped["conv0"]["b"], want["conv0"]["b"])


def test_missing_input_gradient_is_fine_for_one_conv_and_wrong_for_two(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("jaxcnn.manual._model.conv2d_backward", without_input_gradient)
    with jax.enable_x64(True):
        shapes, params, x, y, _, (want, _, _) = float64_case("shapes")
        single = model_grads(shapes, params, x, y)
        mnist, params, x, y, _, (want_mnist, _, _) = float64_case("mnist-cnn")
        stacked = model_grads(mnist, params, x, y)
    # The shapes CNN has one conv, fed by the image: nothing needs its dx.
    assert all(jax.tree.leaves(jax.tree.map(close, single, want)))
    # The MNIST CNN's first conv learns from the second conv's dx, now zero.
    assert close(stacked["conv3"]["w"], want_mnist["conv3"]["w"])
    assert not close(stacked["conv0"]["w"], want_mnist["conv0"]["w"])
    np.testing.assert_array_equal(stacked["conv0"]["w"], 0.0)
