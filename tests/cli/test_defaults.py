"""``jaxcnn train MODEL`` with its defaults reaches the promised accuracy on every seed.

The defaults were chosen by measurement (scripts/seed_sweep.py, the table in
docs/training.md). On the development machine the shapes defaults gave
99.75-100% over seeds 0-9 (at most 2 of 800 test images wrong); the bound
here, 99.5%, leaves room for another CPU's rounding to take another
trajectory. The article's settings gave 97.4-100%, so they get only the
bound every seed met. The MNIST CNN's defaults gave 99.17-99.23% over seeds
0-4, 17 images or more above the promised 99.0%.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jaxcnn import cli, train


def trained_accuracy(model: str, seed: int, out: Path, *options: str) -> float:
    """Train like ``jaxcnn train MODEL --seed SEED OPTIONS``; the test accuracy in history.json."""
    args = ["train", model, "--seed", str(seed), "--out", str(out), "--quiet", *options]
    assert cli.main(args) == 0
    return float(json.loads((out / "history.json").read_text())["test"]["accuracy"])


def test_the_shapes_defaults_are_not_the_articles() -> None:
    defaults, article = train.MODEL_DEFAULTS["shapes"], train.ARTICLE_SETTINGS["shapes"]
    assert (article.optimizer, article.lr, article.batch_size, article.epochs) == (
        "sgd",
        0.25,
        32,
        20,
    )
    assert defaults != article


@pytest.mark.parametrize(
    "seed", [0, *(pytest.param(seed, marks=pytest.mark.slow) for seed in range(1, 10))]
)
def test_shapes_defaults_reach_99_5_percent_on_every_seed(seed: int, tmp_path: Path) -> None:
    assert trained_accuracy("shapes", seed, tmp_path / "run") >= 0.995


@pytest.mark.slow
def test_the_articles_settings_never_collapse(tmp_path: Path) -> None:
    # Seed 2 is the measured worst (97.37%); a collapsed network would sit at 50%.
    assert trained_accuracy("shapes", 2, tmp_path / "run", "--article") >= 0.95


@pytest.mark.slow
def test_mnist_cnn_defaults_reach_99_percent(tmp_path: Path) -> None:
    # About 100 s on 2 cores; needs the MNIST cache (`jaxcnn data fetch mnist`, as CI does).
    assert trained_accuracy("mnist-cnn", 0, tmp_path / "run") >= 0.99
