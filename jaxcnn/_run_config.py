"""What a training run is made of: its config, and the optimizer it names.

A :class:`TrainConfig` is everything needed to rebuild a run's model and
optimizer (and its data, through the seed); checkpoints store it as JSON.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import optax

from jaxcnn import models
from jaxcnn.layers import Layer

OPTIMIZERS = ("sgd", "adam")
"""Names accepted by :func:`make_optimizer`."""
GRADS = ("autodiff", "manual")
"""How gradients are computed: ``jax.grad`` of the model, or the manual formulas."""
CONV_IMPLS = ("auto", "lax", "sliding")
"""Convolution implementations (:func:`jaxcnn.ops.conv2d`'s ``impl``)."""


def make_optimizer(name: str, lr: float) -> optax.GradientTransformation:
    """An optax optimizer by name.

    ``"sgd"`` is the article's plain rule ``p <- p - lr * grad``;
    ``"adam"`` is ``optax.adam(lr)`` (Keras' default for the article's models).

    Args:
      name: ``"sgd"`` or ``"adam"``.
      lr: learning rate, a finite number > 0.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"make_optimizer: name must be one of {list(OPTIMIZERS)}, got {name!r}")
    lr = _positive_float("make_optimizer", "lr", lr)
    return optax.sgd(lr) if name == "sgd" else optax.adam(lr)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (all JSON-serialisable).

    Attributes:
      model: a name in :data:`jaxcnn.models.MODELS` (``"shapes"``, ...).
      conv: convolution implementation, ``"auto"``, ``"lax"`` or ``"sliding"``.
      optimizer: ``"sgd"`` or ``"adam"``.
      lr: learning rate (> 0).
      batch_size: samples per step (>= 1).
      epochs: total number of epochs of the run (>= 1).
      seed: seeds the data, the initial parameters and the batch order.
      grads: ``"autodiff"`` or ``"manual"``.
    """

    model: str
    conv: str = "auto"
    optimizer: str = "sgd"
    lr: float = 0.25
    batch_size: int = 32
    epochs: int = 20
    seed: int = 0
    grads: str = "autodiff"

    def __post_init__(self) -> None:
        _choice("model", self.model, tuple(models.MODELS))
        _choice("conv", self.conv, CONV_IMPLS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("grads", self.grads, GRADS)
        object.__setattr__(self, "lr", _positive_float("TrainConfig", "lr", self.lr))
        for name in ("batch_size", "epochs"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"TrainConfig: unknown keys {unknown}; expected keys {sorted(names)}")
        if "model" not in values:
            raise ValueError("TrainConfig: the key 'model' is missing")
        return cls(**values)

    def build_model(self) -> Layer:
        """The model this config names, with its convolution implementation."""
        return models.get_model(self.model, impl=self.conv)

    def build_optimizer(self) -> optax.GradientTransformation:
        """The optimizer this config names."""
        return make_optimizer(self.optimizer, self.lr)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"TrainConfig: {name} must be one of {list(choices)}, got {value!r}")


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"TrainConfig: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"TrainConfig: {name} must be >= {minimum}, got {value}")


def _positive_float(fn: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{fn}: {name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{fn}: {name} must be a finite number > 0, got {value}")
    return float(value)
