"""The PyTorch way to train on a folder of class folders, written plainly.

    python benchmarks/torch_images.py DIR --epochs 3 --json out.json

What a PyTorch user writes when torchvision's ``ImageFolder`` is not at hand (its
PyPI wheel does not load against the CPU torch here: ``operator torchvision::nms
does not exist``): a ``Dataset`` that lists the class folders in sorted order and,
per item, opens the file with Pillow, converts it to RGB and makes a tensor; a
``DataLoader(batch_size=64, shuffle=True, num_workers=2)``; the small CNN that
``benchmarks/images.py`` trains with jaxcnn, with Adam at 1e-3. Every epoch decodes
every file again (that is how ``ImageFolder`` works).

It first times one pass of the loader alone (decode throughput), then trains.
Needs torch, numpy and Pillow, never jax or jaxcnn.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


class FolderDataset(Dataset):
    """``root/<class>/<file>``: (image [3, H, W] float32 in [0, 1], class index)."""

    def __init__(self, root: Path) -> None:
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [
            (path, label)
            for label, name in enumerate(self.classes)
            for path in sorted((root / name).rglob("*"))
            if path.suffix.lower() in SUFFIXES
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
        return torch.from_numpy(pixels).permute(2, 0, 1), label


def small_cnn(side: int, classes: int) -> nn.Module:
    """conv 16 3x3 same, ReLU, maxpool 2, conv 32 3x3 same, ReLU, maxpool 2, dense."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (side // 4) ** 2, classes),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    data = FolderDataset(args.folder)
    loader = DataLoader(data, batch_size=64, shuffle=True, num_workers=2)
    started = time.perf_counter()
    for _ in loader:  # one pass: decoding only
        pass
    decode_seconds = time.perf_counter() - started
    side = data[0][0].shape[1]
    model = small_cnn(side, len(data.classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    epochs: list[float] = []
    for _ in range(args.epochs):
        started = time.perf_counter()
        model.train()
        for images, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
        epochs.append(time.perf_counter() - started)
    result: dict[str, Any] = {
        "side": "torch",
        "images": len(data),
        "classes": len(data.classes),
        "decode_seconds": decode_seconds,
        "epoch_seconds": epochs,
        "last_loss": loss.item(),
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
