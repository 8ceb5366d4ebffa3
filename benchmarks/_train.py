"""Training throughput benchmarks, each in a fresh child process.

A child process per run gives each its own peak resident memory
(``VmHWM``), for JAX and PyTorch alike, and a clean compile cache. The
parent writes the data once (``.npz``), then starts ``python -m
benchmarks._child SPEC`` for every run, one after the other, and reads one
JSON line back.

The JAX run is the library's real training path: :func:`jaxcnn.train.make_epoch_fn`
(the jitted ``lax.scan`` epoch, donated state), called once to compile (time
from JAX's compile events), once to warm up, then ``repeats`` times, each epoch
waited for; throughput = images per epoch / median epoch time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from benchmarks._proc import current_rss_mb, peak_rss_mb


class TrainSpec(NamedTuple):
    """One training benchmark (JSON-serialisable: it is passed to the child)."""

    framework: str  # "jax" or "torch"
    model: str  # "shapes" or "mnist-cnn"
    conv: str  # "lax", "sliding", "auto" (jax); "-" (torch)
    grads: str  # "autodiff" or "manual" (jax); "autograd" (torch)
    batch_size: int
    optimizer: str  # "sgd" or "adam"
    lr: float
    data: str  # path of the .npz holding images [N, 28, 28, 1] float32 and labels [N] int32
    repeats: int


SETTINGS = {
    # The article's settings: batch 32, SGD 0.25; the MNIST CNN: batch 128, Adam 1e-3.
    "shapes": ("sgd", 0.25, 32),
    "mnist-cnn": ("adam", 1e-3, 128),
}


def prepare_data(folder: Path, *, mnist_steps: int) -> dict[str, dict[str, Any]]:
    """Write each model's training data to ``folder``; say where it came from.

    Shapes: ``make_shapes()``'s training split (3,200 images, 100 steps of 32).
    MNIST: the first ``mnist_steps * 128`` cached training images, or random
    images of the same shape when MNIST is not cached (labelled as such).
    """
    from jaxcnn.data import load_mnist, make_shapes

    (images, labels), _ = make_shapes(seed=0)
    out = {
        "shapes": _write(folder / "shapes.npz", images, labels, "make_shapes(seed=0) train split")
    }
    n = mnist_steps * SETTINGS["mnist-cnn"][2]
    try:
        (images, labels), _ = load_mnist()
        source = f"MNIST training images 0..{n - 1} (cached)"
    except (OSError, ValueError) as err:
        rng = np.random.default_rng(0)
        images = rng.random((n, 28, 28, 1), np.float32)
        labels = rng.integers(0, 10, n).astype(np.int32)
        source = f"random images shaped like MNIST (MNIST not cached: {err})"
    out["mnist-cnn"] = _write(folder / "mnist.npz", images[:n], labels[:n], source)
    return out


def _write(path: Path, images: Any, labels: Any, source: str) -> dict[str, Any]:
    images = np.ascontiguousarray(np.asarray(images, np.float32))
    labels = np.ascontiguousarray(np.asarray(labels, np.int32))
    np.savez(path, images=images, labels=labels)
    return {"path": str(path), "images": int(images.shape[0]), "source": source}


def run_child(spec: TrainSpec, *, timeout: float) -> dict[str, Any]:
    """Run ``spec`` in a fresh Python process; its JSON result, or an ``error``."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "benchmarks._child", json.dumps(spec._asdict())]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec._asdict(), "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**spec._asdict(), "error": f"exit code {done.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def jax_training(spec: TrainSpec) -> dict[str, Any]:
    """The child's JAX run: compile, warm up, time ``repeats`` epochs; memory at the end."""
    import jax

    from benchmarks._timing import compile_log
    from jaxcnn import models, train

    images, labels, rss_data = load_data(spec)
    model = models.get_model(spec.model, impl=spec.conv)
    optimizer = train.make_optimizer(spec.optimizer, spec.lr)
    _, params = jax.jit(lambda key: model.init(key, (-1, *models.IMAGE_SHAPE)))(jax.random.key(0))
    state = [params, optimizer.init(params)]
    x, y = jax.numpy.asarray(images), jax.numpy.asarray(labels)
    del images, labels
    epoch_fn = train.make_epoch_fn(model, optimizer, batch_size=spec.batch_size, grads=spec.grads)
    key = jax.random.key(1)

    def epoch(index: int) -> Any:
        state[0], state[1], metrics = epoch_fn(state[0], state[1], x, y, key, np.int32(index))
        return metrics

    with compile_log() as log:
        started = time.perf_counter()
        jax.block_until_ready(epoch(0))
        first = time.perf_counter() - started
    seconds = _time_epochs(epoch, spec.repeats)
    return train_result(spec, seconds, first, log.seconds("_train_epoch"), rss_data, x.shape[0])


def _time_epochs(epoch: Any, repeats: int) -> list[float]:
    import jax

    jax.block_until_ready(epoch(1))  # warm-up, excluded
    seconds = []
    for index in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(epoch(2 + index))
        seconds.append(time.perf_counter() - started)
    return seconds


def load_data(spec: TrainSpec) -> tuple[np.ndarray, np.ndarray, float]:
    with np.load(spec.data, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    return images, labels, current_rss_mb()


def train_result(
    spec: TrainSpec,
    seconds: list[float],
    first: float,
    compile_seconds: float,
    rss_data: float,
    images: int,
) -> dict[str, Any]:
    median = float(np.median(seconds))
    return {
        **spec._asdict(),
        "images_per_epoch": images,
        "epoch_seconds": seconds,
        "median_epoch_seconds": median,
        "images_per_second": images / median,
        "first_epoch_seconds": first,
        "compile_seconds": compile_seconds,
        "rss_before_training_mb": rss_data,
        "peak_rss_mb": peak_rss_mb(),
    }
