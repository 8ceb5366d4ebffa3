"""Figures: headless, the right panels with the right data, PNGs of the documented size."""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from jaxcnn import kernels, ops, viz

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SQUARE, CIRCLE = viz.demo_shapes()
PAIR = np.stack([SQUARE, CIRCLE])[..., None]
W2 = (np.random.default_rng(0).normal(size=(3, 3, 1, 2)) * 0.5).astype(np.float32)
B2 = np.array([0.1, -0.2], np.float32)


def history(epochs: int = 5, *, val: bool = True) -> dict[str, list[float]]:
    steps = np.arange(epochs, dtype=np.float64)
    curves = {"train_loss": np.exp(-steps), "train_accuracy": 1 - 0.5 * np.exp(-steps)}
    if val:
        curves |= {"val_loss": np.exp(-steps) + 0.1, "val_accuracy": 0.9 - 0.4 * np.exp(-steps)}
    return {key: values.tolist() for key, values in curves.items()}


@pytest.fixture(autouse=True)
def no_pyplot_figures() -> Iterator[None]:
    """viz never registers figures with pyplot, so nothing is left open."""
    assert plt.get_fignums() == []
    yield
    assert plt.get_fignums() == []


def image_data(fig: Figure) -> list[np.ndarray]:
    return [np.asarray(image.get_array()) for ax in fig.axes for image in ax.images]


def texts(ax: Any) -> list[str]:
    return [text.get_text() for text in ax.texts]


def assert_titled(axes: list[Any]) -> None:
    for ax in axes:
        assert ax.get_title().strip(), "every panel has a title"


# --- demo shapes -------------------------------------------------------------------------


def test_demo_shapes_are_a_2px_square_outline_and_an_antialiased_ring() -> None:
    shapes = viz.demo_shapes()
    assert shapes.shape == (2, 28, 28)
    assert shapes.dtype == np.float32
    np.testing.assert_array_equal(shapes, viz.demo_shapes())
    square, circle = shapes
    assert set(np.unique(square)) == {0.0, 1.0}
    rows, cols = np.nonzero(square)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    side = bottom - top + 1
    assert right - left + 1 == side
    assert square.sum() == side * side - (side - 4) ** 2  # a 2-pixel outline
    assert not square[top + 2 : bottom - 1, left + 2 : right - 1].any()
    centres = np.mgrid[0:28, 0:28] + 0.5
    distance = np.hypot(centres[0] - 14, centres[1] - 14)
    radius = float(np.average(distance, weights=circle))
    assert abs(radius - 8.0) < 0.2
    assert np.all(circle[np.abs(distance - radius) <= 0.8] == 1.0)
    assert np.all(circle[np.abs(distance - radius) >= 1.6] == 0.0)
    assert ((circle > 0) & (circle < 1)).any(), "anti-aliased fringe"
    np.testing.assert_array_equal(circle, circle.T)
    np.testing.assert_array_equal(circle, circle[::-1])


# --- classical kernels -------------------------------------------------------------------


def test_classical_kernels_figure_shows_each_output_and_its_kernel() -> None:
    fig = viz.plot_classical_kernels(SQUARE)
    n = len(kernels.CLASSICAL)
    assert len(fig.axes) == 1 + 2 * n
    assert [len(ax.images) for ax in fig.axes] == [1] * (1 + 2 * n)
    assert_titled(fig.axes)
    data = image_data(fig)
    np.testing.assert_array_equal(data[0], SQUARE)
    for i, (name, kernel) in enumerate(kernels.CLASSICAL.items()):
        output_ax, kernel_ax = fig.axes[1 + 2 * i], fig.axes[2 + 2 * i]
        assert name in output_ax.get_title()
        np.testing.assert_allclose(data[1 + 2 * i], kernels.apply_kernel(SQUARE, kernel))
        np.testing.assert_array_equal(data[2 + 2 * i], kernel)
        assert len(texts(kernel_ax)) == 9
    assert texts(fig.axes[2]) == ["1/9"] * 9
    assert texts(fig.axes[4])[4] == "5"


# --- pattern matching --------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "top_left"), [("square", (10, 5)), ("circle", (6, 6))])
def test_pattern_match_marks_the_best_matches(shape: str, top_left: tuple[int, int]) -> None:
    image = SQUARE if shape == "square" else CIRCLE
    fig = viz.plot_pattern_match(image, top_left)
    image_ax, patch_ax, match_ax, _colour_bar = fig.axes
    assert [len(ax.images) for ax in fig.axes] == [1, 1, 1, 0]
    assert_titled([image_ax, patch_ax, match_ax])
    row, col = top_left
    patch = image[row : row + 3, col : col + 3]
    np.testing.assert_array_equal(np.asarray(patch_ax.images[0].get_array()), patch)
    response = np.asarray(kernels.match_pattern(image, patch))
    np.testing.assert_allclose(np.asarray(match_ax.images[0].get_array()), response)
    best = viz.best_positions(response)
    assert [row, col] in best.tolist(), "the patch matches itself best"
    marked = np.asarray(match_ax.collections[0].get_offsets())
    np.testing.assert_allclose(marked, best[:, ::-1] + 1.0)  # (x, y) of window centres
    assert f"{len(best)} best match" in match_ax.get_title()


def test_pattern_match_on_a_square_edge_finds_both_vertical_edges() -> None:
    fig = viz.plot_pattern_match(SQUARE, (10, 5))
    columns = {int(x) for x in np.asarray(fig.axes[2].collections[0].get_offsets())[:, 0]}
    _, cols = np.nonzero(SQUARE)
    assert columns == {cols.min(), cols.max() - 1}  # window centres on both edge lines


def test_best_positions_uses_a_tolerance() -> None:
    response = np.array([[0.5, 1.0], [1.0 - 1e-6, 0.99]])
    assert viz.best_positions(response).tolist() == [[0, 1], [1, 0]]


# --- filters and feature maps ------------------------------------------------------------


@pytest.mark.parametrize(("filters", "count"), [(2, 2), (3, 1), (1, 3)])
def test_filters_and_feature_maps_grid(filters: int, count: int) -> None:
    rng = np.random.default_rng(filters * 10 + count)
    w = rng.normal(size=(3, 3, 1, filters)).astype(np.float32)
    b = rng.normal(size=(filters,)).astype(np.float32)
    images = np.concatenate([PAIR, PAIR])[:count]
    names = [f"image {m}" for m in range(count)]
    fig = viz.plot_filters_and_feature_maps(w, b, images, names=names)
    assert len(fig.axes) == count + filters + filters * count
    assert all(len(ax.images) == 1 for ax in fig.axes)
    assert_titled(fig.axes)
    maps = np.asarray(ops.relu(ops.conv2d(images, w, b, padding="same")))
    axes = iter(fig.axes)
    for m in range(count):
        ax = next(axes)
        assert names[m] in ax.get_title()
        np.testing.assert_array_equal(ax.images[0].get_array(), images[m, :, :, 0])
    for f in range(filters):
        kernel_ax = next(axes)
        np.testing.assert_array_equal(kernel_ax.images[0].get_array(), w[:, :, 0, f])
        assert len(texts(kernel_ax)) == 9
        limits = set()
        for m in range(count):
            ax = next(axes)
            shown = np.asarray(ax.images[0].get_array())
            np.testing.assert_allclose(shown, maps[m, :, :, f], atol=1e-6)
            limits.add(ax.images[0].get_clim())
        assert len(limits) == 1, "one colour scale per filter row"


def test_filter_values_are_written_in_the_cells() -> None:
    fig = viz.plot_filters_and_feature_maps(W2, B2, PAIR)
    filter_ax = fig.axes[2]
    assert texts(filter_ax) == [f"{v:.2f}" for v in W2[:, :, 0, 0].ravel()]
    assert "0.10" in filter_ax.get_title()


# --- history ------------------------------------------------------------------------------


@pytest.mark.parametrize("val", [True, False])
def test_history_curves(val: bool) -> None:
    curves = history(6, val=val)
    fig = viz.plot_history(curves)
    loss_ax, accuracy_ax = fig.axes
    assert (loss_ax.get_title(), accuracy_ax.get_title()) == ("loss", "accuracy")
    assert not loss_ax.images
    assert not accuracy_ax.images
    splits = ["train", "val"] if val else ["train"]
    for ax, metric in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        assert [line.get_label() for line in ax.lines] == splits
        for line, split in zip(ax.lines, splits, strict=True):
            np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 7))
            np.testing.assert_array_equal(line.get_ydata(), curves[f"{split}_{metric}"])


def test_load_history_round_trips_a_history_json(tmp_path: pathlib.Path) -> None:
    curves = history(3) | {"epoch_seconds": [0.5, 0.4, 0.4]}
    path = tmp_path / "history.json"
    path.write_text(json.dumps(curves))
    assert viz.load_history(path) == curves
    fig = viz.plot_history(viz.load_history(str(path)))
    assert len(fig.axes[0].lines) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "load_history: .*history.json is not valid JSON"),
        ("[1, 2]", "load_history: .*history.json must hold a JSON object, got list"),
        ('{"train_loss": [1.0]}', re.escape("load_history: history must have keys")),
    ],
)
def test_load_history_errors(tmp_path: pathlib.Path, content: str, message: str) -> None:
    path = tmp_path / "history.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        viz.load_history(path)


# --- output sizes -------------------------------------------------------------------------


def test_output_size_table_has_the_articles_numbers() -> None:
    fig = viz.plot_output_sizes()
    (ax,) = fig.axes
    assert not ax.images
    assert ax.get_title()
    (table,) = ax.tables
    cells = table.get_celld()
    n_rows = 1 + len(viz.output_size_cases())
    last = max(col for _, col in cells)
    results = [
        int(cells[row, last].get_text().get_text().split("= ")[-1]) for row in range(1, n_rows)
    ]
    # 5x5/3x3 stride 1 and 2; 28 valid; 28 same; 5x5 kernel pad 2; the MNIST CNN chain
    assert results == [3, 2, 26, 28, 28, 26, 13, 11, 5]


@pytest.mark.parametrize("case", viz.output_size_cases(), ids=lambda case: case.case)
def test_output_size_cases_match_real_output_shapes(case: viz.SizeCase) -> None:
    x = jax.ShapeDtypeStruct((1, case.n, case.n, 1), jnp.float32)
    if "pool" in case.case:
        y = jax.eval_shape(lambda x: ops.max_pool2d(x, case.k, case.stride, case.padding), x)
    else:
        w = jax.ShapeDtypeStruct((case.k, case.k, 1, 1), jnp.float32)
        y = jax.eval_shape(
            lambda x, w: ops.conv2d(x, w, stride=case.stride, padding=case.padding), x, w
        )
    assert y.shape == (1, case.output(), case.output(), 1)


# --- saving -------------------------------------------------------------------------------

FIGURES: dict[str, tuple[Callable[..., Figure], tuple[int, int]]] = {
    "classical": (lambda path: viz.plot_classical_kernels(SQUARE, path=path), (460, 1000)),
    "pattern": (lambda path: viz.plot_pattern_match(CIRCLE, (6, 6), path=path), (360, 960)),
    "filters": (
        lambda path: viz.plot_filters_and_feature_maps(W2, B2, PAIR, path=path),
        (600, 600),
    ),
    "filters_3x1": (
        lambda path: viz.plot_filters_and_feature_maps(
            np.concatenate([W2, W2[..., :1]], axis=3),
            np.concatenate([B2, B2[:1]]),
            PAIR[:1],
            names=["square"],
            path=path,
        ),
        (800, 400),
    ),
    "history": (lambda path: viz.plot_history(history(), path=path), (400, 1000)),
    "sizes": (lambda path: viz.plot_output_sizes(path=path), (380, 1000)),
}


@pytest.mark.parametrize("name", FIGURES)
def test_saved_png_has_the_documented_pixel_size(name: str, tmp_path: pathlib.Path) -> None:
    make, (height, width) = FIGURES[name]
    path = tmp_path / "sub" / f"{name}.png"
    fig = make(path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    np.testing.assert_allclose(fig.get_size_inches() * viz.DPI, (width, height))
    assert pixels[..., :3].std() > 0.05, "the picture is not blank"


def test_no_file_without_path(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    viz.plot_output_sizes()
    assert list(tmp_path.iterdir()) == []


def test_figures_are_not_pyplot_figures(tmp_path: pathlib.Path) -> None:
    backend = matplotlib.get_backend()
    fig = viz.plot_classical_kernels(SQUARE, path=tmp_path / "k.png")
    assert fig.canvas.manager is None, "no pyplot window manager behind the figure"
    assert matplotlib.get_backend() == backend
    assert plt.get_fignums() == []


# --- errors -------------------------------------------------------------------------------

ERRORS: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (
        lambda: viz.plot_classical_kernels(PAIR),
        ValueError,
        "plot_classical_kernels: image must be 2-D (H, W), got shape (2, 28, 28, 1)",
    ),
    (
        lambda: viz.plot_classical_kernels(np.ones((8, 8), np.uint8)),
        TypeError,
        "plot_classical_kernels: image must have a real floating dtype",
    ),
    (
        lambda: viz.plot_pattern_match(SQUARE, (26, 0)),
        ValueError,
        "plot_pattern_match: a 3x3 patch at top_left (26, 0) does not fit inside the 28x28 image",
    ),
    (
        lambda: viz.plot_pattern_match(SQUARE, (1.5, 2)),  # type: ignore[arg-type]
        TypeError,
        "plot_pattern_match: top_left must be a pair of ints (row, col), got (1.5, 2)",
    ),
    (
        lambda: viz.plot_pattern_match(SQUARE, (1, 2, 3)),
        ValueError,
        "plot_pattern_match: top_left must be a pair of ints (row, col), got (1, 2, 3)",
    ),
    (
        lambda: viz.plot_pattern_match(SQUARE, (0, 0), size=0),
        ValueError,
        "plot_pattern_match: size must be >= 1, got 0",
    ),
    (
        lambda: viz.plot_filters_and_feature_maps(np.ones((3, 3, 2, 2), np.float32), B2, PAIR),
        ValueError,
        "plot_filters_and_feature_maps: conv_w must take one input channel, "
        "shape (kh, kw, 1, F), got shape (3, 3, 2, 2)",
    ),
    (
        lambda: viz.plot_filters_and_feature_maps(W2[..., 0], B2, PAIR),
        ValueError,
        "plot_filters_and_feature_maps: conv_w must be 4-D (kh, kw, C_in, F), got shape (3, 3, 1)",
    ),
    (
        lambda: viz.plot_filters_and_feature_maps(W2, B2[:1], PAIR),
        ValueError,
        "plot_filters_and_feature_maps: conv_b must have shape (F,) = (2,), got (1,)",
    ),
    (
        lambda: viz.plot_filters_and_feature_maps(W2, B2, PAIR[..., 0]),
        ValueError,
        "plot_filters_and_feature_maps: images must be 4-D (M, H, W, C), got shape (2, 28, 28)",
    ),
    (
        lambda: viz.plot_filters_and_feature_maps(W2, B2, np.concatenate([PAIR, PAIR], axis=3)),
        ValueError,
        "plot_filters_and_feature_maps: images must be grey-scale (M, H, W, 1)",
    ),
    (
        lambda: viz.plot_filters_and_feature_maps(W2, B2, PAIR, names=("square",)),
        ValueError,
        "plot_filters_and_feature_maps: names must have one label per image (2)",
    ),
    (
        lambda: viz.plot_filters_and_feature_maps(W2, B2, PAIR[:1], names="square"),
        TypeError,
        "plot_filters_and_feature_maps: names must be a sequence of strings",
    ),
    (
        lambda: viz.plot_filters_and_feature_maps(W2, B2, PAIR, padding="full"),
        ValueError,
        'plot_filters_and_feature_maps: padding must be "valid", "same", an int',
    ),
    (
        lambda: viz.plot_filters_and_feature_maps(W2, B2, PAIR[:, :2, :2], padding="valid"),
        ValueError,
        "plot_filters_and_feature_maps: conv_w 3x3 is larger than the padded input 2x2",
    ),
    (
        lambda: viz.plot_history("runs/history.json"),  # type: ignore[arg-type]
        TypeError,
        "plot_history: history must be a mapping; read a file with load_history(path)",
    ),
    (
        lambda: viz.plot_history([1.0, 2.0]),  # type: ignore[arg-type]
        TypeError,
        "plot_history: history must be a mapping, got list",
    ),
    (
        lambda: viz.plot_history({"train_loss": [1.0]}),
        ValueError,
        "plot_history: history must have keys ['train_accuracy'], got keys ['train_loss']",
    ),
    (
        lambda: viz.plot_history(history(4) | {"val_loss": [1.0, 2.0]}),
        ValueError,
        "plot_history: history['val_loss'] must have one value per epoch (4, like train_loss), "
        "got 2",
    ),
    (
        lambda: viz.plot_history({"train_loss": [], "train_accuracy": []}),
        ValueError,
        "plot_history: history['train_loss'] must be a non-empty list of numbers, got []",
    ),
    (
        lambda: viz.plot_history({"train_loss": ["a"], "train_accuracy": [1.0]}),  # type: ignore[list-item]
        TypeError,
        "plot_history: history['train_loss'] must be a list of numbers, got ['a']",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), ERRORS, ids=[m for *_, m in ERRORS])
def test_bad_arguments_raise_errors_naming_them(
    call: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()
