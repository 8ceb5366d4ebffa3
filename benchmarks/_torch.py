"""The PyTorch CPU baseline: the article's two models, trained idiomatically.

PyTorch is never a dependency of jaxcnn: this module imports ``torch`` only
inside the child process that runs a baseline, and only after
:func:`torch_status` found it installed. The baseline is a normal PyTorch
training loop, written as one would for a fair comparison: the same layers
(NCHW), the same initial-state-independent work, the same optimizer and
learning rate, the same batch size, the data pre-loaded as tensors (no
``DataLoader``), a fresh ``randperm`` each epoch, ``zero_grad(set_to_none=True)``,
``loss.backward()``, ``optimizer.step()``, and the epoch's loss and accuracy
accumulated on the tensors (as the JAX epoch does), read once per epoch.
``torch.set_num_threads`` is the machine's core count, as XLA's CPU client uses.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import time
from typing import Any

from benchmarks._train import TrainSpec, load_data, train_result


def torch_status() -> tuple[bool, str]:
    """``(available, reason)`` without importing torch in this process."""
    if importlib.util.find_spec("torch") is None:
        return False, "torch is not installed (pip install torch==2.13.0 for the baseline rows)"
    return True, f"torch {importlib.metadata.version('torch')}"


def torch_training(spec: TrainSpec) -> dict[str, Any]:
    """The child's PyTorch run: warm up, time ``repeats`` epochs; memory at the end."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    images, labels, rss_data = load_data(spec)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    y = torch.from_numpy(labels).long()
    model, loss_fn = _model(spec.model, torch)
    optimizer = _optimizer(spec, model, torch)

    def epoch() -> Any:
        return _epoch(model, loss_fn, optimizer, x, y, spec.batch_size, torch)

    started = time.perf_counter()
    epoch()
    first = time.perf_counter() - started
    epoch()  # warm-up, excluded
    seconds = []
    for _ in range(spec.repeats):
        started = time.perf_counter()
        epoch()
        seconds.append(time.perf_counter() - started)
    result = train_result(spec, seconds, first, 0.0, rss_data, int(x.shape[0]))
    result["torch_threads"] = torch.get_num_threads()
    return result


def _model(name: str, torch: Any) -> tuple[Any, Any]:
    nn = torch.nn
    if name == "shapes":
        layers = [nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
        model = nn.Sequential(*layers, nn.Linear(392, 1))
        bce = nn.BCEWithLogitsLoss()
        return model, lambda logits, y: bce(logits[:, 0], y.to(logits.dtype))
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1600, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    return model, nn.CrossEntropyLoss()


def _optimizer(spec: TrainSpec, model: Any, torch: Any) -> Any:
    if spec.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=spec.lr)
    return torch.optim.Adam(model.parameters(), lr=spec.lr)


def _epoch(
    model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any, batch_size: int, torch: Any
) -> tuple[float, float]:
    """One shuffled pass; the mean loss and accuracy, read once at the end."""
    model.train()
    n = x.shape[0]
    order = torch.randperm(n)
    loss_sum = torch.zeros(())
    hits = torch.zeros((), dtype=torch.long)
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        xb, yb = x[index], y[index]
        optimizer.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            loss_sum += loss.detach() * xb.shape[0]
            hits += _hits(logits, yb).sum()
    return float(loss_sum) / n, float(hits) / n


def _hits(logits: Any, y: Any) -> Any:
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long() == y
    return logits.argmax(dim=1) == y
