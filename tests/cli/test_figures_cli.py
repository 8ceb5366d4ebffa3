"""``jaxcnn figures``: the PNGs of a run, their pixel sizes, skipped figures, errors, training."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jax
import matplotlib.image
import numpy as np
import pytest

from jaxcnn import cli, manual, viz
from jaxcnn.cli import _figures as figures
from jaxcnn.cli import _train as train_command
from jaxcnn.data import make_shapes, shapes_data
from jaxcnn.train import ARTICLE_SETTINGS, TrainConfig, load_checkpoint, save_checkpoint
from tests.cli.test_cli import run

ROOT = Path(__file__).resolve().parents[2]
COMMON_PNGS = {  # name -> (height, width) in pixels
    "classical_kernels.png": (460, 1000),
    "pattern_match.png": (360, 960),
    "output_sizes.png": (380, 1000),
}
CURVES = {"training_curves.png": (400, 1000)}
SALIENCY = {"saliency.png": (560, 500)}  # 2 images, 250 px columns
SHAPES_FILTERS = {"learned_filters.png": (600, 600)}  # 2 filters x 2 images, 200 px panels
MNIST_FILTERS = {"learned_filters.png": (1400, 600)}  # 6 of 32 filters x 2 digits
ORDER = [*COMMON_PNGS, "learned_filters.png", "training_curves.png", "saliency.png"]


def small_shapes(seed: int) -> Any:
    """200 shapes instead of 4,000 (160 train, 40 test) to keep training quick."""
    return shapes_data(seed, 100)


@pytest.fixture(autouse=True)
def quick_training(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(train_command.DATA, "shapes", small_shapes)


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch ``jaxcnn train shapes`` run on the small data set."""
    out = tmp_path_factory.mktemp("shapes") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(train_command.DATA, "shapes", small_shapes)
        assert cli.main(["train", "shapes", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    return out


def initial_params(config: TrainConfig) -> Any:
    """Random parameters of the config's model, drawn with NumPy (no compiling)."""
    model = config.build_model()
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), (-1, 28, 28, 1))[1])
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda s: (0.3 * rng.normal(size=s.shape)).astype(s.dtype), shapes)


def saved_run(folder: Path, model: str, epochs: int = 3) -> Path:
    """A run directory holding freshly initialised parameters and a made-up history."""
    config = TrainConfig(model=model, optimizer="adam", lr=1e-3, batch_size=128, epochs=epochs)
    params = initial_params(config)
    steps = np.arange(epochs, dtype=np.float64)
    history = {
        "train_loss": np.exp(-steps).tolist(),
        "train_accuracy": (1 - 0.5 * np.exp(-steps)).tolist(),
        "val_loss": (np.exp(-steps) + 0.1).tolist(),
        "val_accuracy": (0.9 - 0.4 * np.exp(-steps)).tolist(),
    }
    folder.mkdir(parents=True)
    save_checkpoint(
        folder / "checkpoint.npz",
        params=params,
        opt_state=config.build_optimizer().init(params),
        epoch=epochs,
        key=jax.random.key(1),
        config=config,
        history=history,
    )
    summary = {"config": config.to_dict(), "history": history}
    (folder / "history.json").write_text(json.dumps(summary))
    return folder


def assert_pngs(folder: Path, expected: dict[str, tuple[int, int]]) -> None:
    """Exactly the expected PNGs, each of its size and not blank."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
    for name, size in expected.items():
        pixels = matplotlib.image.imread(folder / name)
        assert pixels.shape[:2] == size, name
        assert pixels[..., :3].std() > 0.05, f"{name} is blank"


def assert_one_line_error(result: tuple[int, str, str], message: str) -> None:
    code, _, err = result
    assert code == 2
    assert err.count("\n") == 1, err  # one line, no traceback
    assert err.startswith("jaxcnn figures: error: "), err
    assert message in err, err


def test_a_shapes_run_gives_every_figure(
    shapes_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures"
    code, stdout, err = run(["figures", "--run", str(shapes_run), "--out", str(out)], capsys)
    assert (code, err) == (0, "")
    assert stdout.splitlines() == [str(out / name) for name in ORDER]
    assert_pngs(out, COMMON_PNGS | SHAPES_FILTERS | CURVES | SALIENCY)


def test_saliency_shows_the_input_gradient_of_the_predicted_class(
    shapes_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    real = viz.plot_saliency

    def spy(images: Any, gradients: Any, **kwargs: Any) -> Any:
        calls.append({"images": images, "gradients": gradients, **kwargs})
        return real(images, gradients, **kwargs)

    monkeypatch.setattr(viz, "plot_saliency", spy)
    checkpoint = load_checkpoint(shapes_run / "checkpoint.npz")
    model = checkpoint.model
    figures.plot_saliency(model, checkpoint.params, "shapes", tmp_path / "saliency.png")
    (call,) = calls
    demo = jax.numpy.asarray(viz.demo_shapes()[..., None])
    np.testing.assert_array_equal(call["images"], demo)
    logits = np.asarray(model.apply(checkpoint.params, demo))[:, 0]
    predicted = (logits > 0).astype(np.int32)
    want = manual.input_gradient(model, checkpoint.params, demo, target=predicted)
    np.testing.assert_array_equal(np.asarray(call["gradients"]), np.asarray(want))
    probability = 1 / (1 + np.exp(-logits))  # of a circle
    shapes = ("square", "circle")
    for name, label, k, p in zip(shapes, call["names"], predicted, probability, strict=True):
        shown = max(p, 1 - p)
        assert label == f"{name}\npredicted {('square', 'circle')[k]} ({shown:.1%})"
    assert_pngs(tmp_path, SALIENCY)


def test_first_conv_is_the_checkpoints_first_layer(shapes_run: Path) -> None:
    checkpoint = load_checkpoint(shapes_run / "checkpoint.npz")
    conv = figures.first_conv(checkpoint.model, checkpoint.params)
    assert conv is not None
    np.testing.assert_array_equal(conv.w, checkpoint.params["conv0"]["w"])
    np.testing.assert_array_equal(conv.b, checkpoint.params["conv0"]["b"])
    assert conv.padding == ((1, 1), (1, 1))  # "same" for 3x3
    mnist_config = TrainConfig(model="mnist-cnn")
    mnist_conv = figures.first_conv(mnist_config.build_model(), initial_params(mnist_config))
    assert mnist_conv is not None
    assert mnist_conv.w.shape == (3, 3, 1, 32)
    assert mnist_conv.padding == ((0, 0), (0, 0))
    dense = TrainConfig(model="mnist-dense").build_model()
    assert figures.first_conv(dense, {}) is None


def test_mnist_cnn_run_shows_six_of_its_filters_on_two_digits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    digits = make_shapes(5, seed=0)[0]  # 8 stand-ins: the test must not need the MNIST cache
    labels = np.array([7, 7, 2, 1, 0, 4, 1, 4], np.int32)
    monkeypatch.setattr(figures, "load_mnist", lambda: ((None, None), (digits[0], labels)))
    calls: list[dict[str, Any]] = []
    real = viz.plot_filters_and_feature_maps

    def spy(conv_w: Any, conv_b: Any, images: Any, **kwargs: Any) -> Any:
        calls.append({"w": conv_w, "b": conv_b, "images": images, **kwargs})
        return real(conv_w, conv_b, images, **kwargs)

    monkeypatch.setattr(viz, "plot_filters_and_feature_maps", spy)
    run_dir = saved_run(tmp_path / "run", "mnist-cnn")
    out = tmp_path / "figures"
    code, stdout, _ = run(["figures", "--run", str(run_dir), "--out", str(out)], capsys)
    assert code == 0
    assert stdout.splitlines() == [str(out / name) for name in ORDER]
    assert_pngs(out, COMMON_PNGS | MNIST_FILTERS | CURVES | SALIENCY)
    (call,) = calls
    params = load_checkpoint(run_dir / "checkpoint.npz").params
    np.testing.assert_array_equal(call["w"], np.asarray(params["conv0"]["w"])[..., :6])
    np.testing.assert_array_equal(call["images"], digits[0][[0, 2]])  # first 7, first 2
    assert call["names"] == ["digit 7", "digit 2"]
    assert call["padding"] == ((0, 0), (0, 0))


def test_dense_run_skips_the_filter_figure_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    digits = make_shapes(5, seed=0)[0]  # stand-ins for the saliency figure: no MNIST cache
    labels = np.array([7, 7, 2, 1, 0, 4, 1, 4], np.int32)
    monkeypatch.setattr(figures, "load_mnist", lambda: ((None, None), (digits[0], labels)))
    run_dir = saved_run(tmp_path / "run", "mnist-dense")
    out = tmp_path / "figures"
    code, stdout, _ = run(["figures", "--run", str(run_dir), "--out", str(out)], capsys)
    assert code == 0
    lines = stdout.splitlines()
    assert lines[3] == (
        f"skipped {out / 'learned_filters.png'}: the mnist-dense model has no convolution"
    )
    assert [line for i, line in enumerate(lines) if i != 3] == [
        str(out / name) for name in ORDER if name != "learned_filters.png"
    ]
    assert_pngs(out, COMMON_PNGS | CURVES | SALIENCY)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("params['dense4']['w'].npy")
    data[info.header_offset + 200] ^= 0xFF  # inside the stored array bytes
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run_dir: None, "run: no such run directory"),  # run_dir never made
        (lambda run_dir: (run_dir / "checkpoint.npz").unlink(), "no such checkpoint file"),
        (lambda run_dir: _truncate(run_dir / "checkpoint.npz"), "not a readable jaxcnn checkpoint"),
        (lambda run_dir: _flip_a_byte(run_dir / "checkpoint.npz"), "truncated or corrupted"),
        (lambda run_dir: (run_dir / "history.json").unlink(), "history.json: no such file"),
        (
            lambda run_dir: (run_dir / "history.json").write_text("{oops"),
            "history.json: load_history: ",
        ),
        (
            lambda run_dir: (run_dir / "history.json").write_text('{"history": {}}'),
            "history must have keys",
        ),
    ],
    ids=[
        "missing-dir",
        "missing-checkpoint",
        "truncated-checkpoint",
        "flipped-byte-checkpoint",
        "missing-history",
        "bad-json",
        "no-curves",
    ],
)
def test_missing_or_corrupt_run_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any, message: str
) -> None:
    run_dir = tmp_path / "run"
    if message != "run: no such run directory":
        saved_run(run_dir, "shapes")
    damage(run_dir)
    out = tmp_path / "figures"
    result = run(["figures", "--run", str(run_dir), "--out", str(out)], capsys)
    assert_one_line_error(result, message)
    assert list(out.iterdir()) == []  # nothing drawn from a bad run


@pytest.mark.parametrize("where", ["out-is-a-file", "under-a-file"])
def test_unwritable_out_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    out = blocker if where == "out-is-a-file" else blocker / "figures"
    run_dir = saved_run(tmp_path / "run", "shapes")
    result = run(["figures", "--run", str(run_dir), "--out", str(out)], capsys)
    assert_one_line_error(result, f"cannot write to --out {out}: ")
    assert blocker.read_text() == "a file, not a folder"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seed", "3"], "--seed sets the seed of the training made without --run"),
        (["--train-out", "x"], "--train-out keeps the training made without --run"),
    ],
)
def test_training_options_with_run_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    run_dir = saved_run(tmp_path / "run", "shapes")
    result = run(["figures", "--run", str(run_dir), "--out", str(tmp_path / "f"), *extra], capsys)
    assert_one_line_error(result, message)


def test_without_run_it_trains_the_article_model_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, kept = tmp_path / "figures", tmp_path / "kept"
    args = ["figures", "--out", str(out), "--seed", "2", "--train-out", str(kept)]
    code, stdout, _ = run(args, capsys)
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0] == (
        f"no --run given: training the shapes model first (the article's settings, 10% of the "
        f"training split held out for validation, seed 2) in {kept}"
    )
    assert lines[1].startswith("test accuracy ")  # `jaxcnn train --quiet`'s one line
    assert lines[2:] == [str(out / name) for name in ORDER]
    assert_pngs(out, COMMON_PNGS | SHAPES_FILTERS | CURVES | SALIENCY)
    checkpoint = load_checkpoint(kept / "checkpoint.npz")
    article = ARTICLE_SETTINGS["shapes"]
    assert checkpoint.config == TrainConfig(
        model="shapes",
        optimizer=article.optimizer,
        lr=article.lr,
        batch_size=article.batch_size,
        epochs=article.epochs,
        seed=2,
        val_fraction=0.1,
    )
    assert (article.optimizer, article.lr, article.batch_size, article.epochs) == (
        "sgd",
        0.25,
        32,
        20,
    )
    assert checkpoint.epoch == 20
    assert len(viz.load_history(kept / "history.json")["val_accuracy"]) == 20
    # A kept run is not trained over: draw it with --run instead.
    result = run(["figures", "--out", str(out), "--train-out", str(kept)], capsys)
    assert_one_line_error(result, f"--train-out {kept} already holds a run; draw it with --run")


def test_without_run_the_training_goes_to_a_temporary_directory_and_twice_is_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "figures"
    code, stdout, _ = run(["figures", "--out", str(out)], capsys)
    assert code == 0
    assert stdout.splitlines()[0] == (
        "no --run given: training the shapes model first (the article's settings, 10% of the "
        "training split held out for validation, seed 0) in a temporary directory"
    )
    assert_pngs(out, COMMON_PNGS | SHAPES_FILTERS | CURVES | SALIENCY)
    assert list(scratch.iterdir()) == []  # the training run was deleted
    # Deterministic: training and drawing again give the same bytes, with no
    # matplotlib version (or date) stamped in them.
    again = tmp_path / "again"
    assert run(["figures", "--out", str(again)], capsys)[0] == 0
    for name in ORDER:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
        assert b"Matplotlib" not in (out / name).read_bytes()


def test_load_history_reads_the_run_file_of_jaxcnn_train(shapes_run: Path) -> None:
    summary = json.loads((shapes_run / "history.json").read_text())
    assert set(summary) == {"config", "data", "history", "test"}
    assert viz.load_history(shapes_run / "history.json") == summary["history"]


def test_the_script_is_the_command(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = subprocess.run(
        [sys.executable, "scripts/figures.py", "--run", str(missing), "--out", str(tmp_path)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == f"jaxcnn figures: error: --run {missing}: no such run directory\n"


def test_filter_figure_titles_name_a_dead_filter_and_take_a_title() -> None:
    images = viz.demo_shapes()[..., None]
    w = np.stack([np.ones((3, 3)), -np.ones((3, 3))], axis=-1)[:, :, None, :].astype(np.float32)
    b = np.zeros(2, np.float32)  # filter 2 is negative on every non-negative image: all 0
    fig = viz.plot_filters_and_feature_maps(w, b, images, title="two filters")
    titles = [ax.get_title() for ax in fig.axes]
    assert "filter 1 on square" in titles
    assert "filter 2 on square: all 0" in titles
    assert "filter 2 on circle: all 0" in titles
    assert fig.get_suptitle() == "two filters"
    default = viz.plot_filters_and_feature_maps(w, b, images)
    assert default.get_suptitle() == "learned filters (left), their ReLU feature maps (right)"


def test_curves_take_a_title() -> None:
    curves = {"train_loss": [1.0, 0.5], "train_accuracy": [0.5, 0.9]}
    assert viz.plot_history(curves, title="a run").get_suptitle() == "a run"
    assert viz.plot_history(curves).get_suptitle() == ""


@pytest.mark.parametrize("epochs", [1, 2, 20])
def test_curves_have_whole_epoch_ticks(epochs: int) -> None:
    curves = {"train_loss": [1.0] * epochs, "train_accuracy": [0.5] * epochs}
    fig = viz.plot_history(curves)
    fig.canvas.draw()
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks, "at least one tick"
        assert all(float(t).is_integer() and 1 <= t <= epochs for t in ticks), ticks
