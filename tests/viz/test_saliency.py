"""``viz.plot_saliency``: each image above its gradient, on a scale centred on zero."""

from __future__ import annotations

import pathlib
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from jaxcnn import viz
from tests.viz.test_viz import PAIR, image_data, no_pyplot_figures  # noqa: F401

GRADIENTS = np.random.default_rng(3).normal(size=PAIR.shape).astype(np.float32)


def test_each_image_sits_above_its_gradient() -> None:
    fig = viz.plot_saliency(PAIR, GRADIENTS, names=["a square", "a circle"], title="why")
    assert len(fig.axes) == 4
    top, bottom = fig.axes[:2], fig.axes[2:]  # row by row
    assert [ax.get_title() for ax in top] == ["a square", "a circle"]
    for m, (image_ax, gradient_ax) in enumerate(zip(top, bottom, strict=True)):
        np.testing.assert_array_equal(image_data_of(image_ax), PAIR[m, :, :, 0])
        np.testing.assert_array_equal(image_data_of(gradient_ax), GRADIENTS[m, :, :, 0])
        limit = float(np.abs(GRADIENTS[m]).max())
        low, high = gradient_ax.images[0].get_clim()
        assert (low, high) == pytest.approx((-limit, limit))  # centred: white is zero
        assert gradient_ax.get_title() == f"gradient (max |g| {limit:.2g})"
    assert fig.get_suptitle() == "why"


def image_data_of(ax: Any) -> np.ndarray:
    (image,) = ax.images
    return np.asarray(image.get_array())


def test_default_names_and_title_and_the_png_size(tmp_path: pathlib.Path) -> None:
    three = np.concatenate([PAIR, PAIR[:1]])
    path = tmp_path / "sub" / "saliency.png"
    fig = viz.plot_saliency(three, np.zeros_like(three), path=path)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["image 1", "image 2", "image 3"]
    assert "red raises the score" in fig.get_suptitle()
    assert matplotlib.image.imread(path).shape[:2] == (560, 750)  # 250 px per image
    assert len(image_data(fig)) == 6


@pytest.mark.parametrize(
    ("images", "gradients", "kwargs", "match"),
    [
        (PAIR[..., 0], GRADIENTS, {}, r"images must be 4-D \(M, H, W, C\)"),
        (np.repeat(PAIR, 3, axis=3), GRADIENTS, {}, r"images must be grey-scale"),
        (PAIR, GRADIENTS[:1], {}, r"gradients must have the images' shape \(2, 28, 28, 1\)"),
        (PAIR, GRADIENTS, {"names": ["one"]}, "names must have one label per image"),
        (PAIR, GRADIENTS, {"names": "ab"}, "names must be a sequence of strings"),
        (PAIR.astype(np.int32), GRADIENTS, {}, "images must have a real floating dtype"),
    ],
)
def test_plot_saliency_rejects_bad_arguments(
    images: Any, gradients: Any, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises((ValueError, TypeError), match="plot_saliency: " + match):
        viz.plot_saliency(images, gradients, **kwargs)
