"""Data-parallel training throughput on 1, 2, 4 devices (docs/scaling.md).

    python scripts/scaling.py                       # shapes and mnist-cnn, 1 2 4 devices
    python scripts/scaling.py --models shapes --devices 1 2 --epochs 5

Without real accelerators it forces N CPU devices (``XLA_FLAGS=
--xla_force_host_platform_device_count=N``, set here before jax is imported):
those share the machine's cores, so the numbers measure the overhead of the
partitioned program and its all-reduces, not a speedup.

For every model and device count it times whole training epochs (the
compiled ``fit`` epoch, after one warm-up epoch that compiles) with the data
set replicated on every device (what ``fit(devices=N)`` does) and, for N > 1,
with the data set split over the devices along the sample axis (each step
then needs a collective to gather its shuffled batch). MNIST uses the first
``--mnist-images`` training images (the cached MNIST: ``jaxcnn data fetch
mnist``) to keep the run short.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault(
        "XLA_FLAGS", f"--xla_force_host_platform_device_count={max(args.devices)}"
    )
    import jax  # after XLA_FLAGS is set

    print(
        f"jax {jax.__version__}, {jax.device_count()} {jax.devices()[0].platform} devices, "
        f"grads {args.grads}, load average {os.getloadavg()[0]:.2f}"
    )
    print("| model | devices | data | batch | per device | img/s | epoch s | compile+1st s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.models:
        for devices in args.devices:
            layouts = ("replicated", "sharded") if devices > 1 else ("replicated",)
            for layout in layouts:
                row = measure(name, devices, layout, args)
                print(
                    f"| {name} | {devices} | {layout} | {row['batch']} | "
                    f"{row['batch'] // devices} | {row['rate']:,.0f} | {row['epoch']:.3f} | "
                    f"{row['first']:.1f} |",
                    flush=True,
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


def measure(name: str, devices: int, layout: str, args: argparse.Namespace) -> dict[str, Any]:
    """Median epoch time of ``name`` on ``devices`` devices with the data ``layout``."""
    import jax
    import numpy as np

    from jaxcnn import models
    from jaxcnn.data import load_mnist, make_shapes
    from jaxcnn.train import MODEL_DEFAULTS, make_optimizer
    from jaxcnn.train import _sharding as _parallel

    task = MODEL_DEFAULTS[name]
    (images, labels), _ = make_shapes(seed=0) if name == "shapes" else load_mnist()
    if name != "shapes":
        images, labels = images[: args.mnist_images], labels[: args.mnist_images]
    model = models.get_model(name)
    optimizer = make_optimizer(task.optimizer, task.lr)
    _, params = model.init(jax.random.key(0), (-1, *models.IMAGE_SHAPE))
    mesh = _parallel.data_mesh("scaling", devices)
    epoch_fn = _parallel.sharded_epoch_fn(
        model, optimizer, batch_size=task.batch_size, grads=args.grads, unroll=1, mesh=mesh
    )
    state = _parallel.replicate((params, optimizer.init(params), jax.random.key(1)), mesh)
    params, opt_state, key = state
    if layout == "replicated":
        data = _parallel.replicate((images, labels), mesh)
    else:  # each device holds len / devices samples; the step gathers across devices
        samples = _parallel.batch_sharding(mesh)  # axis 0 split over the mesh
        data = tuple(jax.device_put(np.asarray(a), samples) for a in (images, labels))
        epoch_fn = _data_sharded_epoch(mesh, epoch_fn.args[0])
    times = []
    for epoch in range(1 + args.epochs):
        started = time.perf_counter()
        params, opt_state, metrics = epoch_fn(params, opt_state, *data, key, np.int32(epoch))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times[1:])
    return {
        "batch": task.batch_size,
        "rate": len(labels) / seconds,
        "epoch": seconds,
        "first": times[0],
    }


def _data_sharded_epoch(mesh: Any, spec: Any) -> Any:
    """The same epoch with the data arrays split along the sample axis."""
    import functools

    import jax

    from jaxcnn.train import _sharding as _parallel

    samples, everywhere = _parallel.batch_sharding(mesh), _parallel.replicated(mesh)
    jitted = jax.jit(
        _parallel._epoch_positional,
        static_argnums=0,
        donate_argnums=(1, 2),
        in_shardings=(everywhere, everywhere, samples, samples, everywhere, everywhere),
        out_shardings=everywhere,
    )
    return functools.partial(jitted, spec)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["shapes", "mnist-cnn"])
    parser.add_argument("--devices", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up")
    parser.add_argument("--mnist-images", type=int, default=6400)
    parser.add_argument("--grads", choices=["autodiff", "manual"], default="autodiff")
    return parser


if __name__ == "__main__":
    sys.exit(main())
