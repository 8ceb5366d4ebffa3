"""``load_data(FOLDER)`` of class folders: layouts, classes, split, cache, SHA-256, bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from jaxcnn.data import (
    Data,
    DataChangedError,
    DataSource,
    ImageFileError,
    ImageRows,
    ImageSettings,
    class_names,
    load_data,
)
from jaxcnn.data import _cache as cache_module
from jaxcnn.errors import InputError, MissingFileError
from tests.data.images import SUFFIX, random_gray, random_rgb, write_image

FORMATS = ("PNG", "BMP", "WEBP")  # lossless: the bytes written are the oracle
CLASSES = ("Ärger", "cat", "dog", "猫")  # sorted by code point: A-umlaut sorts after ASCII


def sorted_classes() -> list[str]:
    return sorted(CLASSES)


def class_folder(root: Path, per_class: int = 5, side: tuple[int, int] = (6, 5)) -> dict:
    """Class folders of RGB noise in the lossless formats; returns {relative path: pixels}."""
    written = {}
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            fmt = FORMATS[(c + i) % len(FORMATS)]
            pixels = random_rgb(*side, seed=100 * c + i)
            relative = f"{name}/{i:02d}{SUFFIX[fmt]}"
            write_image(root / relative, Image.fromarray(pixels), fmt)
            written[relative] = pixels
    return written


def load(root: Path, tmp_path: Path, **options: Any) -> Data:
    return load_data(root, cache_dir=tmp_path / "cache", **options)


def settings_of(data: Data) -> ImageSettings:
    assert data.source.images is not None
    return data.source.images


def rows_of(images: Any) -> np.ndarray:
    assert isinstance(images, ImageRows)
    return images.rows


def all_rows(data: Data) -> tuple[np.ndarray, np.ndarray]:
    (train_x, train_y), (test_x, test_y) = data.train, data.test
    return (
        np.concatenate([np.asarray(train_x), np.asarray(test_x)]),
        np.concatenate([train_y, test_y]),
    )


@pytest.mark.parametrize(
    "side",
    [(6, 5), (130, 128)],
    ids=["small: decoded on one thread", "large: decoded by the thread pool"],
)
def test_one_set_of_class_folders_loads_the_bytes_written(
    tmp_path: Path, side: tuple[int, int]
) -> None:
    assert (side[0] * side[1] >= cache_module.THREADED_DECODE_PIXELS) == (side[0] > 100)
    root = tmp_path / "photos"
    written = class_folder(root, side=side)
    data = load(root, tmp_path)
    assert isinstance(data.train[0], ImageRows)
    assert data.source.kind == "images"
    assert data.source.path == str(root.resolve())
    settings = settings_of(data)
    assert settings.classes == tuple(sorted_classes()) == class_names(data)
    assert (settings.color, settings.size, settings.test_fraction, settings.seed) == (
        "rgb",
        side,
        0.2,
        0,
    )
    assert len(data.train[1]) == 16  # 5 per class, round(0.2 * 5) = 1 of each for testing
    assert np.bincount(data.test[1]).tolist() == [1, 1, 1, 1]
    images, labels = all_rows(data)
    assert images.dtype == np.float32
    expected = {}
    for relative, pixels in written.items():
        label = sorted_classes().index(relative.split("/")[0])
        expected.setdefault(label, []).append(pixels.astype(np.float32) / np.float32(255))
    for label in range(4):  # every image of each class, whatever the split chose
        got = images[labels == label]
        want = np.stack(expected[label])
        assert sorted(map(bytes, got)) == sorted(map(bytes, want))


def test_the_split_is_drawn_by_the_seed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    class_folder(root, per_class=10)
    first, again = load(root, tmp_path, seed=3), load(root, tmp_path, seed=3)
    np.testing.assert_array_equal(rows_of(first.test[0]), rows_of(again.test[0]))
    other = load(root, tmp_path, seed=4)
    assert not np.array_equal(rows_of(first.test[0]), rows_of(other.test[0]))
    assert first.source.sha256 == other.source.sha256  # the same files
    half = load(root, tmp_path, test_fraction=0.5)
    assert np.bincount(half.test[1]).tolist() == [5, 5, 5, 5]
    with pytest.raises(InputError, match=r"test_fraction must be in \(0, 1\)"):
        load(root, tmp_path, test_fraction=1.0)


def test_train_and_test_folders_are_kept_as_they_are(tmp_path: Path) -> None:
    root = tmp_path / "split"
    for part, count in (("train", 3), ("test", 2)):
        for c, name in enumerate(("b", "a")):
            for i in range(count):
                write_image(root / part / name / f"{i}.png", Image.fromarray(random_gray(4, 4, c)))
    data = load(root, tmp_path)
    assert settings_of(data).classes == ("a", "b")
    assert settings_of(data).test_fraction is None
    assert data.train[1].tolist() == [0, 0, 0, 1, 1, 1]
    assert data.test[1].tolist() == [0, 0, 1, 1]
    assert data.train[0].shape == (6, 4, 4, 1)
    write_image(root / "test" / "zebra" / "0.png", Image.fromarray(random_gray(4, 4)))
    with pytest.raises(InputError, match=r"class folder\(s\) \['zebra'\] that .*train lacks"):
        load(root, tmp_path)


def test_image_rows_index_like_an_array_and_read_lazily(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    class_folder(root)
    images = load(root, tmp_path).train[0]
    whole = np.asarray(images)
    assert images.shape == whole.shape == (16, 6, 5, 3)
    assert images.dtype == np.float32
    assert len(images) == 16
    np.testing.assert_array_equal(images[3], whole[3])
    np.testing.assert_array_equal(np.asarray(images[2:9:3]), whole[2:9:3])
    rows = np.array([5, 0, 5, 15])
    np.testing.assert_array_equal(np.asarray(images[rows]), whole[rows])
    mask = np.arange(16) % 3 == 0
    assert isinstance(images[mask], ImageRows)
    np.testing.assert_array_equal(np.asarray(images[mask]), whole[mask])
    np.testing.assert_array_equal(images[..., 0], whole[..., 0])


def test_mixed_sizes_and_colours_need_image_size_and_color(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    write_image(root / "a" / "1.png", Image.fromarray(random_gray(8, 8)))
    write_image(root / "a" / "2.png", Image.fromarray(random_gray(12, 10)))
    write_image(root / "b" / "1.png", Image.fromarray(random_rgb(8, 8)))
    with pytest.raises(InputError, match=r"a/2\.png is 12x10 .* first image, a/1\.png, is 8x8"):
        load(root, tmp_path)
    with pytest.raises(InputError, match=r"b/1\.png is rgb but the first image.* is grayscale"):
        load(root, tmp_path, image_size=(8, 8))
    data = load(root, tmp_path, image_size=(5, 7), color="rgb", test_fraction=0.5)
    assert data.train[0].shape[1:] == (5, 7, 3)
    settings = settings_of(data)
    assert (settings.resize, settings.convert, settings.size) == (True, True, (5, 7))
    gray = load(root, tmp_path, image_size=(8, 8), color="grayscale", test_fraction=0.5)
    assert gray.train[0].shape[1:] == (8, 8, 1)


def test_a_grayscale_rgb_rgba_palette_mix_converts_as_decode_image_does(tmp_path: Path) -> None:
    root = tmp_path / "modes"
    rgba = np.concatenate([random_rgb(4, 4), random_gray(4, 4)[..., None]], -1)
    palette = Image.fromarray(random_gray(4, 4) % 3, "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    files = {
        "x/gray.png": Image.fromarray(random_gray(4, 4)),
        "x/rgb.jpg": Image.fromarray(random_rgb(4, 4)),
        "y/rgba.png": Image.fromarray(rgba, "RGBA"),
        "y/palette.gif": palette,
        "y/tiny.bmp": Image.fromarray(random_rgb(1, 1)),
    }
    for relative, image in files.items():
        write_image(root / relative, image)
    data = load(root, tmp_path, color="rgb", image_size=(4, 4), test_fraction=0.4)
    images, _ = all_rows(data)
    assert images.shape == (5, 4, 4, 3)
    from jaxcnn.data import decode_image

    expected = [decode_image(root / r, color="rgb", size=(4, 4)) for r in files]
    assert sorted(map(bytes, images)) == sorted(map(bytes, np.stack(expected)))


def test_unreadable_files_are_named_or_skipped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    class_folder(root)
    whole = (root / "cat" / "01.webp").read_bytes()
    (root / "cat" / "01.webp").write_bytes(whole[: len(whole) // 2])
    (root / "dog" / "99.png").write_text("not an image")
    with pytest.raises(ImageFileError, match=r"cat/01\.webp: .*--skip-bad-images"):
        load(root, tmp_path)
    data = load(root, tmp_path, skip_bad=True)
    assert settings_of(data).skipped == ("cat/01.webp", "dog/99.png")
    assert len(data.train[1]) + len(data.test[1]) == 19  # 20 + 1 files, 2 unreadable
    with pytest.raises(ImageFileError, match=r"cat/01\.webp"):  # the cached entry says so too
        load(root, tmp_path)


def test_a_bomb_in_a_class_folder_is_refused_before_decoding(tmp_path: Path) -> None:
    from tests.data.images import png_bomb

    root = tmp_path / "photos"
    class_folder(root)
    (root / "dog" / "bomb.png").write_bytes(png_bomb(20000, 20000))
    with pytest.raises(ImageFileError, match=r"dog/bomb\.png: refused before decoding"):
        load(root, tmp_path)
    assert settings_of(load(root, tmp_path, skip_bad=True)).skipped == ("dog/bomb.png",)


def test_non_image_and_hidden_files_are_ignored_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    class_folder(root)
    plain = load(root, tmp_path)
    (root / "cat" / "notes.txt").write_text("a note")
    (root / "dog" / ".DS_Store").write_bytes(b"\0\1")
    (root / ".hidden").mkdir()
    (root / "LICENSE").write_text("text")
    data = load(root, tmp_path)
    assert settings_of(data).ignored == 3
    assert data.source.sha256 == plain.source.sha256  # only image files are data


def test_the_sha256_covers_every_image_file_and_its_name(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    class_folder(root)
    before = load(root, tmp_path).source.sha256
    path = root / "cat" / "00.bmp"
    original = path.read_bytes()
    write_image(path, Image.fromarray(random_rgb(6, 5, seed=999)), "BMP")
    changed = load(root, tmp_path).source.sha256
    path.write_bytes(original)
    assert load(root, tmp_path).source.sha256 == before
    path.rename(root / "dog" / "00.bmp")  # the same bytes in another class
    moved = load(root, tmp_path).source.sha256
    assert len({before, changed, moved}) == 3


def test_a_changed_folder_is_refused_before_anything_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "photos"
    class_folder(root)
    recorded = load(root, tmp_path).source.sha256
    write_image(root / "cat" / "new.png", Image.fromarray(random_rgb(6, 5, seed=5)))

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded a changed folder")

    monkeypatch.setattr(cache_module, "_decode_one", no_decoding)
    with pytest.raises(DataChangedError, match="has changed since the run recorded it") as err:
        load(root, tmp_path, sha256=recorded)
    assert err.value.expected == recorded


def test_the_cache_is_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "photos"
    class_folder(root)
    first = load(root, tmp_path)
    entries = list((tmp_path / "cache" / "images").iterdir())
    assert len(entries) == 1
    calls: list[object] = []
    real = cache_module._decode_one

    def counted(*args: Any) -> np.ndarray:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(cache_module, "_decode_one", counted)
    again = load(root, tmp_path)
    assert len(calls) == 1  # only the first image, to resolve the size and colour
    np.testing.assert_array_equal(np.asarray(again.train[0]), np.asarray(first.train[0]))
    (entries[0] / "pixels.u8").write_bytes(b"")  # a damaged entry is decoded again
    assert np.array_equal(np.asarray(load(root, tmp_path).train[0]), np.asarray(first.train[0]))


def test_folders_without_classes_or_images_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    with pytest.raises(InputError, match=r"class folder .*cat holds no image files"):
        load(empty, tmp_path)
    flat = tmp_path / "flat"
    write_image(flat / "1.png", Image.fromarray(random_gray(3, 3)))
    with pytest.raises(MissingFileError, match="--data takes a folder of class folders"):
        load(flat, tmp_path)
    npz = tmp_path / "x.npz"
    np.savez(npz, train_images=np.zeros((2, 3, 3)), train_labels=[0, 1])
    with pytest.raises(InputError, match=r"\['image_size'\] apply to image folders only"):
        load(npz, tmp_path, image_size=(3, 3))


def test_sources_round_trip_through_json(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    class_folder(root)
    source = load(root, tmp_path).source
    assert DataSource.from_dict(source.to_dict()) == source
    assert source.load_options() == {"skip_bad": False, "test_fraction": 0.2, "seed": 0}
    old = {"kind": "npz", "sha256": "0" * 64, "path": "/x.npz"}  # checkpoints before images
    assert DataSource.from_dict(old).to_dict() == old
    with pytest.raises(InputError, match="required for kind 'images'"):
        DataSource("images", "0" * 64, "/x")
    with pytest.raises(InputError, match="ImageSettings: expected a dict"):
        ImageSettings.from_dict({"classes": []})
