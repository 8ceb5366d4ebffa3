"""``jaxcnn train``'s training controls: validation split, best checkpoint, early stopping,
optimizer settings, ``--article`` and the per-model defaults in ``--help``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jaxcnn import train
from jaxcnn.train import load_checkpoint
from tests.cli.test_cli import FINAL_LINE, assert_usage_error, run, small_shapes  # noqa: F401

# small_shapes (autouse): 400 shapes, 320 to train and 80 to test.


def run_config(out: Path) -> train.TrainConfig:
    config = load_checkpoint(out / "checkpoint.npz").config
    assert config is not None
    return config


def train_lines(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, stdout, err = run(["train", "shapes", *args], capsys)
    assert code == 0, err
    return stdout.strip().splitlines()


def test_val_fraction_holds_out_part_of_the_training_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    lines = train_lines(["--epochs", "2", "--val-fraction", "0.1", "--out", str(out)], capsys)
    assert lines[0].startswith(
        "training shapes (413 parameters) on 288 images of the generated shapes, validating on "
        "32 held out from them (val_fraction 0.1), testing on the 80 test images after "
        "training: adam lr 0.01, "
    )
    assert re.fullmatch(
        r"epoch 1/2: train loss \S+ acc \S+%, val loss \S+ acc \S+% \(\S+ s\)", lines[1]
    )
    final = FINAL_LINE.match(lines[-1])
    assert final is not None
    assert final.group(2) == "80"
    summary = json.loads((out / "history.json").read_text())
    assert summary["config"]["val_fraction"] == 0.1
    assert len(summary["history"]["val_accuracy"]) == 2
    best = train.best_epoch(summary["history"])
    assert best is not None
    assert summary["best"] == {"epoch": best.epoch, "val_loss": best.value}
    # 32 validation images: accuracies are multiples of 1/32, not of 1/80 like the test's.
    for accuracy in summary["history"]["val_accuracy"]:
        assert round(accuracy * 32) == pytest.approx(accuracy * 32, abs=1e-4)
    assert run_config(out).val_fraction == 0.1


def test_without_val_fraction_the_test_split_is_not_evaluated_during_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    lines = train_lines(["--epochs", "2", "--out", str(out)], capsys)
    assert lines[0].startswith(
        "training shapes (413 parameters) on 320 images of the generated shapes, testing on the "
        "80 test images after training: "
    )
    assert re.fullmatch(r"epoch 1/2: train loss \S+ acc \S+% \(\S+ s\)", lines[1])
    summary = json.loads((out / "history.json").read_text())
    assert sorted(summary["history"]) == ["train_accuracy", "train_loss"]
    assert set(summary) == {"config", "data", "history", "test"}  # no "best" without val


def test_keep_best_keeps_the_best_epoch_beside_the_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["--epochs", "6", "--val-fraction", "0.2", "--keep-best", "--out", str(out)]
    lines = train_lines([*args, "--lr", "0.5"], capsys)
    history = json.loads((out / "history.json").read_text())["history"]
    best = train.best_epoch(history)
    assert best is not None
    kept, last = load_checkpoint(out / "best.npz"), load_checkpoint(out / "checkpoint.npz")
    assert (kept.epoch, last.epoch) == (best.epoch, 6)
    assert kept.history == {name: values[: best.epoch] for name, values in history.items()}
    code, stdout, _ = run(["eval", str(out / "best.npz")], capsys)
    assert code == 0
    best_line = (
        f"best epoch {best.epoch} by val_loss {best.value:.4g}, kept in {out / 'best.npz'}: "
        f"{stdout.strip()}"
    )
    assert best_line in lines
    # --resume continues the last epoch, not the best.
    more = train_lines(["--epochs", "7", "--out", str(out), "--resume"], capsys)
    assert "resuming after epoch 6" in more[0]
    assert load_checkpoint(out / "checkpoint.npz").epoch == 7


def test_patience_stops_early_and_a_resume_stays_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    # 16 validation images: val_accuracy improves at most 16 times in 40 epochs.
    args = ["--epochs", "40", "--val-fraction", "0.05", "--patience", "1", "--out", str(out)]
    lines = train_lines([*args, "--monitor", "val_accuracy"], capsys)
    checkpoint = load_checkpoint(out / "checkpoint.npz")
    assert checkpoint.epoch < 40
    assert lines[-3] == (
        f"stopped early after epoch {checkpoint.epoch}: val_accuracy did not improve for 1 epochs"
    )
    assert checkpoint.history is not None
    assert train.should_stop(checkpoint.history, "val_accuracy", 1)
    again = train_lines(["--epochs", "40", "--out", str(out), "--resume"], capsys)
    assert not any(line.startswith("epoch ") for line in again)
    assert load_checkpoint(out / "checkpoint.npz").epoch == checkpoint.epoch


def test_schedule_and_weight_decay_are_recorded_and_resume_checks_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["--optimizer", "adamw", "--lr", "0.01", "--schedule", "warmup-cosine"]
    lines = train_lines([*args, "--epochs", "2", "--out", str(out)], capsys)
    assert "adamw lr 0.01 (warmup-cosine schedule), weight decay 0.0001, batch 32" in lines[0]
    config = run_config(out)
    assert (config.optimizer, config.schedule, config.weight_decay) == (
        "adamw",
        "warmup-cosine",
        1e-4,
    )
    result = run(["train", "shapes", "--out", str(out), "--resume", "--epochs", "3"], capsys)
    assert_usage_error(result, r"--epochs cannot change under the 'warmup-cosine' schedule")
    result = run(["train", "shapes", "--out", str(out), "--resume", "--weight-decay", "0"], capsys)
    assert_usage_error(result, r"the run was made with --weight-decay 0.0001, got 0.0")
    result = run(
        ["train", "shapes", "--out", str(out), "--resume", "--val-fraction", "0.1"], capsys
    )
    assert_usage_error(result, r"the run was made with --val-fraction 0.0, got 0.1")


def test_article_uses_the_articles_settings_and_says_they_are_seed_sensitive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    lines = train_lines(["--article", "--out", str(out)], capsys)
    assert lines[0].startswith("note: the article's settings are seed-sensitive")
    config = run_config(out)
    article = train.ARTICLE_SETTINGS["shapes"]
    assert (config.optimizer, config.lr, config.batch_size, config.epochs) == ("sgd", 0.25, 32, 20)
    assert (article.optimizer, article.lr, article.batch_size, article.epochs) == (
        "sgd",
        0.25,
        32,
        20,
    )
    other = str(tmp_path / "other")
    result = run(["train", "shapes", "--article", "--lr", "0.1", "--out", other], capsys)
    assert_usage_error(result, r"--article fixes --lr; drop --article or --lr")
    result = run(["train", "shapes", "--article", "--epochs", "3", "--out", other], capsys)
    assert_usage_error(result, r"--article fixes --epochs; drop --article or --epochs")
    result = run(["train", "mnist-cnn", "--article", "--out", str(tmp_path / "m")], capsys)
    assert_usage_error(result, r"--article: the article gives training settings for \['shapes'\]")


def test_help_lists_every_models_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(["train", "--help"], capsys)
    assert code == 0
    for name, defaults in train.MODEL_DEFAULTS.items():
        line = next(line for line in stdout.splitlines() if line.strip().startswith(name + " "))
        assert f"{defaults.optimizer} lr {defaults.lr:g}, batch {defaults.batch_size}, " in line
        assert f"{defaults.epochs} epochs" in line


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--patience", "3"], r"patience need a validation split \(val_fraction > 0\)"),
        (["--keep-best"], r"keep_best need a validation split"),
        (["--val-fraction", "1"], r"argument --val-fraction: must be a number in \[0, 1\)"),
        (["--val-fraction", "-0.1"], r"argument --val-fraction: must be a number in \[0, 1\)"),
        (["--val-fraction", "nan"], r"argument --val-fraction: must be a number in \[0, 1\)"),
        (["--weight-decay", "-1"], r"argument --weight-decay: must be a finite number >= 0"),
        (["--patience", "0"], r"argument --patience: must be an integer >= 1"),
        (["--schedule", "step"], r"argument --schedule: invalid choice"),
        (["--monitor", "loss"], r"argument --monitor: invalid choice"),
        (
            ["--optimizer", "adam", "--weight-decay", "0.1"],
            r"weight_decay must be 0 with 'adam' \(use 'adamw'",
        ),
        (["--val-fraction", "0.001"], r"leaves the validation part empty"),
    ],
)
def test_bad_control_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    result = run(["train", "shapes", "--out", str(tmp_path / "run"), *args], capsys)
    assert_usage_error(result, match)


def test_a_new_run_removes_an_old_best_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    train_lines(
        ["--epochs", "1", "--val-fraction", "0.1", "--keep-best", "--out", str(out)], capsys
    )
    assert (out / "best.npz").exists()
    train_lines(["--epochs", "1", "--out", str(out), "--overwrite"], capsys)
    assert not (out / "best.npz").exists()
    history = load_checkpoint(out / "checkpoint.npz").history
    assert history is not None
    assert sorted(history) == ["train_accuracy", "train_loss"]
