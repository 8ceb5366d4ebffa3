"""Data-parallel training throughput: P processes x K devices each (docs/scaling.md).

    python scripts/scaling.py                                  # shapes: 1x1 1x2 1x4 2x1 2x2 4x1
    python scripts/scaling.py --layouts 1x1 2x1 4x1 --models mnist-cnn --grads manual

Each layout ``PxK`` is a fresh set of P processes with K forced CPU devices
each (``XLA_FLAGS=--xla_force_host_platform_device_count=K``). With P > 1 they
join one run through a loopback coordinator (``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``, as ``jaxcnn launch`` sets them) and
``jaxcnn.train.init_distributed``. Every process calls the public
``jaxcnn.train.fit(..., devices=jax.device_count())`` on its copy of the
data, and the script times whole epochs with ``on_epoch`` (after a first
epoch that compiles; median of the rest). P = 1 is the single-process path
(data replicated on the devices), P > 1 the multi-process path (each process
feeds its share of every batch).

On one machine all processes and devices share its cores, so the numbers
measure the overhead of partitioning and of the cross-process all-reduce
(gloo over loopback TCP), not a speedup. Other jobs on the machine change
them; the 1-minute load average is printed with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
from typing import Any

CHILD = "JAXCNN_SCALING_CHILD"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if os.environ.get(CHILD):
        return child(args)
    print(f"{os.cpu_count()} CPUs; times are medians of {args.epochs} epochs after a warm-up")
    print("| model | processes x devices | batch (per device) | img/s | epoch s | load |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model in args.models:
        for layout in args.layouts:
            processes, devices = (int(part) for part in layout.split("x"))
            row = measure(model, processes, devices, args)
            total = processes * devices
            print(
                f"| {model} | {processes} x {devices} | {row['batch']} ({row['batch'] // total}) "
                f"| {row['rate']:,.0f} | {row['epoch']:.3f} | {os.getloadavg()[0]:.1f} |",
                flush=True,
            )
    return 0


def measure(model: str, processes: int, devices: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start the processes of one layout; the timings process 0 prints."""
    port = _free_port()
    command = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--model-now", model]
    children = [
        subprocess.Popen(
            command, env=_environment(index, processes, devices, port), stdout=subprocess.PIPE
        )
        for index in range(processes)
    ]
    outputs = [child.communicate(timeout=args.timeout)[0] for child in children]
    if any(child.returncode for child in children):
        raise SystemExit(f"{model} {processes}x{devices}: a process failed")
    return dict(json.loads(outputs[0].decode().strip().splitlines()[-1]))


def _environment(index: int, processes: int, devices: int, port: int) -> dict[str, str]:
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env = {
        **os.environ,
        CHILD: "1",
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"]),
    }
    if processes > 1:
        env |= {
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": str(processes),
            "JAX_PROCESS_ID": str(index),
        }
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child(args: argparse.Namespace) -> int:
    """One process: join the run (if several), train, print the timings (process 0)."""
    import jax

    from jaxcnn import models
    from jaxcnn.data import load_mnist, make_shapes
    from jaxcnn.train import MODEL_DEFAULTS, EpochEnd, fit, init_distributed, make_optimizer

    if os.environ.get("JAX_NUM_PROCESSES"):
        init_distributed(timeout=120)
    name = args.model_now
    task = MODEL_DEFAULTS[name]
    (images, labels), _ = make_shapes(seed=0) if name == "shapes" else load_mnist()
    if name != "shapes":
        images, labels = images[: args.mnist_images], labels[: args.mnist_images]
    model = models.get_model(name)
    _, params = model.init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
    seconds: list[float] = []

    def on_epoch(end: EpochEnd) -> None:
        seconds.append(end.seconds)

    fit(
        model,
        params,
        (images, labels),
        optimizer=make_optimizer(task.optimizer, task.lr),
        epochs=1 + args.epochs,
        batch_size=task.batch_size,
        key=jax.random.key(1),
        grads=args.grads,
        on_epoch=on_epoch,
        progress=False,
        devices=jax.device_count(),
    )
    epoch = statistics.median(seconds[1:])
    row = {"batch": task.batch_size, "epoch": epoch, "rate": len(labels) / epoch}
    if jax.process_index() == 0:
        print(json.dumps({**row, "first": seconds[0]}), flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["shapes"])
    parser.add_argument(
        "--layouts",
        nargs="+",
        default=["1x1", "1x2", "1x4", "2x1", "2x2", "4x1"],
        help="PROCESSESxDEVICES per process",
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up")
    parser.add_argument("--mnist-images", type=int, default=6400)
    parser.add_argument("--grads", choices=["autodiff", "manual"], default="autodiff")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per layout")
    parser.add_argument("--model-now", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    sys.exit(main())
