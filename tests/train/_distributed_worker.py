"""One process of a multi-process (or single-process) training scenario, run as a subprocess.

``python -m tests.train._distributed_worker OUT SCENARIO[:ARG...] ...``: with
``JAX_NUM_PROCESSES`` set it first joins the run with ``init_distributed``;
otherwise it is one process with every (forced) CPU device. Every process
writes ``OUT/<scenario>.p<process_id>.json`` (and ``.npz`` arrays); the parent
test makes the assertions.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcnn import models
from jaxcnn.data import make_shapes
from jaxcnn.train import EpochEnd, _feed, _sharding, evaluate, fit, init_distributed, make_optimizer
from tests.train._parallel_worker import (
    COLLECTIVES,
    fit_three_epochs,
    init_params,
    save_arrays,
    small_data,
    to_float64,
)

TIMEOUT = 30  # seconds: heartbeat / connection timeout of these short runs


def join() -> None:
    """Join the run described by the JAX_* environment variables (if any)."""
    if os.environ.get("JAX_NUM_PROCESSES"):
        init_distributed(timeout=TIMEOUT)


def train_small(out: Path, name: str, model: Any, optimizer: Any, data: Any) -> dict[str, Any]:
    """3 float64 epochs over every device; final params and last opt_state to ``name.pI.npz``."""
    devices = jax.device_count()
    params, history, ends = fit_three_epochs(model, optimizer, data, float64=True, devices=devices)
    save_arrays(out / f"{name}.p{jax.process_index()}.npz", params, ends[-1])
    test = to_float64(data)[1]
    metrics = evaluate(model, params, test, batch_size=7, devices=devices)
    return {"history": history, "evaluate": metrics._asdict()}


def float64(out: Path) -> dict[str, Any]:
    """shapes_cnn + SGD and mnist_dense + Adam (10 classes), 70 images, in float64."""
    jax.config.update("jax_enable_x64", True)
    setups = {
        "shapes": (models.shapes_cnn(), make_optimizer("sgd", 0.25), small_data()),
        "dense": (models.mnist_dense(), make_optimizer("adam", 0.01), small_data(classes=10)),
    }
    return {name: train_small(out, name, *setup) for name, setup in setups.items()}


class RecordingArray:
    """An array-like (the documented data hook) that records which rows are read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.reads: list[list[int]] = []  # rows read for training
        self.scans: list[list[int]] = []  # [start, stop) of chunks read by the data check

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, slice):
            self.scans.append([rows.start, rows.stop])
        else:
            self.reads.append(np.asarray(rows).tolist())
        return self.array[rows]


def shares(out: Path) -> dict[str, Any]:
    """Which training rows each process reads in each of 2 epochs (70 samples, batch 32)."""
    del out
    model = models.shapes_cnn()
    (images, labels), test = small_data()
    recorder = RecordingArray(np.asarray(images))
    epoch_reads: list[list[int]] = []

    def on_epoch(end: EpochEnd) -> None:
        epoch_reads.append(sorted({row for read in recorder.reads for row in read}))
        recorder.reads.clear()

    fit(
        model,
        init_params(model, jax.random.key(0)),
        (recorder, labels),
        optimizer=make_optimizer("sgd", 0.25),
        epochs=2,
        batch_size=32,
        key=jax.random.key(1),
        progress=False,
        on_epoch=on_epoch,
        devices=jax.device_count(),
    )
    local = jax.local_devices()
    return {
        "epoch_rows": epoch_reads,
        "scans": recorder.scans,
        "local_mesh_positions": [jax.devices().index(device) for device in local],
        "order": [
            np.asarray(
                jax.random.permutation(jax.random.fold_in(jax.random.key(1), e), 70)
            ).tolist()
            for e in range(2)
        ],
        "test_size": len(test[1]),
    }


def accuracy(out: Path, lr: str, epochs: str, seed: str) -> dict[str, Any]:
    """The full shapes data (3,200 / 800), CLI seeding, float32, over every device."""
    del out
    model, optimizer = models.shapes_cnn(), make_optimizer("sgd", float(lr))
    train, test = make_shapes(seed=int(seed))
    init_key, order_key = jax.random.split(jax.random.key(int(seed)))
    _, history = fit(
        model,
        init_params(model, init_key),
        train,
        optimizer=optimizer,
        epochs=int(epochs),
        batch_size=32,
        key=order_key,
        val=test,
        progress=False,
        devices=jax.device_count(),
    )
    return {"history": history}


def article64(out: Path, epochs: str) -> dict[str, Any]:
    """The article's shapes training (3,200 / 800, SGD 0.25, batch 32, seed 0) in float64."""
    del out
    jax.config.update("jax_enable_x64", True)
    model, optimizer = models.shapes_cnn(), make_optimizer("sgd", 0.25)
    train, test = to_float64(make_shapes(seed=0))
    init_key, order_key = jax.random.split(jax.random.key(0))
    trained, history = fit(
        model,
        to_float64(init_params(model, init_key)),
        train,
        optimizer=optimizer,
        epochs=int(epochs),
        batch_size=32,
        key=order_key,
        val=test,
        progress=False,
        devices=jax.device_count(),
    )
    dtypes = sorted({str(leaf.dtype) for leaf in jax.tree.leaves(trained)})
    return {"history": history, "dtypes": dtypes}


def collectives(out: Path) -> dict[str, Any]:
    """The collectives in the compiled multi-process epoch (shapes_cnn + Adam, batch 32)."""
    del out
    model, optimizer = models.shapes_cnn(), make_optimizer("adam", 0.01)
    mesh = _sharding.data_mesh("worker", jax.device_count())
    params = init_params(model, jax.random.key(0))
    placed = _sharding.replicate((params, optimizer.init(params)), mesh)
    epoch_fn = _feed.fed_epoch_fn(
        model, optimizer, batch_size=32, grads="autodiff", unroll=1, mesh=mesh
    )
    (images, labels), _ = small_data()
    index, weight = _feed.host_plan(jax.random.key(1), 0, len(labels), 32)
    batches = _feed.feed(_feed.HostData(images, labels), index, weight, mesh)
    spec = epoch_fn.args[0]  # type: ignore[attr-defined]
    lowered = _feed._jitted_train(mesh).lower(spec, *placed, *batches)  # one chunk of steps
    hlo = lowered.compile().as_text()
    shards = sorted({tuple(shard.data.shape) for shard in batches[0].addressable_shards})
    return {
        "hlo_ops": {op: len(re.findall(rf" {op}(-start)?\(", hlo)) for op in COLLECTIVES},
        "image_shards": shards,
        "image_shape": list(batches[0].shape),
    }


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "float64": float64,
    "shares": shares,
    "accuracy": accuracy,
    "article64": article64,
    "collectives": collectives,
}


def main(argv: list[str]) -> int:
    """``OUT NAME[:ARG...] [NAME[:ARG...] ...]``: run the scenarios in order, in one process."""
    out, *scenarios = argv
    join()
    for scenario in scenarios:
        name, *args = scenario.split(":")
        result = SCENARIOS[name](Path(out), *args)
        result |= {
            "process_index": jax.process_index(),
            "process_count": jax.process_count(),
            "device_count": jax.device_count(),
            "local_device_count": jax.local_device_count(),
        }
        (Path(out) / f"{name}.p{jax.process_index()}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
