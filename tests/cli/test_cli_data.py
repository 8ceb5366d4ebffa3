"""``jaxcnn train MODEL --data PATH`` and ``jaxcnn eval DIR [--data PATH]``: any data, pinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

from jaxcnn import layers
from jaxcnn.data import write_idx
from jaxcnn.data._mnist_spec import TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from jaxcnn.train import load_checkpoint, save_checkpoint
from tests.cli.test_cli import FINAL_LINE, assert_usage_error, run

QUICK = ["--epochs", "1", "--batch-size", "16", "--quiet"]


def idx_folder(folder: Path, classes: int = 4, side: int = 28, seed: int = 0) -> Path:
    """A small MNIST-format folder: 40 training and 12 test images of ``classes`` classes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (40, side, side), dtype=np.uint8),
        TRAIN_LABELS: (np.arange(40) % classes).astype(np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (12, side, side), dtype=np.uint8),
        TEST_LABELS: (np.arange(12) % classes).astype(np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / f"{name}.gz", array)
    return folder


def shapes_npz(path: Path, classes: int = 2) -> Path:
    rng = np.random.default_rng(1)
    np.savez(
        path,
        train_images=rng.random((40, 28, 28)).astype(np.float32),
        train_labels=np.arange(40) % classes,
        test_images=rng.random((10, 28, 28)).astype(np.float32),
        test_labels=np.arange(10) % classes,
    )
    return path


def test_train_on_an_idx_folder_then_eval_on_the_same_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = idx_folder(tmp_path / "letters", classes=4), tmp_path / "run"
    code, stdout, _ = run(
        ["train", "mnist-dense", "--data", str(data), "--out", str(out), *QUICK], capsys
    )
    assert code == 0
    final = FINAL_LINE.match(stdout.strip())
    assert final is not None, stdout
    assert final.group(2) == "12"
    checkpoint = load_checkpoint(out / "checkpoint.npz")
    assert checkpoint.params["dense3"]["w"].shape == (128, 4)  # sized to the data's 4 classes
    assert checkpoint.data is not None
    assert checkpoint.data.kind == "idx"
    assert checkpoint.data.path == str(data.resolve())
    summary = json.loads((out / "history.json").read_text())
    assert summary["data"] == checkpoint.data.to_dict()
    code, stdout, _ = run(["eval", str(out)], capsys)
    assert (code, stdout) == (0, f"test accuracy {final.group(1)}% (12 images)\n")


def test_eval_refuses_changed_or_missing_data_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = idx_folder(tmp_path / "d"), tmp_path / "run"
    assert (
        run(["train", "mnist-dense", "--data", str(data), "--out", str(out), *QUICK], capsys)[0]
        == 0
    )
    idx_folder(data, seed=1)  # other images in the same place
    assert_usage_error(
        run(["eval", str(out)], capsys),
        r"eval: the run's data, the IDX folder .* has changed since it trained \(SHA-256",
    )
    other = idx_folder(tmp_path / "other", seed=2)
    code, stdout, _ = run(["eval", str(out), "--data", str(other)], capsys)
    assert code == 0
    assert stdout.endswith("(12 images)\n")
    for file in data.iterdir():
        file.unlink()
    data.rmdir()
    assert_usage_error(
        run(["eval", str(out)], capsys),
        r"eval: the run's data, the IDX folder .*, is missing .* pass --data PATH",
    )


@pytest.mark.parametrize(
    ("make", "model", "match"),
    [
        (
            lambda path: idx_folder(path, side=20),
            "mnist-dense",
            r"has images of shape 20x20x1 \(H x W x C\), but model mnist-dense takes 28x28x1",
        ),
        (
            lambda path: shapes_npz(path.with_suffix(".npz"), classes=3),
            "shapes",
            r"has 3 classes \(labels 0..2\), but get_model: model 'shapes' is a binary classifier",
        ),
        (
            lambda path: shapes_npz(path.with_suffix(".npz"), classes=1),
            "mnist-cnn",
            r"has one class only \(every label is 0\); a classifier needs two or more",
        ),
        (
            lambda path: path,
            "mnist-dense",
            r"load_data: .* does not exist; --data takes a folder of class folders of images",
        ),
    ],
    ids=["image size", "too many classes for a binary model", "one class", "missing"],
)
def test_data_that_does_not_fit_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, model: str, match: str
) -> None:
    path = make(tmp_path / "data")
    result = run(
        ["train", model, "--data", str(path), "--out", str(tmp_path / "run"), *QUICK], capsys
    )
    assert_usage_error(result, match)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_a_binary_npz_trains_the_shapes_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = shapes_npz(tmp_path / "binary.npz"), tmp_path / "run"
    code, stdout, _ = run(
        ["train", "shapes", "--data", str(path), "--out", str(out), *QUICK], capsys
    )
    assert code == 0, stdout
    checkpoint = load_checkpoint(out / "checkpoint.npz")
    assert checkpoint.data is not None
    assert checkpoint.data.kind == "npz"
    assert run(["eval", str(out)], capsys)[0] == 0
    labels_5 = tmp_path / "five.npz"
    np.savez(labels_5, **{**dict(np.load(path)), "test_labels": np.full(10, 5)})
    assert_usage_error(
        run(["eval", str(out), "--data", str(labels_5)], capsys),
        r"test labels must be in 0..1 for model shapes_cnn \(2 classes\), got values 5 to 5",
    )


def test_resume_keeps_the_runs_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = idx_folder(tmp_path / "d"), tmp_path / "run"
    common = ["--out", str(out), "--batch-size", "16", "--quiet"]
    assert (
        run(["train", "mnist-dense", "--data", str(data), "--epochs", "1", *common], capsys)[0] == 0
    )
    code, _, _ = run(["train", "mnist-dense", "--epochs", "2", "--resume", *common], capsys)
    assert code == 0
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2
    other = idx_folder(tmp_path / "other", seed=3)
    result = run(
        ["train", "mnist-dense", "--data", str(other), "--epochs", "3", "--resume", *common], capsys
    )
    assert_usage_error(
        result, r"--resume: the run trained on the IDX folder .* but --data .* is other data"
    )


def test_mnist_from_another_folder_is_not_trained_on_as_mnist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JAXCNN_DATA", str(tmp_path))
    idx_folder(tmp_path / "mnist", classes=10)
    result = run(["train", "mnist-dense", "--out", str(tmp_path / "run"), *QUICK], capsys)
    assert_usage_error(
        result, r"load_mnist: the MNIST folder .* does not hold MNIST: .* --data PATH"
    )


def test_eval_of_a_model_saved_from_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = layers.serial(
        layers.Conv(3, 3),
        layers.Relu,
        layers.GlobalAvgPool(),
        layers.Dense(4),
        loss="softmax_cross_entropy",
        input_shape=(28, 28, 1),
    )
    _, params = model.init(jax.random.key(0))
    (tmp_path / "mine").mkdir()
    save_checkpoint(tmp_path / "mine" / "checkpoint.npz", model=model, params=params)
    assert_usage_error(
        run(["eval", str(tmp_path / "mine")], capsys),
        r"eval: the checkpoint records no data to use; pass --data PATH",
    )
    data = idx_folder(tmp_path / "d")
    code, stdout, _ = run(["eval", str(tmp_path / "mine"), "--data", str(data)], capsys)
    assert code == 0
    assert stdout.startswith("test accuracy ")
