"""``python -m benchmarks._fit_child MODEL EPOCHS [PRECISION] [--calls N]``: ``fit``'s epoch times.

What a user's script runs: the training split of ``jaxcnn train MODEL``'s data
(``make_shapes(seed=0)``, or the cached MNIST), the model's default settings
(``MODEL_DEFAULTS``), ``fit`` without ``val``, and ``EpochEnd.seconds`` of each
epoch (the epoch and its metrics read back to the host; the first includes
compiling). Prints one JSON line: ``{"epoch_seconds": [...], "images": N}``.

``--calls N`` calls ``fit`` N times in this one process, with the same
arguments, and reports the last call's epochs: ``fit`` called again in a
process that has trained before (a notebook, a test session, a script that
trains twice), against the harness's fresh process (``--calls 1``). Its
first epoch compiles nothing (the epoch function is cached by value).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any


def load_train_split(model: str) -> tuple[Any, Any]:
    """The training images and labels ``jaxcnn train MODEL`` uses (seed 0)."""
    from jaxcnn.data import load_mnist, make_shapes

    return make_shapes(seed=0)[0] if model == "shapes" else load_mnist()[0]


def fit_epoch_seconds(model_name: str, epochs: int, precision: str = "float32") -> dict[str, Any]:
    """Train ``model_name`` with ``fit`` for ``epochs``; every epoch's wall seconds."""
    import jax

    from jaxcnn import models, train

    data = load_train_split(model_name)
    defaults = train.MODEL_DEFAULTS[model_name]
    model = models.get_model(model_name)
    init_key, order_key = jax.random.split(jax.random.key(0))
    seconds: list[float] = []
    train.fit(
        model,
        models.init_params(model, init_key),
        data,
        optimizer=train.make_optimizer(defaults.optimizer, defaults.lr),
        epochs=epochs,
        batch_size=defaults.batch_size,
        key=order_key,
        progress=False,
        precision=precision,
        on_epoch=lambda end: seconds.append(end.seconds),
    )
    return {"epoch_seconds": seconds, "images": len(data[1])}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._fit_child")
    parser.add_argument("model")
    parser.add_argument("epochs", type=int)
    parser.add_argument("precision", nargs="?", default="float32")
    parser.add_argument("--calls", type=int, default=1, help="fit calls in this process")
    args = parser.parse_args(argv[1:])
    for _ in range(args.calls):
        measured = fit_epoch_seconds(args.model, args.epochs, args.precision)
    print(json.dumps({**measured, "calls": args.calls}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
