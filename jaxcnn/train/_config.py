"""What a training run is made of: its config, and the optimizer it names.

A :class:`TrainConfig` says how a run trains: optimizer, learning rate,
batch size, epochs, seed, gradients, and for the command line which built-in
model to build. What the model *is* (its layers, output size, input shape)
is its JSON spec (:func:`jaxcnn.layers.to_spec`); checkpoints store both.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import optax

from jaxcnn import models, ops
from jaxcnn.errors import InputError, InputTypeError
from jaxcnn.layers import Layer
from jaxcnn.train._epoch import GRADS
from jaxcnn.train._precision import PRECISIONS

OPTIMIZERS = ("sgd", "adam")
"""Names accepted by :func:`make_optimizer`."""


class Defaults(NamedTuple):
    """A model's default training settings."""

    optimizer: str
    lr: float
    batch_size: int
    epochs: int


MODEL_DEFAULTS: dict[str, Defaults] = {
    # The article's settings: SGD lr 0.25, batch 32, 20 epochs.
    "shapes": Defaults(optimizer="sgd", lr=0.25, batch_size=32, epochs=20),
    # Keras' defaults for the article's MNIST models (Adam 1e-3), 5 epochs.
    "mnist-cnn": Defaults(optimizer="adam", lr=1e-3, batch_size=128, epochs=5),
    # The dense net needs more passes to pass 97% (measured: 97.3% after 5, 97.6-97.8% after 10).
    "mnist-dense": Defaults(optimizer="adam", lr=1e-3, batch_size=128, epochs=10),
}
"""Default training settings of every model name of :data:`jaxcnn.models.MODELS`."""


def make_optimizer(name: str, lr: float) -> optax.GradientTransformation:
    """An optax optimizer by name.

    ``"sgd"`` is the article's plain rule ``p <- p - lr * grad``;
    ``"adam"`` is ``optax.adam(lr)`` (Keras' default for the article's models).
    Equal arguments return the same object, so ``fit`` reuses one compiled
    epoch for them.

    Args:
      name: ``"sgd"`` or ``"adam"``.
      lr: learning rate, a finite number > 0.
    """
    if name not in OPTIMIZERS:
        raise InputError(f"make_optimizer: name must be one of {list(OPTIMIZERS)}, got {name!r}")
    return _optimizer(name, _positive_float("make_optimizer", "lr", lr))


@functools.cache
def _optimizer(name: str, lr: float) -> optax.GradientTransformation:
    """One object per setting, so compiled epochs keyed on the optimizer are shared."""
    return optax.sgd(lr) if name == "sgd" else optax.adam(lr)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (all JSON-serialisable).

    Attributes:
      model: a name in :data:`jaxcnn.models.MODELS` (``"shapes"``, ...) for
        the command line's built-in models, or None for any other model
        (described by its spec).
      impl: convolution implementation, one of :data:`jaxcnn.ops.CONV_IMPLS`.
      optimizer: ``"sgd"`` or ``"adam"``.
      lr: learning rate (> 0).
      batch_size: samples per step (>= 1).
      epochs: total number of epochs of the run (>= 1).
      seed: seeds the data, the initial parameters and the batch order
        (``< 2**32``: a PRNG seed has 32 bits, larger ones would wrap).
      grads: ``"autodiff"`` or ``"manual"``.
      devices: the number of devices each batch is split over (data
        parallelism); the same math on any count, not the same rounding.
      precision: ``"float32"`` or ``"bf16"`` (bfloat16 compute, float32
        weights; see ``fit``).

    Integers are range-checked (``batch_size`` and ``epochs`` below ``2**31``,
    the int32 index range of the compiled epoch), so a hand-edited checkpoint
    cannot ask for the impossible; a batch larger than the data is clamped to
    it by :func:`~jaxcnn.train.fit`.
    """

    model: str | None = None
    impl: str = "auto"
    optimizer: str = "sgd"
    lr: float = 0.25
    batch_size: int = 32
    epochs: int = 20
    seed: int = 0
    grads: str = "autodiff"
    devices: int = 1
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.model is not None:
            _choice("model", self.model, tuple(models.MODELS))
        _choice("impl", self.impl, ops.CONV_IMPLS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("grads", self.grads, GRADS)
        _choice("precision", self.precision, PRECISIONS)
        object.__setattr__(self, "lr", _positive_float("TrainConfig", "lr", self.lr))
        for name in ("batch_size", "epochs", "devices"):
            _check_int(name, getattr(self, name), minimum=1, limit=2**31)
        _check_int("seed", self.seed, minimum=0, limit=2**32)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        if "conv" in values and "impl" not in values:  # the name before jaxcnn 0.2
            values = {("impl" if key == "conv" else key): value for key, value in values.items()}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"TrainConfig: unknown keys {unknown}; expected keys {sorted(names)}")
        return cls(**values)

    def build_model(self, classes: int | None = None) -> Layer:
        """The built-in model this config names, with its convolution implementation.

        ``classes`` sizes its output (see :func:`jaxcnn.models.get_model`).
        """
        if self.model is None:
            raise InputError(
                "TrainConfig.build_model: this config names no built-in model (model=None); "
                "the model comes from its spec (load_checkpoint(path).model)"
            )
        return models.get_model(self.model, impl=self.impl, classes=classes)

    def build_optimizer(self) -> optax.GradientTransformation:
        """The optimizer this config names."""
        return make_optimizer(self.optimizer, self.lr)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"TrainConfig: {name} must be one of {list(choices)}, got {value!r}")


def _check_int(name: str, value: Any, *, minimum: int, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"TrainConfig: {name} must be an int, got {value!r}")
    if value < minimum:
        raise InputError(f"TrainConfig: {name} must be >= {minimum}, got {value}")
    if value >= limit:
        raise InputError(f"TrainConfig: {name} must be < {limit}, got {value}")


def _positive_float(fn: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputTypeError(f"{fn}: {name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{fn}: {name} must be a finite number > 0, got {value}")
    return float(value)
