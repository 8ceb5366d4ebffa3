"""Start ``jaxcnn explore``'s server in this process, on a free loopback port (a test helper).

>>> with serving(explorer) as url:
...     urllib.request.urlopen(url + "api/info")
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from jaxcnn import train
from jaxcnn.explore import Explorer, Server

SHAPES_EPOCHS = 3
"""Epochs of the small shapes run the explore tests share (100% test accuracy is not needed)."""


@contextlib.contextmanager
def serving(explorer: Explorer, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``explorer`` on a thread; yields the page's URL; shuts the server down after."""
    server = Server(explorer, host, 0)
    thread = threading.Thread(target=server.serve_forever, name="explore-server", daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        thread.join(timeout=30)


def train_shapes_run(out: Path, epochs: int = SHAPES_EPOCHS) -> Path:
    """A small finished shapes run in ``out`` (through the ``jaxcnn train`` command's code)."""
    from jaxcnn.cli import main

    code = main(["train", "shapes", "--epochs", str(epochs), "--out", str(out), "--quiet"])
    if code != 0:
        raise RuntimeError(f"jaxcnn train shapes failed with exit code {code}")
    train.load_checkpoint(out / "checkpoint.npz")  # it is there and loads
    return out
