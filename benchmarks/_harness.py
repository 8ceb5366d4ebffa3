"""``python -m benchmarks``: training throughput, convolutions and per-sample gradients, vs PyTorch.

One run measures, in one process (training runs in fresh child processes
started one after the other, for their own peak memory), with warm-up
excluded, compile time reported separately and the median of several repeats:

1. training throughput (images/s) of ``shapes_cnn`` (batch 32, SGD 0.25) and
   ``mnist_cnn`` (batch 128, Adam 1e-3) through :func:`jaxcnn.train.make_epoch_fn`
   on real data, for every ``conv`` implementation and ``grads`` mode;
2. forward and forward+backward of ``conv2d`` for the article's layer shapes
   per implementation, JAX's own autodiff and the manual formulas;
3. per-sample gradients (``vmap(grad)``) vs the batch gradient;
4. the same two models in PyTorch CPU when ``torch`` is importable;
5. peak resident memory of every training run; the machine's fp32 matmul peak
   and the fraction of it the convolutions reach.

>>> results = run(BenchOptions(quick=True, torch=False))  # doctest: +SKIP
>>> print(format_table(results))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from benchmarks._report import format_table, markdown, targets, write_markdown
from benchmarks._torch import torch_status
from benchmarks._train import SETTINGS, TrainSpec, prepare_data, run_child

CONVS = ("auto", "lax", "sliding")
GRADS = ("autodiff", "manual")
MODELS = ("shapes", "mnist-cnn")


class BenchOptions(NamedTuple):
    """What one ``python -m benchmarks`` run measures."""

    quick: bool = False  # tiny repeats and data: for tests and CI, not for numbers
    torch: bool = True  # run the PyTorch baseline when torch is importable
    models: tuple[str, ...] = MODELS
    convs: tuple[str, ...] = CONVS
    grads: tuple[str, ...] = GRADS
    ops: bool = True  # conv, per-sample and matmul benchmarks


class Effort(NamedTuple):
    """Repeats and sizes: full runs and ``--quick`` ones."""

    train_repeats: int
    mnist_steps: int
    op_repeats: int
    loop_length: int
    matmul_sizes: tuple[int, ...]


FULL = Effort(
    train_repeats=7, mnist_steps=40, op_repeats=7, loop_length=4, matmul_sizes=(1024, 2048)
)
QUICK = Effort(train_repeats=2, mnist_steps=3, op_repeats=2, loop_length=1, matmul_sizes=(256,))


def run(options: BenchOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmarks; a JSON-serialisable dict (see docs/benchmarks.md)."""
    from benchmarks._timing import machine_info

    say = progress or (lambda message: None)
    _check(options)
    effort = QUICK if options.quick else FULL
    results: dict[str, Any] = {"machine": machine_info(), "options": options._asdict()}
    results["quick"] = options.quick
    available, reason = torch_status() if options.torch else (False, "disabled by --no-torch")
    results["torch"] = {"available": available, "reason": reason}
    results["threads"] = _threads(available)
    results["training"] = _training(options, effort, available, say)
    if options.ops:
        results.update(_op_benchmarks(effort, say))
    results["load_average_end"] = list(os.getloadavg())
    results["targets"] = targets(results)
    return results


def _check(options: BenchOptions) -> None:
    for name, given, allowed in (
        ("models", options.models, MODELS),
        ("convs", options.convs, CONVS),
        ("grads", options.grads, GRADS),
    ):
        unknown = [value for value in given if value not in allowed]
        if unknown or not given:
            raise ValueError(f"bench: {name} must be a non-empty subset of {allowed}, got {given}")


def _threads(torch_available: bool) -> dict[str, Any]:
    cores = os.cpu_count()
    return {
        "cores": cores,
        "xla": f"XLA's CPU client: one intra-op thread per core ({cores})",
        "torch": f"torch.set_num_threads({cores})" if torch_available else None,
    }


def _training(
    options: BenchOptions, effort: Effort, torch_available: bool, say: Callable[[str], None]
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="jaxcnn-bench-") as folder:
        data = prepare_data(Path(folder), mnist_steps=effort.mnist_steps)
        for model in options.models:
            optimizer, lr, batch = SETTINGS[model]
            path, repeats = data[model]["path"], effort.train_repeats
            runs = [("jax", conv, grads) for conv in options.convs for grads in options.grads]
            if torch_available:
                runs.insert(0, ("torch", "-", "autograd"))
            for framework, conv, grads in runs:
                spec = TrainSpec(framework, model, conv, grads, batch, optimizer, lr, path, repeats)
                say(f"training {spec.framework} {model} conv={spec.conv} grads={spec.grads}")
                row = run_child(spec, timeout=1800)
                row["data_source"] = data[model]["source"]
                rows.append(row)
    return rows


def _op_benchmarks(effort: Effort, say: Callable[[str], None]) -> dict[str, Any]:
    from benchmarks._ops import conv_benchmarks, model_flops, per_sample_benchmarks
    from benchmarks._timing import matmul_peak

    say("matmul peak")
    peak = matmul_peak(effort.matmul_sizes, effort.op_repeats)
    say("convolutions")
    convs = conv_benchmarks(length=effort.loop_length, repeats=effort.op_repeats)
    for row in convs:
        row["fraction_of_peak"] = {k: v / peak["gflops"] for k, v in row["gflops"].items()}
    say("per-sample gradients")
    per_sample = per_sample_benchmarks(repeats=effort.op_repeats)
    flops = {model: model_flops(model) for model in MODELS}
    return {"matmul_peak": peak, "conv": convs, "per_sample": per_sample, "model_flops": flops}


__all__ = [
    "CONVS",
    "GRADS",
    "MODELS",
    "BenchOptions",
    "format_table",
    "markdown",
    "run",
    "targets",
    "write_markdown",
]
