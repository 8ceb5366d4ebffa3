"""``load_data`` (IDX folder or .npz), ``mnist_data``, ``shapes_data`` and their SHA-256 sources."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxcnn.data import (
    DataSource,
    class_count,
    load_data,
    load_mnist,
    make_shapes,
    mnist_data,
    shapes_data,
)
from jaxcnn.data._mnist_spec import TRAIN_LABELS
from tests.data.test_data_mnist import altered, pin_to, tiny_mnist, write_folder


def npz_arrays(seed: int = 0, n: int = 6, shape: tuple[int, ...] = (5, 4)) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        "train_labels": rng.integers(0, 4, n).astype(np.int64),
        "test_images": rng.integers(0, 256, (3, *shape), dtype=np.uint8),
        "test_labels": np.array([0, 3, 1]),
    }


def write_npz(path: Path, arrays: dict[str, Any]) -> Path:
    np.savez(path, **arrays)
    return path


def test_an_idx_folder_loads_as_load_mnist_reads_it(tmp_path: Path) -> None:
    arrays = tiny_mnist()
    folder = write_folder(tmp_path / "raw", arrays, gz=False)
    data = load_data(folder)
    (train_x, train_y), (test_x, test_y) = load_mnist(folder)
    for got, want in zip(
        (*data.train, *data.test), (train_x, train_y, test_x, test_y), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert data.source.kind == "idx"
    assert data.source.path == str(folder.resolve())
    gz = load_data(write_folder(tmp_path / "gz", arrays, gz=True))
    assert gz.source.sha256 == data.source.sha256  # the same data, whatever the compression
    other = load_data(write_folder(tmp_path / "other", altered(arrays)))
    assert other.source.sha256 != data.source.sha256


def test_idx_labels_are_not_limited_to_digits(tmp_path: Path) -> None:
    arrays = tiny_mnist()
    arrays[TRAIN_LABELS] = np.arange(len(arrays[TRAIN_LABELS]), dtype=np.uint8) * 4  # up to 24
    data = load_data(write_folder(tmp_path, arrays))
    assert class_count(data) == 25
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.9"):
        load_mnist(tmp_path)  # MNIST's own loader keeps its contract


def test_mnist_data_is_the_pinned_default_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAXCNN_DATA", str(tmp_path))
    arrays = tiny_mnist()
    folder = write_folder(tmp_path / "mnist", arrays)
    with pytest.raises(ValueError, match="does not hold MNIST"):
        mnist_data()
    pin_to(monkeypatch, arrays)
    data = mnist_data()
    assert data.source.kind == "mnist"
    assert data.source.path == str(folder)
    assert load_data(folder).source.sha256 == data.source.sha256  # the same files, one digest


def test_an_npz_loads_scaled_with_the_files_sha256(tmp_path: Path) -> None:
    arrays = npz_arrays()
    path = write_npz(tmp_path / "data.npz", arrays)
    data = load_data(path)
    assert data.train[0].shape == (6, 5, 4, 1)
    assert data.train[0].dtype == np.float32
    np.testing.assert_array_equal(data.train[0][..., 0] * 255, arrays["train_images"])
    np.testing.assert_array_equal(data.test[1], [0, 3, 1])
    assert data.test[1].dtype == np.int32
    assert data.source == DataSource(
        "npz", hashlib.sha256(path.read_bytes()).hexdigest(), str(path.resolve())
    )
    assert class_count(data) == 4


def test_float_images_with_channels_are_used_as_they_are(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {
        **npz_arrays(),
        "train_images": rng.random((6, 5, 4, 3)),
        "test_images": rng.random((3, 5, 4, 3)).astype(np.float32),
    }
    data = load_data(write_npz(tmp_path / "d.npz", arrays))
    assert data.train[0].shape == (6, 5, 4, 3)
    np.testing.assert_array_equal(data.train[0], arrays["train_images"].astype(np.float32))


def _with(**changes: Any) -> dict[str, Any]:
    return {**npz_arrays(), **changes}


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        (
            {k: v for k, v in npz_arrays().items() if k != "test_labels"},
            r"has no \['test_labels'\]; it holds \['train_images', 'train_labels', 'test_images'\]",
        ),
        (_with(train_images=np.zeros((6, 20), np.uint8)), r"train_images must be \[n, H, W\] or"),
        (_with(train_images=np.zeros((0, 5, 4), np.uint8)), r"n >= 1, got \(0, 5, 4, 1\)"),
        (
            _with(test_images=np.zeros((3, 5, 4), np.int16)),
            "must be uint8 .* or floating, got int16",
        ),
        (_with(test_images=np.full((3, 5, 4), np.nan)), "test_images must be finite"),
        (_with(train_labels=np.zeros(6, np.float32)), "train_labels must be integer class ids"),
        (_with(train_labels=np.array([0, 1, -1, 0, 1, 0])), r"class ids >= 0, got values -1 to 1"),
        (_with(test_labels=np.array([0, 1])), r"test_labels must have shape \(3,\), one per image"),
        (
            _with(test_images=np.zeros((3, 5, 5), np.uint8)),
            r"train_images are \(5, 4, 1\) \(H, W, C\) but test_images are \(5, 5, 1\)",
        ),
    ],
    ids=[
        "missing array",
        "images not 3-D or 4-D",
        "no images",
        "int16 images",
        "NaN images",
        "float labels",
        "negative labels",
        "label count",
        "train and test sizes",
    ],
)
def test_npz_errors_name_the_file_and_the_array(tmp_path: Path, arrays: Any, match: str) -> None:
    path = write_npz(tmp_path / "bad.npz", arrays)
    with pytest.raises(ValueError, match=f"load_data: {path}.*{match}"):
        load_data(path)


def test_files_that_are_not_data(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"load_data: .*nope does not exist; --data takes"):
        load_data(tmp_path / "nope")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"is neither a folder nor an \.npz file"):
        load_data(text)
    pickled = io.BytesIO()
    np.savez(pickled, **_with(train_labels=np.array([{"a": 1}] * 6, dtype=object)))
    path = tmp_path / "pickled.npz"
    path.write_bytes(pickled.getvalue())
    with pytest.raises(ValueError, match=r"not a readable \.npz file: Object arrays cannot be"):
        load_data(path)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"not a readable \.npz file"):
        load_data(broken)
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ValueError, match=r"has no \['train_images', .*\]; it holds \[\]"):
        load_data(tmp_path / "empty.npz")
    (tmp_path / "idx").mkdir()
    with pytest.raises(FileNotFoundError, match=r"load_data: .* has no train-images-idx3-ubyte"):
        load_data(tmp_path / "idx")


def test_shapes_data_pins_the_generated_arrays() -> None:
    data = shapes_data(3, 50)
    train, test = make_shapes(50, seed=3)
    for got, want in zip((*data.train, *data.test), (*train, *test), strict=True):
        np.testing.assert_array_equal(got, want)
    assert data.source.kind == "shapes"
    assert data.source.path is None
    assert shapes_data(3, 50).source == data.source
    assert shapes_data(4, 50).source.sha256 != data.source.sha256


def test_data_source_checks_itself() -> None:
    source = DataSource("npz", "0" * 64, "/d.npz")
    assert DataSource.from_dict(source.to_dict()) == source
    assert source.describe() == "the file /d.npz"
    with pytest.raises(
        ValueError, match=r"kind must be one of \('shapes', 'mnist', 'idx', 'npz', 'images'\)"
    ):
        DataSource("http", "0" * 64)
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits, got 'abc'"):
        DataSource("npz", "abc")
    with pytest.raises(ValueError, match="expected a dict with keys"):
        DataSource.from_dict({"kind": "npz"})
