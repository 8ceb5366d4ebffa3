"""Peak memory of decoding and training on an image folder larger than a memory bound.

A child process decodes a folder whose float32 pixels are ``DATA_BYTES``, trains an
epoch on it and evaluates it, then reports its peak RSS (``VmHWM``, see
:mod:`tests.memory`) above its RSS once jax and jaxcnn were imported. The bound is
half the data: no run that held the data set in memory once, as float32, would pass
it. Feeding chunks of 8 MiB (instead of 64) keeps the feed's share small at this data
size; nothing else is tuned.

``-s`` shows the growth (docs/data.md quotes it): compiling and the feed, about the
same at a third of the images, so it does not grow with the data; the data set is
large enough (944 MB as float32) for half of it to clear that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.memory import PEAK_RSS_SOURCE

N_IMAGES, SIDE = 4800, 128
DATA_BYTES = N_IMAGES * SIDE * SIDE * 3 * 4  # as float32: 944 MB
BOUND = DATA_BYTES // 2

CHILD = PEAK_RSS_SOURCE + textwrap.dedent(
    """
    import json, sys
    import jax
    from jaxcnn import layers, models, train
    from jaxcnn.data import load_data
    from jaxcnn.train import _feed

    jax.devices()
    _feed.FEED_CHUNK_BYTES = 8 * 2**20
    before = rss()
    data = load_data(sys.argv[1], cache_dir=sys.argv[2])
    model = layers.serial(
        layers.AvgPool(8), layers.Flatten, layers.Dense(2),
        input_shape=data.train[0].shape[1:], loss="softmax_cross_entropy",
    )
    params = models.init_params(model, jax.random.key(0))
    result = train.fit(
        model, params, data.train, optimizer=train.make_optimizer("sgd", 0.1), epochs=1,
        batch_size=64, key=jax.random.key(1), progress=False,
    )
    metrics = train.evaluate(model, result.params, data.test, batch_size=64)
    peak = peak_rss()
    print(json.dumps({"grown": peak - before, "n": len(data.train[1]) + len(data.test[1]),
                      "accuracy": metrics.accuracy}))
    """
)


def gradient_folder(root: Path) -> None:
    """Smooth RGB images (quick to write and read as PNG), half of them mirrored: two classes."""
    ramp = np.linspace(0, 255, SIDE, dtype=np.float64)
    for i in range(N_IMAGES):
        label = i % 2
        base = np.add.outer(ramp, (ramp * (i % 7)) / 7) / 2
        pixels = np.stack([base, base[::-1], np.full_like(base, 3 * (i % 80))], -1)
        pixels = pixels[:, ::-1] if label else pixels
        folder = root / ("left", "right")[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:04d}.png", compress_level=1)


@pytest.mark.slow
def test_decoding_and_training_memory_does_not_grow_with_the_data(tmp_path: Path) -> None:
    gradient_folder(tmp_path / "photos")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "photos"), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"peak RSS grew {report['grown'] / 2**20:.0f} MiB; data {DATA_BYTES / 2**20:.0f} MiB")
    assert report["n"] == N_IMAGES
    assert report["grown"] < BOUND, (report, BOUND)
    cache = next((tmp_path / "cache" / "images").iterdir()) / "pixels.u8"
    assert cache.stat().st_size == DATA_BYTES // 4  # the cache holds bytes: a quarter of float32
