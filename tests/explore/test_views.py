"""The page's computations against independent references (the browser tests check the page
shows exactly these numbers; these tests check the numbers).

* Views 1 and 2 (kernels, matching, sliding) against the NumPy float64 loops of
  :mod:`tests.oracle`, in float64 (to 1e-12) and in float32 (within the
  summation bound of :mod:`tests.rounding`); Play's products exactly.
* Views 3 and 4 (a model forward, its backward by the formulas) in float64
  against :mod:`tests.reference` (plain lax, differentiated by JAX) and the
  oracle's backward formulas, to 1e-10 as every manual-gradient test.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import kernels, layers, models
from jaxcnn.data.shapes import demo_shapes
from jaxcnn.explore import (
    PADDINGS,
    STRIDES,
    backward_view,
    forward_view,
    kernel_output,
    match_maps,
    output_size,
    slide,
)
from tests import oracle, reference, rounding

SQUARE, CIRCLE = demo_shapes()
RNG = np.random.default_rng(7)


def random_kernel() -> np.ndarray:
    return RNG.normal(size=(3, 3))


def oracle_conv(image: np.ndarray, kernel: np.ndarray, stride: int, padding: int) -> np.ndarray:
    x = np.asarray(image, np.float64)[None, :, :, None]
    w = np.asarray(kernel, np.float64)[:, :, None, None]
    return oracle.conv2d(x, w, None, stride, padding)[0, :, :, 0]


@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_kernel_output_is_the_convolution_and_its_size_the_formula(
    stride: int, padding: int
) -> None:
    image = RNG.uniform(size=(28, 23))
    kernel = random_kernel()
    want = oracle_conv(image, kernel, stride, padding)
    size = output_size(image.shape, stride, padding)
    assert (size.out, size.out_w) == want.shape
    assert size.out == (28 + 2 * padding - 3) // stride + 1  # the article's formula
    assert size.out_w == (23 + 2 * padding - 3) // stride + 1
    with jax.enable_x64(True):
        got64 = np.asarray(
            kernel_output(jnp.asarray(image), jnp.asarray(kernel), stride=stride, padding=padding)
        )
    np.testing.assert_allclose(got64, want, rtol=0, atol=1e-12)
    got32 = np.asarray(
        kernel_output(
            image.astype(np.float32), kernel.astype(np.float32), stride=stride, padding=padding
        )
    )
    bound = rounding.float32_vs_exact(
        oracle_conv(np.abs(image), np.abs(kernel), stride, padding), 9
    )
    rounding.assert_within(got32, want, bound)


def test_the_classical_kernels_find_the_squares_edges() -> None:
    """Horizontal edges respond on the top and bottom sides only; vertical on the left and right."""
    horizontal = np.asarray(kernel_output(SQUARE, kernels.EDGE_HORIZONTAL, stride=1, padding=1))
    vertical = np.asarray(kernel_output(SQUARE, kernels.EDGE_VERTICAL, stride=1, padding=1))
    middle = slice(10, 18)  # rows (or columns) away from the corners
    assert np.abs(horizontal[middle, 5:9]).max() == 0  # the left side: no vertical change
    assert np.abs(horizontal[5:9, middle]).min() > 0  # the top side (rows 6 and 7)
    assert np.abs(vertical[5:9, middle]).max() == 0
    assert np.abs(vertical[middle, 5:9]).min() > 0


@pytest.mark.parametrize(("row", "col"), [(6, 10), (0, 0), (27, 27), (14, 6), (13, 0)])
def test_match_cuts_the_centred_patch_and_scores_every_window(row: int, col: int) -> None:
    image = np.asarray(CIRCLE if row == 14 else SQUARE, np.float64)
    padded = np.pad(image, 1)
    with jax.enable_x64(True):
        patch, dot, cosine = (
            np.asarray(a) for a in match_maps(jnp.asarray(image), np.int32(row), np.int32(col))
        )
    np.testing.assert_array_equal(patch, padded[row : row + 3, col : col + 3])
    want_dot = oracle_conv(image, patch, 1, 1)
    np.testing.assert_allclose(dot, want_dot, rtol=0, atol=1e-12)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))  # [H, W, 3, 3]
    norms = np.linalg.norm(windows, axis=(2, 3)) * np.linalg.norm(patch)
    want_cosine = np.where(norms > 0, want_dot / np.where(norms > 0, norms, 1), 0)
    np.testing.assert_allclose(cosine, want_cosine, rtol=0, atol=1e-12)
    if np.linalg.norm(patch) > 0:
        assert cosine[row, col] == pytest.approx(1.0, abs=1e-12)  # the patch matches itself


@pytest.mark.parametrize(("stride", "padding"), [(1, 1), (2, 0), (3, 2)])
def test_slide_products_are_exact_and_their_sums_within_the_summation_bound(
    stride: int, padding: int
) -> None:
    image = RNG.uniform(size=(28, 28)).astype(np.float32)
    kernel = random_kernel().astype(np.float32)
    windows, products, sums = (
        np.asarray(a) for a in slide(image, kernel, stride=stride, padding=padding)
    )
    size = output_size(image.shape, stride, padding)
    assert sums.shape == (size.out, size.out_w)
    padded = np.pad(image, padding)
    for i in range(size.out):
        for j in range(size.out_w):
            window = padded[i * stride : i * stride + 3, j * stride : j * stride + 3]
            np.testing.assert_array_equal(windows[i, j], window)
    np.testing.assert_array_equal(products, windows * kernel)  # one IEEE rounding each
    exact = products.astype(np.float64).sum(axis=(2, 3))
    bound = rounding.gamma(8) * np.abs(products).astype(np.float64).sum(axis=(2, 3))
    rounding.assert_within(sums, exact, bound)  # 9 float32 terms, any order: 8 additions
    conv = np.asarray(kernel_output(image, kernel, stride=stride, padding=padding))
    rounding.assert_within(
        conv,
        exact,
        rounding.float32_vs_float32(np.abs(products).astype(np.float64).sum(axis=(2, 3)), 9),
    )


# ---- views 3 and 4, in float64 ---------------------------------------------------------


def padded_cnn() -> layers.Layer:
    """Every layer kind, strides and paddings, softmax over 3 classes."""
    return layers.serial(
        layers.Conv(3, 3, stride=2, padding="same"),
        layers.Relu,
        layers.MaxPool(2, stride=1),
        layers.Conv(2, 2, padding=((1, 0), (0, 1))),
        layers.AvgPool(2),
        layers.Relu,
        layers.Flatten,
        layers.Dense(5),
        layers.Relu,
        layers.Dense(3),
        input_shape=(9, 8, 2),
        loss="softmax_cross_entropy",
    )


def global_pool_cnn() -> layers.Layer:
    return layers.serial(
        layers.Conv(4, 3, padding="same"),
        layers.Relu,
        layers.GlobalAvgPool(),
        layers.Dense(1),
        input_shape=(6, 6, 1),
        loss="binary_cross_entropy",
    )


MODELS = {"shapes": models.shapes_cnn, "padded": padded_cnn, "global": global_pool_cnn}


def float64_case(name: str) -> tuple[layers.Layer, Any, np.ndarray]:
    model = MODELS[name]()
    shape = model.config["input_shape"]
    params = models.init_params(model, jax.random.key(3), dtype=jnp.float64)
    x = np.random.default_rng(5).uniform(size=(1, *shape))
    return model, params, x


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_view_is_the_plain_forward_pass_and_the_saliency_its_gradient(name: str) -> None:
    with jax.enable_x64(True):
        model, params, x = float64_case(name)
        view = forward_view(model, params, jnp.asarray(x), jnp.int32(-1))
        plain = reference.plain_model(model)
        logits = np.asarray(plain(params, jnp.asarray(x)))
        np.testing.assert_allclose(view.logits, logits, rtol=0, atol=1e-10)
        k = logits.shape[1]
        probs = (
            np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
            if k > 1
            else np.concatenate([1 - 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(-logits))], axis=1)
        )
        np.testing.assert_allclose(view.probabilities, probs, rtol=0, atol=1e-12)
        target = int(np.argmax(probs[0]))
        assert int(view.target) == target
        sign = 1.0 if k > 1 or target == 1 else -1.0  # one logit: the log-odds of the target class
        score = lambda x: sign * plain(params, x)[0, 0 if k == 1 else target]  # noqa: E731
        np.testing.assert_allclose(
            view.saliency, jax.grad(score)(jnp.asarray(x)), rtol=0, atol=1e-10
        )
        h = jnp.asarray(x)
        for leaf, output in zip(layers_of(model), view.outputs, strict=True):
            h = reference.plain_model(leaf.layer)(params[leaf.name], h)
            np.testing.assert_allclose(output, h, rtol=0, atol=1e-10)


def layers_of(model: layers.Layer) -> list[Any]:
    from jaxcnn.explore import leaves

    return leaves(model)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_backward_view_steps_are_the_gradients_of_every_layer(name: str) -> None:
    """Each step's gradient equals jax.grad of tests.reference's plain model with respect to
    that layer's input, its parameter gradients those of the whole loss, and the differences
    the page shows are the float64 rounding level."""
    with jax.enable_x64(True):
        model, params, x = float64_case(name)
        label = np.array([1], np.int32)
        view = backward_view(model, params, jnp.asarray(x), jnp.asarray(label))
        plain_loss = reference.plain_loss(model)
        steps = layers_of(model)

        def loss_from(i: int, p: Any, h: jax.Array) -> jax.Array:
            for leaf in steps[i:]:
                h = reference.plain_model(leaf.layer)(p[leaf.name], h)
            return plain_loss(h, jnp.asarray(label))

        h = jnp.asarray(x)
        for i, leaf in enumerate(steps):
            want = jax.grad(loss_from, argnums=2)(i, params, h)
            np.testing.assert_allclose(view.steps[i].grad, want, rtol=0, atol=1e-10)
            assert float(view.steps[i].diff) <= 1e-10
            h = reference.plain_model(leaf.layer)(params[leaf.name], h)
        logits = h
        want_dlogits = jax.grad(lambda z: plain_loss(z, jnp.asarray(label)))(logits)
        np.testing.assert_allclose(view.dlogits, want_dlogits, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            view.loss, plain_loss(logits, jnp.asarray(label)), rtol=0, atol=1e-12
        )
        want_params = jax.grad(loss_from, argnums=1)(0, params, jnp.asarray(x))
        for leaf, step in zip(steps, view.steps, strict=True):
            assert sorted(step.params) == sorted(want_params[leaf.name])
            for key, grad in step.params.items():
                np.testing.assert_allclose(grad, want_params[leaf.name][key], rtol=0, atol=1e-10)
                assert float(step.param_diffs[key]) <= 1e-10


def test_backward_view_pooling_routes_the_gradient_to_the_first_maximum() -> None:
    """A tie in a max-pool window: the formula (and the view) send it all to the first maximum."""
    model = layers.serial(
        layers.MaxPool(2),
        layers.Flatten,
        layers.Dense(1),
        input_shape=(2, 2, 1),
        loss="binary_cross_entropy",
    )
    params = {
        "max_pool0": {},
        "flatten1": {},
        "dense2": {"w": jnp.ones((1, 1)), "b": jnp.zeros((1,))},
    }
    x = jnp.ones((1, 2, 2, 1))  # four equal maxima
    view = backward_view(model, params, x, jnp.asarray([1], jnp.int32))
    grad = np.asarray(view.steps[0].grad)[0, :, :, 0]
    g = float(np.asarray(view.steps[1].grad).reshape(-1)[0])
    assert g != 0
    np.testing.assert_array_equal(grad, [[g, 0.0], [0.0, 0.0]])
