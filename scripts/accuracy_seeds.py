"""Test accuracy over seeds: the spread behind the accuracy bounds of the docs and tests.

Each run trains as ``jaxcnn train`` does with ``--seed S`` (shapes: data,
initial parameters and batch order from S; MNIST: the fixed split, init and
order from S) and records the test accuracy, the final training loss and, for
the shapes CNN, how many of its two conv filters still fire on some training
image (a filter that never fires is dead for good).

    python scripts/accuracy_seeds.py --out docs/accuracy_seeds.json
    python scripts/accuracy_seeds.py --settings gentle --seeds 0 1 2   # a quick look

Settings (``SETTINGS``): the shapes CNN with the article's SGD lr 0.25 for 20
epochs (``article``; ``article-manual`` on the hand-written gradients) and
with lr 0.1 for 30 epochs (``gentle``), batch 32; notebook 04's brief MNIST
runs (first 12,000 training images, 2 epochs of Adam 1e-3, batch 128, full
test set) of the dense network and of the CNN; the slow tests' full MNIST runs
(dense 10 epochs, CNN 1 epoch). MNIST must be cached (``jaxcnn data fetch
mnist``). With ``--out`` an existing record keeps the settings not rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcnn import models, ops, train
from jaxcnn.data import load_mnist, make_shapes

SETTINGS: dict[str, dict[str, Any]] = {
    "article": {"model": "shapes", "optimizer": "sgd", "lr": 0.25, "epochs": 20},
    "gentle": {"model": "shapes", "optimizer": "sgd", "lr": 0.1, "epochs": 30},
    "article-manual": {
        "model": "shapes",
        "optimizer": "sgd",
        "lr": 0.25,
        "epochs": 20,
        "grads": "manual",
    },
    "mnist-brief-dense": {
        "model": "mnist-dense",
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 2,
        "subset": 12_000,
    },
    "mnist-brief-cnn": {
        "model": "mnist-cnn",
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 2,
        "grads": "manual",
        "subset": 12_000,
    },
    "mnist-dense-10-epochs": {
        "model": "mnist-dense",
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 10,
    },
    "mnist-cnn-1-epoch": {"model": "mnist-cnn", "optimizer": "adam", "lr": 1e-3, "epochs": 1},
    # The shorter shapes runs that other tests train (their bounds need a spread too):
    # tests/train/test_precision.py (10 epochs, float32 and bf16), the 4-device and
    # 2-process runs of tests/train/test_parallel.py and test_distributed.py (15 epochs),
    # the float64 article run of test_parallel.py (5 epochs) and the 2-epoch CLI run of
    # the shapes defaults there (Adam 0.01).
    "gentle-10": {"model": "shapes", "optimizer": "sgd", "lr": 0.1, "epochs": 10},
    "gentle-10-bf16": {
        "model": "shapes",
        "optimizer": "sgd",
        "lr": 0.1,
        "epochs": 10,
        "precision": "bf16",
    },
    "gentle-15": {"model": "shapes", "optimizer": "sgd", "lr": 0.1, "epochs": 15},
    "article-5-float64": {
        "model": "shapes",
        "optimizer": "sgd",
        "lr": 0.25,
        "epochs": 5,
        "float64": True,
    },
    "defaults-2": {"model": "shapes", "optimizer": "adam", "lr": 0.01, "epochs": 2},
    # The slow bf16 test of tests/train/test_mnist_training.py compares two runs of one seed
    # after 5 epochs: pair these two settings' runs by seed.
    "mnist-cnn-5-epochs": {"model": "mnist-cnn", "optimizer": "adam", "lr": 1e-3, "epochs": 5},
    "mnist-cnn-5-epochs-bf16": {
        "model": "mnist-cnn",
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 5,
        "precision": "bf16",
    },
}
BATCH = {"shapes": 32, "mnist-dense": 128, "mnist-cnn": 128}


def data(setting: dict[str, Any], seed: int) -> tuple[Any, Any]:
    """The setting's ``(train, test)``; MNIST's training set cut to ``subset`` images if given."""
    if setting["model"] == "shapes":
        return make_shapes(seed=seed)
    (train_x, train_y), test = load_mnist()
    subset = setting.get("subset", len(train_y))
    return (train_x[:subset], train_y[:subset]), test


def run(seed: int, setting: dict[str, Any]) -> dict[str, Any]:
    """One training run; its test accuracy, final training loss (and live filters)."""
    with jax.enable_x64(setting.get("float64", False)):
        return _run(seed, setting)


def _run(seed: int, setting: dict[str, Any]) -> dict[str, Any]:
    (train_x, train_y), test = data(setting, seed)
    model = models.MODELS[setting["model"]]()
    init_key, order_key = jax.random.split(jax.random.key(seed))
    _, params = model.init(init_key, (-1, *models.IMAGE_SHAPE))
    if setting.get("float64", False):  # data and initial parameters cast, as the tests do
        params = jax.tree.map(lambda leaf: leaf.astype(np.float64), params)
        train_x, test = train_x.astype(np.float64), (test[0].astype(np.float64), test[1])
    params, history = train.fit(
        model,
        params,
        (train_x, train_y),
        optimizer=train.make_optimizer(setting["optimizer"], setting["lr"]),
        epochs=setting["epochs"],
        batch_size=BATCH[setting["model"]],
        key=order_key,
        grads=setting.get("grads", "autodiff"),
        progress=False,
        precision=setting.get("precision", "float32"),
    )
    accuracy = float(train.evaluate(model, params, test).accuracy)
    result = {
        "seed": seed,
        "test_accuracy": round(accuracy, 6),
        "test_errors": round((1 - accuracy) * len(test[1])),
        "final_train_loss": round(float(history["train_loss"][-1]), 6),
    }
    if setting["model"] == "shapes":
        conv = params["conv0"]
        maps = ops.relu(ops.conv2d(train_x, conv["w"], conv["b"], padding="same"))
        result["live_filters"] = int(np.asarray(maps.max(axis=(1, 2)) > 0).any(axis=0).sum())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, help="write (or update) the JSON record here")
    args = parser.parse_args()
    record: dict[str, Any] = {"settings": {}}
    if args.out and args.out.exists():
        record = json.loads(args.out.read_text())
    record["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, jax {jax.__version__}"
    seeds = " ".join(map(str, args.seeds))
    for name in args.settings:
        runs = []
        for seed in args.seeds:
            start = time.perf_counter()
            runs.append(run(seed, SETTINGS[name]))
            accuracy = 100 * runs[-1]["test_accuracy"]
            print(f"{name:17s} seed {seed}: {accuracy:6.2f}% ({time.perf_counter() - start:.1f} s)")
        accuracies = [r["test_accuracy"] for r in runs]
        print(f"{name:17s} min {100 * min(accuracies):.2f}%, mean {100 * np.mean(accuracies):.2f}%")
        record["settings"][name] = {
            **SETTINGS[name],
            "command": f"python scripts/accuracy_seeds.py --settings {name} --seeds {seeds}",
            "min_test_accuracy": min(accuracies),
            "mean_test_accuracy": round(float(np.mean(accuracies)), 6),
            "max_test_accuracy": max(accuracies),
            "runs": runs,
        }
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
