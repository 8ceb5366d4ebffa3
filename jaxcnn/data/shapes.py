"""The article's squares-vs-circles data set, generated for a whole batch at once.

The drawing rules are the article's ``make_square`` / ``make_circle``, pixel for
pixel; only the bookkeeping differs:

* every image of a class is drawn at once with array arithmetic over a
  ``[n, 28, 28]`` grid (no Python loop per image or per pixel);
* randomness comes from one ``numpy.random.default_rng(seed)``;
* the split is shuffled and stratified. The article splits its concatenated
  ``[2000 squares, 2000 circles]`` array as ``X[:3200], X[3200:]``: it trains
  on all 2000 squares and 1200 circles and tests on 800 circles only, so its
  "100% test accuracy" never saw a square. Here each class contributes
  ``test_fraction`` of its images to the test split and both splits are
  shuffled.
"""

from __future__ import annotations

import operator
from typing import TypeAlias

import numpy as np

from jaxcnn import _checks
from jaxcnn.errors import InputError, InputTypeError

SIZE = 28
"""Height and width of every image."""
LINE_WIDTH = 2
"""Thickness of a square's edges and of a circle's solid ring, in pixels."""
ANTI_ALIAS = 0.5
"""Width of the fading band outside a circle's solid ring, in pixels."""
SQUARE, CIRCLE = 0, 1
"""Labels."""
CLASS_NAMES = ("square", "circle")
"""The name of each label."""

Split: TypeAlias = tuple[np.ndarray, np.ndarray]
"""``(images [n, 28, 28, 1] float32 in [0, 1], labels [n] int32)``."""


def make_shapes(
    n_per_class: int = 2000, *, seed: int = 0, test_fraction: float = 0.2
) -> tuple[Split, Split]:
    """The article's 28x28 squares (label 0) and circles (label 1).

    Args:
      n_per_class: images of each class (the article: 2000).
      seed: seed of the ``numpy.random.default_rng`` drawing everything.
      test_fraction: share of each class held out for the test split
        (the article: 0.2, i.e. 3200 train / 800 test).

    Returns:
      ``(train, test)``, each ``(images, labels)`` with ``images:
      [n, 28, 28, 1]`` float32 in [0, 1] and ``labels: [n]`` int32. Each
      split holds the same number of squares and circles (up to rounding of
      ``n_per_class * test_fraction``), in shuffled order.

    Raises:
      ValueError / TypeError: for a bad ``n_per_class``, ``seed`` or
        ``test_fraction``, or if a split would be empty.
    """
    n_per_class = _checks.positive_int("make_shapes", "n_per_class", n_per_class)
    n_test = _test_count(n_per_class, test_fraction)
    rng = np.random.default_rng(_seed(seed))
    squares = draw_squares(rng, n_per_class)
    circles = draw_circles(rng, n_per_class)
    images = (np.concatenate([squares, circles]) / np.float32(255))[..., None]
    labels = np.repeat(np.array([SQUARE, CIRCLE], np.int32), n_per_class)
    test_index = np.concatenate(
        [rng.permutation(n_per_class)[:n_test] + offset for offset in (0, n_per_class)]
    )
    is_test = np.zeros(2 * n_per_class, bool)
    is_test[test_index] = True
    train_order = rng.permutation(np.flatnonzero(~is_test))
    test_order = rng.permutation(test_index)
    return (images[train_order], labels[train_order]), (images[test_order], labels[test_order])


def draw_squares(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` outlined squares as the article draws them, pixel values 0 or 255.

    Side ``s`` uniform in 8..21 (``randint(8, 22)``), top-left corner
    ``(r, c)`` uniform in ``0..28-s``, edges ``LINE_WIDTH`` pixels thick.

    Returns:
      ``[n, 28, 28]`` float32.
    """
    side = rng.integers(8, 22, size=n)
    top = rng.integers(0, SIZE - side + 1)
    left = rng.integers(0, SIZE - side + 1)
    return square_outlines(side, top, left)


def square_outlines(side: np.ndarray, top: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Square outlines of the given sides and top-left corners (``[n]`` ints each).

    Returns:
      ``[n, 28, 28]`` float32, 255 on the ``LINE_WIDTH``-pixel outline, else 0.
    """
    rows = np.arange(SIZE)[None, :, None] - top[:, None, None]  # [n, 28, 1], row - r
    cols = np.arange(SIZE)[None, None, :] - left[:, None, None]  # [n, 1, 28], col - c
    s = side[:, None, None]
    in_rows = (rows >= 0) & (rows < s)
    in_cols = (cols >= 0) & (cols < s)
    near_row_edge = (rows < LINE_WIDTH) | (rows >= s - LINE_WIDTH)
    near_col_edge = (cols < LINE_WIDTH) | (cols >= s - LINE_WIDTH)
    outline = in_rows & in_cols & (near_row_edge | near_col_edge)
    return np.where(outline, np.float32(255), np.float32(0))


def draw_circles(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` anti-aliased rings as the article draws them, values in [0, 255].

    Radius uniform in [4, 10), centre uniform in ``[r + 2, 28 - r - 2)`` on
    each axis.

    Returns:
      ``[n, 28, 28]`` float32.
    """
    radius = rng.uniform(4.0, 10.0, size=n)
    margin = radius + 2.0
    centre_y = rng.uniform(margin, SIZE - margin)
    centre_x = rng.uniform(margin, SIZE - margin)
    return rings(radius, centre_y, centre_x)


def rings(radius: np.ndarray, centre_y: np.ndarray, centre_x: np.ndarray) -> np.ndarray:
    """Anti-aliased rings of the given radii and centres (``[n]`` floats each).

    With ``d`` = |distance from pixel centre (``+0.5``) to the centre - radius|:
    255 where ``d <= 1``, ``255 * (1.5 - d) / 0.5`` where ``1 < d <= 1.5``, 0
    elsewhere. Computed in float64, stored as float32 like the article's image
    buffer.

    Returns:
      ``[n, 28, 28]`` float32.
    """
    centres = np.arange(SIZE) + 0.5
    dy = centres[None, :, None] - centre_y[:, None, None]  # [n, 28, 1]
    dx = centres[None, None, :] - centre_x[:, None, None]  # [n, 1, 28]
    ring = np.abs(np.sqrt(dy**2 + dx**2) - radius[:, None, None])  # [n, 28, 28]
    half = LINE_WIDTH / 2
    fade = 255 * (half + ANTI_ALIAS - ring) / ANTI_ALIAS
    values = np.where(ring <= half, 255.0, np.where(ring <= half + ANTI_ALIAS, fade, 0.0))
    return values.astype(np.float32)


def demo_shapes() -> np.ndarray:
    """A square and a circle drawn by the article's generator, centred.

    Both are 28x28 with values in ``[0, 1]`` (the article's pixels / 255):

    * square: side 16 (rows and columns 6..21), a 2-pixel outline;
    * circle: radius 8 around the centre, a 2-pixel ring with a half-pixel
      anti-aliased fringe.

    Returns:
      ``[2, 28, 28]`` float32: ``square, circle = demo_shapes()``.
    """
    square = square_outlines(np.array([16]), np.array([6]), np.array([6]))
    circle = rings(np.array([8.0]), np.array([14.0]), np.array([14.0]))
    return np.concatenate([square, circle]) / np.float32(255)


def _seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputTypeError(f"make_shapes: seed must be an int, got {seed!r}")
    if seed < 0:
        raise InputError(f"make_shapes: seed must be >= 0, got {seed}")
    return operator.index(seed)


def _test_count(n_per_class: int, test_fraction: object) -> int:
    """Images per class in the test split; both splits must be non-empty."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, float | int):
        raise InputTypeError(f"make_shapes: test_fraction must be a number, got {test_fraction!r}")
    if not 0 < test_fraction < 1:
        raise InputError(f"make_shapes: test_fraction must be in (0, 1), got {test_fraction}")
    n_test = round(n_per_class * test_fraction)
    if not 0 < n_test < n_per_class:
        raise InputError(
            f"make_shapes: n_per_class={n_per_class} with test_fraction={test_fraction} "
            f"leaves {n_test} test and {n_per_class - n_test} training images per class; "
            f"both must be >= 1"
        )
    return n_test
