"""Decode and training throughput on a folder of class folders: jaxcnn against plain PyTorch.

    python -m benchmarks.images make /tmp/bench-photos --n 4000 --side 64
    python -m benchmarks.images jax /tmp/bench-photos --epochs 3
    /path/to/torch-venv/bin/python benchmarks/torch_images.py /tmp/bench-photos --epochs 3

``make`` writes ``n`` JPEG files (quality 90) of ``side x side`` RGB, two classes: tinted
stripes with noise, across (``a``) or down (``b``), at random frequencies and phases (a
photo's kind of content, not noise alone, which JPEG barely compresses; grayscale keeps
the cue). ``jax`` times, in one process:

* ``load_data`` with an empty cache: listing, hashing, decoding into the cache
  (``decode_seconds``), and again with the cache there (``cached_load_seconds``:
  hashing only);
* ``jaxcnn.train.fit`` of the same small CNN as the PyTorch script (conv 16 3x3 same,
  ReLU, maxpool 2, conv 32, ReLU, maxpool 2, dense), Adam 1e-3, batch 64, streamed
  from the cache; ``epoch_seconds`` from ``fit``'s own ``on_epoch`` (the first one
  includes compiling).

The PyTorch script decodes every file again every epoch, with 2 loader workers.
Each side prints one JSON line; the numbers in docs/benchmarks.md come from them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from PIL import Image

from jaxcnn import layers, models, train
from jaxcnn.data import load_data


def make_folder(root: Path, n: int, side: int) -> None:
    """``n`` JPEG files in ``root/a`` (stripes across) and ``root/b`` (stripes down)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, side)
    for i in range(n):
        label = i % 2
        frequency, phase = rng.uniform(3, 9), rng.uniform(0, 2 * np.pi)
        wave = 128 + 80 * np.sin(2 * np.pi * frequency * ramp + phase)
        field = np.repeat(wave[:, None], side, 1) if label == 0 else np.repeat(wave[None], side, 0)
        tint = rng.uniform(0.6, 1.0, 3)
        pixels = field[..., None] * tint + rng.normal(0, 12, (side, side, 3))
        folder = root / "ab"[label]
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        image.save(folder / f"{i:05d}.jpg", quality=90)


def small_cnn(side: int, classes: int) -> layers.Layer:
    """The PyTorch script's model, built from jaxcnn's layers."""
    return layers.serial(
        layers.Conv(16, 3, padding="same"),
        layers.Relu,
        layers.MaxPool(2),
        layers.Conv(32, 3, padding="same"),
        layers.Relu,
        layers.MaxPool(2),
        layers.Flatten,
        layers.Dense(classes),
        input_shape=(side, side, 3),
        loss="softmax_cross_entropy",
    )


def measure(folder: Path, epochs: int) -> dict[str, Any]:
    """The jaxcnn side: cold and cached loads, then ``fit`` epochs (see the module docstring)."""
    cache = Path(tempfile.mkdtemp(prefix="jaxcnn-bench-cache-"))
    try:
        started = time.perf_counter()
        data = load_data(folder, cache_dir=cache, test_fraction=0.001)
        decode_seconds = time.perf_counter() - started
        started = time.perf_counter()
        data = load_data(folder, cache_dir=cache, test_fraction=0.001)
        cached_seconds = time.perf_counter() - started
        images = (np.concatenate([data.train[1], data.test[1]]).size, data.train[0].shape[1])
        model = small_cnn(images[1], len(data.source.images.classes))  # type: ignore[union-attr]
        params = models.init_params(model, jax.random.key(0))
        seconds: list[float] = []
        result = train.fit(
            model,
            params,
            data.train,
            optimizer=train.make_optimizer("adam", 1e-3),
            epochs=epochs,
            batch_size=64,
            key=jax.random.key(1),
            progress=False,
            on_epoch=lambda end: seconds.append(end.seconds),
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "side": "jax",
        "images": images[0],
        "train_images": len(data.train[1]),
        "classes": len(data.source.images.classes),  # type: ignore[union-attr]
        "decode_seconds": decode_seconds,
        "cached_load_seconds": cached_seconds,
        "epoch_seconds": seconds,
        "last_loss": result.history["train_loss"][-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("make", "jax"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--n", type=int, default=4000, help="make: images")
    parser.add_argument("--side", type=int, default=64, help="make: image height and width")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if args.action == "make":
        make_folder(args.folder, args.n, args.side)
        return
    print(json.dumps(measure(args.folder, args.epochs)))


if __name__ == "__main__":
    main()
