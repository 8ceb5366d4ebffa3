"""The article's squares-vs-circles generator: exact drawing rules, split, seeding, validation."""

from __future__ import annotations

import numpy as np
import pytest

from jaxcnn.data import make_shapes
from jaxcnn.data import shapes as shapes_module


@pytest.fixture(scope="module")
def default_split() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return make_shapes()


def article_square(side: int, top: int, left: int) -> np.ndarray:
    """The article's make_square with its random draws given (loop over the edge width)."""
    img = np.zeros((28, 28), dtype=np.float32)
    for t in range(2):
        img[top + t, left : left + side] = 255
        img[top + side - 1 - t, left : left + side] = 255
        img[top : top + side, left + t] = 255
        img[top : top + side, left + side - 1 - t] = 255
    return img


def article_circle(radius: float, cy: float, cx: float) -> np.ndarray:
    """The article's make_circle with its random draws given."""
    img = np.zeros((28, 28), dtype=np.float32)
    rr, cc = np.mgrid[0:28, 0:28] + 0.5
    ring_dist = np.abs(np.sqrt((rr - cy) ** 2 + (cc - cx) ** 2) - radius)
    img[ring_dist <= 1.0] = 255
    aa = (ring_dist > 1.0) & (ring_dist <= 1.5)
    img[aa] = 255 * (1.5 - ring_dist[aa]) / 0.5
    return img


def test_squares_are_the_articles_pixel_for_pixel() -> None:
    n = 300
    drawn = shapes_module.draw_squares(np.random.default_rng(5), n)
    rng = np.random.default_rng(5)  # the same draws, in the generator's order
    side = rng.integers(8, 22, size=n)
    top, left = rng.integers(0, 29 - side), rng.integers(0, 29 - side)
    assert side.min() >= 8
    assert side.max() <= 21
    expected = np.stack([article_square(*args) for args in zip(side, top, left, strict=True)])
    np.testing.assert_array_equal(drawn, expected)


def test_circles_are_the_articles_pixel_for_pixel() -> None:
    n = 300
    drawn = shapes_module.draw_circles(np.random.default_rng(6), n)
    rng = np.random.default_rng(6)
    radius = rng.uniform(4.0, 10.0, size=n)
    cy, cx = rng.uniform(radius + 2, 26 - radius), rng.uniform(radius + 2, 26 - radius)
    expected = np.stack([article_circle(*args) for args in zip(radius, cy, cx, strict=True)])
    np.testing.assert_array_equal(drawn, expected)


def test_split_sizes_dtypes_and_range(default_split: tuple) -> None:
    (x_train, y_train), (x_test, y_test) = default_split
    assert x_train.shape == (3200, 28, 28, 1)
    assert x_test.shape == (800, 28, 28, 1)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int32
    assert y_train.shape == (3200,)
    assert y_test.shape == (800,)
    for images in (x_train, x_test):
        assert images.min() == 0.0
        assert images.max() == 1.0


def test_class_balance_and_both_classes_in_test(default_split: tuple) -> None:
    (_, y_train), (_, y_test) = default_split
    assert np.bincount(y_train).tolist() == [1600, 1600]
    assert np.bincount(y_test).tolist() == [400, 400]


def test_splits_are_shuffled(default_split: tuple) -> None:
    (_, y_train), (_, y_test) = default_split
    for labels in (y_train, y_test):
        assert 0 < labels[:50].sum() < 50  # not class-sorted as the article's arrays
        assert np.count_nonzero(np.diff(labels)) > len(labels) // 4


def test_squares_are_binary_two_pixel_outlines(default_split: tuple) -> None:
    (x_train, y_train), _ = default_split
    squares = x_train[y_train == 0, :, :, 0]
    assert set(np.unique(squares)) == {0.0, 1.0}
    for img in squares[:200]:
        rows, cols = np.nonzero(img)
        top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
        side = bottom - top + 1
        assert side == right - left + 1
        assert 8 <= side <= 21
        inner = np.ones((side, side), bool)
        inner[2:-2, 2:-2] = False
        np.testing.assert_array_equal(img[top : bottom + 1, left : right + 1], inner)


def test_circles_are_anti_aliased_rings(default_split: tuple) -> None:
    (x_train, y_train), _ = default_split
    circles = x_train[y_train == 1, :, :, 0]
    soft = (circles > 0) & (circles < 1)
    assert soft.any(axis=(1, 2)).all()  # every circle has an anti-aliased edge
    assert (circles == 1).any(axis=(1, 2)).all()  # and a solid ring
    # A ring never touches the border: margin = radius + 2 keeps it 0.5 px inside.
    assert circles[:, 0, :].max() == 0
    assert circles[:, :, -1].max() == 0


def test_same_seed_same_data_and_different_seeds_differ() -> None:
    a_train, a_test = make_shapes(50, seed=3)
    b_train, b_test = make_shapes(50, seed=3)
    c_train, _ = make_shapes(50, seed=4)
    for a, b in zip((*a_train, *a_test), (*b_train, *b_test), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a_train[0], c_train[0])


def test_test_fraction_and_smallest_split() -> None:
    (_, y_train), (_, y_test) = make_shapes(10, test_fraction=0.3)
    assert len(y_test) == 6
    assert len(y_train) == 14
    assert np.bincount(y_test).tolist() == [3, 3]
    (_, y_train), (_, y_test) = make_shapes(2, test_fraction=0.5)
    assert sorted(y_train.tolist()) == sorted(y_test.tolist()) == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_per_class": 0}, ValueError, "n_per_class must be >= 1, got 0"),
        ({"n_per_class": 2.5}, TypeError, "n_per_class must be an int"),
        ({"n_per_class": True}, TypeError, "n_per_class must be an int"),
        ({"test_fraction": 0.0}, ValueError, r"test_fraction must be in \(0, 1\), got 0.0"),
        ({"test_fraction": 1}, ValueError, r"test_fraction must be in \(0, 1\), got 1"),
        ({"test_fraction": "0.2"}, TypeError, "test_fraction must be a number"),
        ({"n_per_class": 1}, ValueError, "both must be >= 1"),
        ({"n_per_class": 100, "test_fraction": 0.001}, ValueError, "leaves 0 test"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=f"make_shapes: .*{match}"):
        make_shapes(**kwargs)
