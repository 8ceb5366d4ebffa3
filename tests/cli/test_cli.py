"""``jaxcnn train`` / ``jaxcnn eval``: outputs, resume, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
import pytest

from jaxcnn import cli
from jaxcnn.cli import _train as train_command
from jaxcnn.data import shapes_data
from jaxcnn.train import TrainConfig, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
FINAL_LINE = re.compile(r"^test accuracy (\d+\.\d\d)% \((\d+) images\) in \d+\.\d s$")


@pytest.fixture(autouse=True)
def small_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Train on 400 shapes instead of 4000 to keep the CLI tests quick."""
    monkeypatch.setitem(train_command.DATA, "shapes", lambda seed: shapes_data(seed, 200))


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(args)
    except SystemExit as exit_:  # argparse errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(result: tuple[int, str, str], match: str) -> None:
    code, _, err = result
    assert code == 2
    assert err.count("\n") == 1  # one line, no traceback
    assert "Traceback" not in err
    assert re.search(match, err), err


def test_train_writes_checkpoint_and_history_then_eval_agrees(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, stdout, _ = run(["train", "shapes", "--epochs", "2", "--out", str(out)], capsys)
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("training shapes (413 parameters) on 320 images")
    assert lines[1].startswith("epoch 1/2: train loss")  # not a terminal: one line per epoch
    final = FINAL_LINE.match(lines[-1])
    assert final is not None, lines[-1]
    assert final.group(2) == "80"
    history = json.loads((out / "history.json").read_text())
    assert history["config"]["epochs"] == 2
    assert len(history["history"]["train_accuracy"]) == 2
    assert "val_accuracy" not in history["history"]  # the test split chose nothing
    assert load_checkpoint(out / "checkpoint.npz").epoch == 2

    code, stdout, _ = run(["eval", str(out)], capsys)
    assert code == 0
    assert stdout == f"test accuracy {final.group(1)}% (80 images)\n"


def test_resume_ends_bit_identical_to_an_uninterrupted_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--optimizer", "adam", "--lr", "0.01", "--batch-size", "24", "--quiet"]
    straight, pieces = tmp_path / "straight", tmp_path / "pieces"
    assert (
        run(["train", "shapes", "--epochs", "3", "--out", str(straight), *common], capsys)[0] == 0
    )
    assert run(["train", "shapes", "--epochs", "1", "--out", str(pieces), *common], capsys)[0] == 0
    code, stdout, _ = run(
        ["train", "shapes", "--epochs", "3", "--out", str(pieces), "--resume", "--quiet"], capsys
    )
    assert code == 0
    assert FINAL_LINE.match(stdout.strip())  # --quiet: only the final line
    a, b = load_checkpoint(straight / "checkpoint.npz"), load_checkpoint(pieces / "checkpoint.npz")
    assert a.epoch == b.epoch == 3
    for x, y in zip(
        jax.tree.leaves((a.params, a.opt_state)),
        jax.tree.leaves((b.params, b.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert a.history == b.history
    assert a.config == b.config


def test_nan_loss_exits_3_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    sgd = ["--optimizer", "sgd", "--lr", "0.25"]  # the state the patched optimizer below has
    assert (
        run(["train", "shapes", "--epochs", "1", *sgd, "--out", str(out), "--quiet"], capsys)[0]
        == 0
    )
    good = (out / "checkpoint.npz").read_bytes()

    # Valid data; an infinite step makes the weights inf/NaN (inf * 0), so the next loss is NaN.
    monkeypatch.setattr(
        TrainConfig, "build_optimizer", lambda self, steps_per_epoch=None: optax.sgd(np.inf)
    )
    code, _, err = run(["train", "shapes", "--epochs", "3", "--out", str(out), "--resume"], capsys)
    assert code == cli.EXIT_DIVERGED == 3
    assert err.count("\n") == 1
    assert "training diverged in epoch 2" in err
    assert "(try a smaller learning rate)" in err
    assert "keeps epoch 1" in err
    assert (out / "checkpoint.npz").read_bytes() == good


def test_a_nan_pixel_is_bad_data_not_divergence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    assert run(["train", "shapes", "--epochs", "1", "--out", str(out), "--quiet"], capsys)[0] == 0
    good = (out / "checkpoint.npz").read_bytes()

    def poisoned(seed: int) -> Any:
        data = shapes_data(seed, 200)  # the run's data (same source), with one NaN pixel
        images, labels = data.train
        images = images.copy()
        images[7, 3, 4, 0] = np.nan
        return data._replace(train=(images, labels))

    monkeypatch.setitem(train_command.DATA, "shapes", poisoned)
    result = run(["train", "shapes", "--epochs", "3", "--out", str(out), "--resume"], capsys)
    assert_usage_error(
        result, r"fit: train images\[7\] holds nan at pixel \(3, 4, 0\) .*must be finite"
    )
    assert "learning rate" not in result[2]
    assert (out / "checkpoint.npz").read_bytes() == good


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--epochs", "0"], r"argument --epochs: must be an integer >= 1, got '0'"),
        (["--epochs", "-3"], r"argument --epochs: must be an integer >= 1, got '-3'"),
        (["--epochs", "2.5"], r"argument --epochs: must be an integer >= 1"),
        (["--lr", "0"], r"argument --lr: must be a finite number > 0, got '0'"),
        (["--lr", "-0.1"], r"argument --lr: must be a finite number > 0"),
        (["--lr", "nan"], r"argument --lr: must be a finite number > 0"),
        (["--batch-size", "0"], r"argument --batch-size: must be an integer >= 1"),
        (["--seed", "-1"], r"argument --seed: must be an integer >= 0"),
        (["--optimizer", "rmsprop"], r"argument --optimizer: invalid choice"),
        (["--conv", "fft"], r"argument --conv: invalid choice"),
        (["--resume", "--overwrite"], r"argument --overwrite: not allowed with argument --resume"),
    ],
)
def test_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    result = run(["train", "shapes", "--out", str(tmp_path / "run"), *args], capsys)
    assert_usage_error(result, match)
    assert not (tmp_path / "run").exists()


def test_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert_usage_error(
        run(["train", "resnet"], capsys), r"argument model: invalid choice: 'resnet'"
    )


def test_unwritable_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = run(["train", "shapes", "--out", str(tmp_path / "file" / "run")], capsys)
    assert_usage_error(result, r"jaxcnn train: error: cannot write to the run directory .*file/run")


def test_existing_run_needs_resume_or_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "run")
    assert run(["train", "shapes", "--epochs", "1", "--out", out, "--quiet"], capsys)[0] == 0
    assert_usage_error(
        run(["train", "shapes", "--epochs", "1", "--out", out], capsys),
        "already holds a run; pass --resume to continue it or --overwrite",
    )
    assert_usage_error(
        run(["train", "shapes", "--out", out, "--resume", "--lr", "0.1"], capsys),
        r"--resume: the run was made with --lr 0.01, got 0.1",
    )
    assert_usage_error(
        run(["train", "mnist-dense", "--out", out, "--resume"], capsys),
        r"--resume: .* is a 'shapes' run, not 'mnist-dense'",
    )
    code, stdout, _ = run(
        ["train", "shapes", "--epochs", "1", "--out", out, "--overwrite", "--quiet"], capsys
    )
    assert code == 0
    assert FINAL_LINE.match(stdout.strip())


def test_resume_without_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(["train", "shapes", "--out", str(tmp_path), "--resume"], capsys)
    assert_usage_error(result, r"--resume: .*checkpoint.npz does not exist")


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_eval_of_a_bad_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    path = tmp_path / "checkpoint.npz"
    if damage == "garbage":
        path.write_bytes(os.urandom(300))
    elif damage == "truncated":
        path.write_bytes(b"PK\x03\x04" + os.urandom(100))
    result = run(["eval", str(tmp_path)], capsys)
    assert_usage_error(result, r"jaxcnn eval: error: .*checkpoint.npz: ")


def test_python_dash_m_jaxcnn_in_a_subprocess(tmp_path: Path) -> None:
    # The real command (full data set, default --out runs/shapes under the cwd).
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "jaxcnn", "train", "shapes", "--epochs", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    final = FINAL_LINE.match(result.stdout.strip().splitlines()[-1])
    assert final is not None, result.stdout
    assert final.group(2) == "800"
    assert float(final.group(1)) > 60  # one epoch of the article's settings
    assert (tmp_path / "runs" / "shapes" / "checkpoint.npz").is_file()
    assert (tmp_path / "runs" / "shapes" / "history.json").is_file()


def test_manual_grads_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Needs jaxcnn.manual.with_manual_grads (the manual-gradients branch).
    out = tmp_path / "run"
    code, stdout, _ = run(
        ["train", "shapes", "--epochs", "1", "--grads", "manual", "--out", str(out), "--quiet"],
        capsys,
    )
    assert code == 0
    assert FINAL_LINE.match(stdout.strip())
    config = load_checkpoint(out / "checkpoint.npz").config
    assert config is not None
    assert config.grads == "manual"


def test_mnist_without_data_says_how_to_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JAXCNN_DATA", str(tmp_path / "empty"))
    result = run(["train", "mnist-dense", "--out", str(tmp_path / "run")], capsys)
    assert_usage_error(result, r"load_mnist: .* run `jaxcnn data fetch mnist`")


def test_a_bug_shows_its_traceback_instead_of_a_usage_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only jaxcnn's own errors become one line and exit 2; anything else is a bug to see.
    def broken(seed: int) -> Any:
        raise ValueError("an internal bug, not the user's fault")

    monkeypatch.setitem(train_command.DATA, "shapes", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["train", "shapes", "--out", str(tmp_path / "run")])


def test_the_command_line_prints_a_traceback_and_exits_1_on_a_bug(tmp_path: Path) -> None:
    # The same through a real process: the console entry point turns the exception into exit 1.
    code = (
        "import sys; from jaxcnn.cli import _train; "
        "_train.DATA['shapes'] = lambda seed: 1 / 0; "
        "from jaxcnn.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "train", "shapes", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "ZeroDivisionError" in result.stderr
