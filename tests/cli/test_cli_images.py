"""``jaxcnn train --data FOLDER`` of class folders, ``eval``, ``--resume``, ``jaxcnn predict``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxcnn import train
from jaxcnn.data import make_shapes
from tests.cli.test_cli import FINAL_LINE, assert_usage_error, run
from tests.cli.test_cli_data import idx_folder
from tests.data.images import random_rgb, write_image

CLASSES = ("carré", "круг")  # the shapes' labels 0 and 1, as class folder names
QUICK = ["--epochs", "2", "--batch-size", "16"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAXCNN_DATA", str(tmp_path / "cache"))


def shapes_folder(root: Path, n_per_class: int = 20) -> Path:
    """The article's squares and circles as 28x28 grayscale PNG/JPEG/BMP files in class folders."""
    (images, labels), _ = make_shapes(n_per_class, seed=1, test_fraction=0.2)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        suffix = (".png", ".bmp", ".gif")[i % 3]
        pixels = np.rint(image[..., 0] * 255).astype(np.uint8)
        write_image(root / CLASSES[label] / f"{i:03d}{suffix}", Image.fromarray(pixels))
    return root


def train_on(folder: Path, out: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    code, stdout, stderr = run(
        ["train", "shapes", "--data", str(folder), "--out", str(out), *QUICK, *flags], capsys
    )
    assert code == 0, stderr
    return stdout


@pytest.fixture
def trained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, str]:
    folder = shapes_folder(tmp_path / "shapes")
    out = tmp_path / "run"
    return folder, out, train_on(folder, out, capsys)


def test_train_records_class_names_and_preprocessing_then_eval_agrees(
    trained: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, stdout = trained
    final = FINAL_LINE.match(stdout.strip().splitlines()[-1])
    assert final is not None, stdout
    checkpoint = train.load_checkpoint(out / "checkpoint.npz")
    assert checkpoint.data is not None
    assert checkpoint.data.kind == "images"
    assert checkpoint.data.images is not None
    assert checkpoint.data.images.classes == CLASSES
    assert (checkpoint.data.images.color, checkpoint.data.images.size) == ("grayscale", (28, 28))
    summary = json.loads((out / "history.json").read_text("utf-8"))
    assert summary["data"]["images"]["classes"] == list(CLASSES)
    assert summary["data"] == checkpoint.data.to_dict()
    code, eval_out, _ = run(["eval", str(out)], capsys)
    assert (code, eval_out) == (0, f"test accuracy {final.group(1)}% ({final.group(2)} images)\n")


def test_eval_refuses_a_changed_folder(
    trained: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out, _ = trained
    write_image(folder / CLASSES[0] / "extra.png", Image.fromarray(np.zeros((28, 28), np.uint8)))
    assert_usage_error(
        run(["eval", str(out)], capsys),
        r"eval: the run's data, the image folder .*shapes, has changed since it trained",
    )


def test_resume_continues_bit_identically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shapes_folder(tmp_path / "shapes")
    whole, part = tmp_path / "whole", tmp_path / "part"
    train_on(folder, whole, capsys)
    first = ["train", "shapes", "--data", str(folder), "--out", str(part), "--epochs", "1"]
    run([*first, "--batch-size", "16"], capsys)
    code, _, stderr = run(["train", "shapes", "--out", str(part), *QUICK, "--resume"], capsys)
    assert code == 0, stderr
    history = [json.loads((d / "history.json").read_text())["history"] for d in (whole, part)]
    assert history[0] == history[1]
    assert_usage_error(
        run(
            ["train", "shapes", "--out", str(part), "--epochs", "3", "--resume", "--color", "rgb"],
            capsys,
        ),
        "--resume reads the run's images as it did",
    )


def test_predict_prints_top_classes_by_name_and_json_lines(
    trained: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out, _ = trained
    checkpoint = train.load_checkpoint(out / "checkpoint.npz")
    files = sorted((folder / CLASSES[1]).glob("*.png"))[:2]
    code, stdout, _ = run(["predict", str(out), *map(str, files), "--json"], capsys)
    assert code == 0
    records = [json.loads(line) for line in stdout.splitlines()]
    assert [r["path"] for r in records] == [str(f) for f in files]
    from jaxcnn.data import decode_image

    pixels = np.stack([decode_image(f, color="grayscale", size=(28, 28)) for f in files])
    probs = np.asarray(train.predict(checkpoint.model, checkpoint.params, pixels))
    for record, row in zip(records, probs, strict=True):
        best = int(np.argmax(row))
        assert record["label"] == CLASSES[best]
        assert record["probability"] == pytest.approx(float(row[best]), rel=1e-6)
        assert [name for name, _ in record["top"]] == [CLASSES[best], CLASSES[1 - best]]
        assert sum(p for _, p in record["top"]) == pytest.approx(1, rel=1e-5)
    code, stdout, _ = run(["predict", str(out), str(folder / CLASSES[0]), "--top", "1"], capsys)
    lines = stdout.splitlines()
    assert code == 0
    assert len(lines) == len(list((folder / CLASSES[0]).iterdir()))
    assert all(line.split(": ")[1].split(" ")[0] in CLASSES for line in lines)
    code, stdout, _ = run(["predict", str(out), str(folder / "*" / "00[0-5].*")], capsys)
    assert (code, len(stdout.splitlines())) == (0, 6)


def test_predict_applies_the_runs_size_and_colour(
    trained: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = trained
    photo = write_image(tmp_path / "photo.jpg", Image.fromarray(random_rgb(60, 45)))
    code, stdout, _ = run(["predict", str(out), str(photo), "--json"], capsys)
    assert code == 0
    assert json.loads(stdout)["label"] in CLASSES


def test_predict_names_bad_files_or_skips_and_counts_them(
    trained: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, out, _ = trained
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    good = next((folder / CLASSES[0]).glob("*.png"))
    assert_usage_error(run(["predict", str(out), str(bad)], capsys), r"bad\.png: .*--skip-bad")
    code, stdout, stderr = run(
        ["predict", str(out), str(good), str(bad), "--skip-bad-images"], capsys
    )
    assert code == 0
    assert len(stdout.splitlines()) == 1
    assert "skipped 1 unreadable image file(s)" in stderr
    assert_usage_error(run(["predict", str(out), str(tmp_path / "none*.png")], capsys), "matches")


def test_bad_files_in_the_folder_stop_training_or_are_skipped_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shapes_folder(tmp_path / "shapes")
    (folder / CLASSES[0] / "zz.jpg").write_bytes(b"\xff\xd8\xff truncated")
    (folder / CLASSES[1] / "notes.txt").write_text("not data")
    out = tmp_path / "run"
    command = ["train", "shapes", "--data", str(folder), "--out", str(out), *QUICK]
    assert_usage_error(run(command, capsys), r"zz\.jpg: .*--skip-bad-images")
    code, _, stderr = run([*command, "--skip-bad-images"], capsys)
    assert code == 0
    assert f"skipped 1 unreadable image file(s) (--skip-bad-images): {CLASSES[0]}/zz.jpg" in stderr
    assert "ignored 1 file(s) that are not images by name" in stderr


def test_image_size_and_color_adapt_a_folder_of_photos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    for c, name in enumerate(("a", "b")):
        for i in range(10):
            size = (40 + i, 36)
            write_image(
                folder / name / f"{i}.jpg", Image.fromarray(random_rgb(*size, seed=c * 9 + i))
            )
    out = tmp_path / "run"
    command = ["train", "shapes", "--data", str(folder), "--out", str(out), *QUICK]
    assert_usage_error(run(command, capsys), r"is 41x36 .*--image-size H W")
    assert_usage_error(
        run([*command, "--image-size", "28", "28"], capsys),
        r"images of shape 28x28x3 .*model shapes takes 28x28x1",
    )
    code, _, stderr = run([*command, "--image-size", "28", "28", "--color", "grayscale"], capsys)
    assert code == 0, stderr
    checkpoint = train.load_checkpoint(out / "checkpoint.npz")
    assert checkpoint.data is not None
    assert checkpoint.data.images is not None
    assert checkpoint.data.images.resize
    assert checkpoint.data.images.convert
    code, _, _ = run(["eval", str(out)], capsys)
    assert code == 0
    assert_usage_error(
        run(["train", "shapes", "--image-size", "28", "28", "--out", str(tmp_path / "x")], capsys),
        "--image-size: only for --data FOLDER",
    )


def test_predict_on_an_mnist_format_run_reads_a_png_of_a_digit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = idx_folder(tmp_path / "digits", classes=4), tmp_path / "run"
    code, _, _ = run(
        ["train", "mnist-dense", "--data", str(data), "--out", str(out), *QUICK, "--quiet"],
        capsys,
    )
    assert code == 0
    from jaxcnn.data import load_data

    test_images = load_data(data).test[0]
    digit = np.rint(np.asarray(test_images[0])[..., 0] * 255).astype(np.uint8)
    png = write_image(tmp_path / "digit.png", Image.fromarray(digit))
    code, stdout, _ = run(["predict", str(out), str(png), "--json", "--top", "4"], capsys)
    assert code == 0
    record = json.loads(stdout)
    checkpoint = train.load_checkpoint(out / "checkpoint.npz")
    want = np.asarray(train.predict(checkpoint.model, checkpoint.params, test_images[0][None]))[0]
    assert record["label"] == str(int(np.argmax(want)))  # classes are named by their digit
    assert [p for _, p in record["top"]] == pytest.approx(sorted(want, reverse=True), rel=1e-6)
