"""The article's models: parameter counts, output shapes, inits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import models


@pytest.mark.parametrize(
    ("name", "count", "outputs"),
    [("shapes", 413, 1), ("mnist-cnn", 225_034, 10), ("mnist-dense", 101_770, 10)],
)
def test_parameter_counts_and_outputs(name: str, count: int, outputs: int) -> None:
    init, apply = models.get_model(name)
    shape, params = init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
    assert shape == (-1, outputs)
    assert models.count_params(params) == count
    assert apply(params, jnp.zeros((2, *models.IMAGE_SHAPE))).shape == (2, outputs)


def test_shapes_cnn_inits_as_in_article() -> None:
    _, params = models.shapes_cnn().init(jax.random.key(3), (-1, 28, 28, 1))
    assert params["conv0"]["w"].shape == (3, 3, 1, 2)
    np.testing.assert_array_equal(params["conv0"]["b"], 0)
    assert float(jnp.abs(params["conv0"]["w"]).max()) < 0.5  # N(0,1)*0.1
    assert params["dense4"]["w"].shape == (392, 1)


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match="get_model: name must be one of"):
        models.get_model("resnet")


def test_named_models_record_their_input_and_size_their_output() -> None:
    for name in models.MODELS:
        assert models.get_model(name).config["input_shape"] == models.IMAGE_SHAPE
    shape, params = models.get_model("mnist-cnn", classes=26).init(jax.random.key(0))
    assert shape == (-1, 26)
    assert params["dense9"]["w"].shape == (128, 26)
    shape, _ = models.mnist_dense(classes=2, input_shape=(20, 24, 3)).init(jax.random.key(0))
    assert shape == (-1, 2)
    assert models.get_model("shapes", classes=2) == models.shapes_cnn()
    assert models.get_model("mnist-dense", classes=10) == models.mnist_dense()


def test_classes_errors() -> None:
    with pytest.raises(ValueError, match=r"'shapes' is a binary classifier .* got 3"):
        models.get_model("shapes", classes=3)
    with pytest.raises(ValueError, match="mnist_cnn: classes must be >= 2"):
        models.mnist_cnn(classes=1)
    with pytest.raises(TypeError, match="mnist_dense: classes must be an int"):
        models.mnist_dense(classes=2.0)  # type: ignore[arg-type]


def test_loss_name_errors_list_the_names_and_the_fix() -> None:
    no_loss = models.serial(models.Flatten, models.Dense(2))
    with pytest.raises(ValueError, match=r"^fit: model 'serial' names no loss") as err:
        models.loss_name(no_loss, fn="fit")
    message = str(err.value)
    assert "fit(..., loss=NAME)" in message
    assert "serial(..., loss=NAME)" in message
    assert "['binary_cross_entropy', 'softmax_cross_entropy']" in message
    odd = models.serial(models.Flatten, models.Dense(2), loss="hinge")
    with pytest.raises(ValueError, match=r"names an unknown loss 'hinge' in config\['loss'\]"):
        models.loss_name(odd)
    with pytest.raises(ValueError, match=r"loss must be one of \['binary_cross_entropy'"):
        models.loss_name(no_loss, "mse")
    assert models.loss_name(odd, "binary_cross_entropy") == "binary_cross_entropy"
