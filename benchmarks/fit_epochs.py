"""Steady epoch seconds of ``fit`` on the shapes set, for optimizers alternated in one process.

    python -m benchmarks.fit_epochs --runs sgd:0.25 adam:0.01 --repeats 5
    taskset -c 0 python -m benchmarks.fit_epochs --runs adam:0.01   # one core

Each repeat calls ``jaxcnn.train.fit`` once per ``NAME:LR`` in turn, from the same initial
parameters and shuffle key, so the runs share one process's state and the same moment's
load. The first epoch of each call (the compile) is left out. Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import statistics

import jax

from jaxcnn import models, train
from jaxcnn.data import make_shapes
from jaxcnn.layers import Layer, Params


def parse_run(text: str) -> tuple[str, float]:
    """``"sgd:0.25"`` -> ``("sgd", 0.25)``."""
    name, sep, lr = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME:LR such as sgd:0.25, got {text!r}")
    return name, float(lr)


def fit_epoch_seconds(
    model: Layer, params: Params, name: str, lr: float, epochs: int
) -> list[float]:
    """One ``fit`` on the shapes training set; the seconds of each epoch but the first."""
    (images, labels), _ = make_shapes(seed=0)
    seconds: list[float] = []
    train.fit(
        model,
        params,
        (images, labels),
        optimizer=train.make_optimizer(name, lr),
        epochs=epochs,
        batch_size=32,
        key=jax.random.key(1),
        progress=False,
        on_epoch=lambda end: seconds.append(end.seconds),
    )
    return seconds[1:]


def steady_seconds(
    runs: list[tuple[str, float]], repeats: int, epochs: int
) -> dict[str, list[float]]:
    """Epoch seconds (all but each call's first) per ``NAME:LR``, alternated ``repeats`` times."""
    model = models.get_model("shapes")
    params = models.init_params(model, jax.random.key(0))
    seconds: dict[str, list[float]] = {f"{name}:{lr}": [] for name, lr in runs}
    for _ in range(repeats):
        for name, lr in runs:
            seconds[f"{name}:{lr}"] += fit_epoch_seconds(model, params, name, lr, epochs)
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=parse_run, default=[("adam", 0.01)])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=8, help="per call, the first one compiles")
    args = parser.parse_args(argv)
    for run, values in steady_seconds(args.runs, args.repeats, args.epochs).items():
        summary = {"run": run, "epochs": len(values), "min": min(values)}
        summary |= {"median": statistics.median(values), "max": max(values)}
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
