"""The PyTorch baseline: a plain training script, as a PyTorch user would write it.

Run it alone (it needs torch and numpy, never jax or jaxcnn)::

    python benchmarks/torch_plain.py shapes                 # the article's shapes CNN
    python benchmarks/torch_plain.py mnist-cnn --data DIR   # MNIST IDX files (.gz or raw)
    python benchmarks/torch_plain.py shapes --compile       # the same under torch.compile

It does what ``jaxcnn train MODEL`` does, with the same settings: the same
data (the shapes are drawn by the article's generator with the same NumPy
calls as ``jaxcnn.data.make_shapes``, so the arrays are identical; a test
checks it), the same model, optimizer, learning-rate schedule, batch size and
epochs (jaxcnn's defaults: a test keeps :data:`SETTINGS` equal to them), a fresh
``randperm`` per epoch, the test set evaluated after every epoch, the weights
saved at the end, and a last line ``test accuracy XX.XX% (N images)``.

The loop is the idiomatic one: tensors loaded once, ``model.train()``,
``zero_grad(set_to_none=True)``, forward, loss, backward, step, and
``torch.set_num_threads`` set to the machine's cores. ``--json PATH`` writes
the per-epoch wall times (``python -m benchmarks`` reads them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SETTINGS = {  # optimizer, learning rate, batch size, epochs, schedule: jaxcnn's MODEL_DEFAULTS
    "shapes": ("adam", 0.01, 32, 20, "constant"),
    "mnist-cnn": ("adam", 2e-3, 128, 5, "cosine"),
}
SIZE = 28


def make_shapes(seed: int = 0, n: int = 2000, test_fraction: float = 0.2) -> Any:
    """The article's squares (label 0) and circles (label 1): train and test splits.

    Images ``[n, 1, 28, 28]`` float32 in [0, 1] (NCHW), labels ``[n]`` int64.
    """
    rng = np.random.default_rng(seed)
    grid = np.arange(SIZE)
    side = rng.integers(8, 22, size=n)
    top, left = rng.integers(0, SIZE - side + 1), rng.integers(0, SIZE - side + 1)
    rows = grid[None, :, None] - top[:, None, None]
    cols = grid[None, None, :] - left[:, None, None]
    s = side[:, None, None]
    inside = (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)
    edge = (rows < 2) | (rows >= s - 2) | (cols < 2) | (cols >= s - 2)
    squares = np.where(inside & edge, np.float32(255), np.float32(0))
    radius = rng.uniform(4.0, 10.0, size=n)
    cy, cx = rng.uniform(radius + 2, SIZE - radius - 2), rng.uniform(radius + 2, SIZE - radius - 2)
    dy = grid[None, :, None] + 0.5 - cy[:, None, None]
    dx = grid[None, None, :] + 0.5 - cx[:, None, None]
    d = np.abs(np.sqrt(dy**2 + dx**2) - radius[:, None, None])
    circles = np.where(d <= 1, 255.0, np.where(d <= 1.5, 255 * (1.5 - d) / 0.5, 0.0))
    images = np.concatenate([squares, circles.astype(np.float32)]) / np.float32(255)
    labels = np.repeat(np.array([0, 1]), n)
    n_test = round(n * test_fraction)
    test = np.concatenate([rng.permutation(n)[:n_test] + offset for offset in (0, n)])
    is_test = np.zeros(2 * n, bool)
    is_test[test] = True
    train = rng.permutation(np.flatnonzero(~is_test))
    test = rng.permutation(test)
    return (images[train], labels[train]), (images[test], labels[test])


def load_mnist(folder: Path) -> Any:
    """The standard MNIST IDX files in ``folder`` (``.gz`` or not), pixels / 255."""

    def read(stem: str, offset: int) -> np.ndarray:
        packed = folder / f"{stem}.gz"
        raw = (
            gzip.decompress(packed.read_bytes())
            if packed.exists()
            else (folder / stem).read_bytes()
        )
        return np.frombuffer(raw, np.uint8, offset=offset)

    def split(prefix: str) -> Any:
        images = read(f"{prefix}-images-idx3-ubyte", 16).reshape(-1, SIZE, SIZE)
        labels = read(f"{prefix}-labels-idx1-ubyte", 8).astype(np.int64)
        return images.astype(np.float32) / np.float32(255), labels

    return split("train"), split("t10k")


def build(model: str) -> tuple[nn.Module, Any]:
    """The model and its loss, as in jaxcnn.models (logits in, mean loss out)."""
    if model == "shapes":
        net = nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(392, 1),
        )
        bce = nn.BCEWithLogitsLoss()
        return net, lambda logits, y: bce(logits[:, 0], y.float())
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip
    return net, nn.CrossEntropyLoss()


def predictions(logits: torch.Tensor) -> torch.Tensor:
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


def train_epoch(step: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """One shuffled pass; returns its mean training loss."""
    order = torch.randperm(len(x), device=x.device)
    total = torch.zeros((), device=x.device)
    for start in range(0, len(x), batch_size):
        index = order[start : start + batch_size]
        total += step(x[index], y[index]) * len(index)
    return float(total) / len(x)


def make_step(
    net: Any, loss_fn: Any, optimizer: torch.optim.Optimizer, scheduler: Any = None
) -> Any:
    def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(xb), yb)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return loss.detach()

    return step


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    hits = sum(
        int((predictions(net(x[i : i + 1000])) == y[i : i + 1000]).sum())
        for i in range(0, len(x), 1000)
    )
    net.train()
    return hits / len(x)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(SETTINGS))
    parser.add_argument("--epochs", type=int, help="default: jaxcnn's (shapes 20, mnist-cnn 5)")
    parser.add_argument("--seed", type=int, default=0)
    cache = Path(os.environ.get("JAXCNN_DATA", Path.home() / ".cache/jaxcnn"))
    parser.add_argument("--data", type=Path, default=cache / "mnist", help="MNIST IDX folder")
    parser.add_argument("--compile", action="store_true", help="train a torch.compile'd step")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, help=f"default {default_device}")
    parser.add_argument("--out", type=Path, default=Path("runs/torch"), help="weights folder")
    parser.add_argument("--json", type=Path, help="write epoch times and accuracy here")
    parser.add_argument("--quiet", action="store_true", help="print only the last line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    name, lr, batch_size, epochs, schedule = SETTINGS[args.model]
    epochs = args.epochs or epochs
    (x, y), (x_test, y_test) = (
        make_shapes(args.seed) if args.model == "shapes" else load_mnist(args.data)
    )
    device = torch.device(args.device)
    x, x_test = (torch.from_numpy(a[:, None]).to(device) for a in (x, x_test))  # [N, 1, 28, 28]
    y, y_test = torch.from_numpy(y).to(device), torch.from_numpy(y_test).to(device)
    net, loss_fn = build(args.model)
    net.to(device)
    optimizer = (torch.optim.SGD if name == "sgd" else torch.optim.Adam)(net.parameters(), lr=lr)
    # jaxcnn's "cosine": lr * (1 + cos(pi * t / T)) / 2 at step t of T, down to 0.
    steps = epochs * -(-len(x) // batch_size)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        if schedule == "cosine"
        else None
    )
    # --compile: the model under torch.compile (the usual `model = torch.compile(model)`);
    # the optimizer and the schedule stay eager, so a changing lr recompiles nothing.
    step = make_step(torch.compile(net) if args.compile else net, loss_fn, optimizer, scheduler)
    net.train()
    seconds = []
    for epoch in range(epochs):
        tick = time.perf_counter()
        loss = train_epoch(step, x, y, batch_size)
        seconds.append(time.perf_counter() - tick)
        test = accuracy(net, x_test, y_test)
        if not args.quiet:
            print(f"epoch {epoch + 1}/{epochs}: train loss {loss:.4f}, test acc {100 * test:.2f}%")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out / f"{args.model}.pt")
    took = time.perf_counter() - started
    print(f"test accuracy {100 * test:.2f}% ({len(x_test)} images) in {took:.1f} s")
    if args.json:
        record = {"epoch_seconds": seconds, "test_accuracy": test, "images": len(x)}
        record.update(threads=torch.get_num_threads(), compile=args.compile, device=args.device)
        args.json.write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
