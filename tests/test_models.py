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
