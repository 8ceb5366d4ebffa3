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

from jaxcnn import _checks, models, ops
from jaxcnn.errors import InputError, InputTypeError
from jaxcnn.layers import Layer
from jaxcnn.train._epoch import GRADS
from jaxcnn.train._precision import PRECISIONS
from jaxcnn.train._stopping import MONITORS

OPTIMIZERS = ("sgd", "adam", "adamw")
"""Names accepted by :func:`make_optimizer`."""

SCHEDULES = ("constant", "cosine", "warmup-cosine")
"""Learning-rate schedules accepted by :func:`make_optimizer` (optax schedules)."""

DEFAULT_WEIGHT_DECAY: dict[str, float] = {"sgd": 0.0, "adam": 0.0, "adamw": 1e-4}
"""Weight decay of each optimizer when none is given (``adamw``: optax's default)."""

WARMUP_FRACTION = 0.05
"""``warmup-cosine`` warms up over this fraction of the steps (at least one step)."""


class Defaults(NamedTuple):
    """A model's default training settings."""

    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    schedule: str = "constant"


MODEL_DEFAULTS: dict[str, Defaults] = {
    # Measured over seeds 0-9 (scripts/seed_sweep.py, docs/training.md): Adam 0.01 for 20
    # epochs reaches 99.75-100%; the article's SGD 0.25 (ARTICLE_SETTINGS) 97.4-100%.
    "shapes": Defaults(optimizer="adam", lr=0.01, batch_size=32, epochs=20),
    # Measured over seeds 0-4 (docs/training.md): Adam 2e-3 with a cosine decay reaches
    # 99.17-99.23% in 5 epochs; Keras' Adam 1e-3 without a schedule gave 98.89-99.07%.
    "mnist-cnn": Defaults(optimizer="adam", lr=2e-3, batch_size=128, epochs=5, schedule="cosine"),
    # The dense net needs more passes to pass 97% (measured: 97.3% after 5, 97.6-97.8% after 10).
    "mnist-dense": Defaults(optimizer="adam", lr=1e-3, batch_size=128, epochs=10),
}
"""Default training settings of every model name of :data:`jaxcnn.models.MODELS`."""

ARTICLE_SETTINGS: dict[str, Defaults] = {
    "shapes": Defaults(optimizer="sgd", lr=0.25, batch_size=32, epochs=20),
}
"""The article's own training settings (``jaxcnn train --article``); it gives them for the
shapes model only. SGD at lr 0.25 is on the edge of stability for that model, so the
accuracy they reach depends on the seed (docs/training.md)."""


def make_optimizer(
    name: str,
    lr: float,
    *,
    weight_decay: float | None = None,
    schedule: str = "constant",
    total_steps: int | None = None,
    warmup_steps: int | None = None,
) -> optax.GradientTransformation:
    """An optax optimizer by name, with an optional weight decay and learning-rate schedule.

    * ``"sgd"``: the article's rule ``p <- p - lr_t * (grad + weight_decay * p)``
      (weight decay as an L2 term in the gradient, as ``torch.optim.SGD`` does);
    * ``"adam"``: ``optax.adam(lr_t)`` (Keras' default for the article's models);
      no weight decay (an L2 term inside Adam is not weight decay: use ``"adamw"``);
    * ``"adamw"``: ``optax.adamw(lr_t, weight_decay=...)``, Adam with decoupled
      weight decay ``p <- p - lr_t * (adam_update + weight_decay * p)``.

    The learning rate ``lr_t`` at step ``t`` (0-based) of ``T = total_steps``:

    * ``"constant"``: ``lr``;
    * ``"cosine"``: ``lr * (1 + cos(pi * t / T)) / 2``, from ``lr`` down to 0
      (``optax.cosine_decay_schedule``);
    * ``"warmup-cosine"``: linear from 0 to ``lr`` over ``W = warmup_steps``
      steps, then the cosine from ``lr`` to 0 over the remaining ``T - W``
      (``optax.warmup_cosine_decay_schedule``).

    Equal arguments return the same object, so ``fit`` reuses one compiled
    epoch for them.

    Args:
      name: one of :data:`OPTIMIZERS`.
      lr: (peak) learning rate, a finite number > 0.
      weight_decay: a finite number >= 0; default :data:`DEFAULT_WEIGHT_DECAY`.
      schedule: one of :data:`SCHEDULES`.
      total_steps: optimizer steps of the whole run (``epochs * steps per
        epoch``); required by the schedules other than ``"constant"``.
      warmup_steps: ``"warmup-cosine"`` only; default ``WARMUP_FRACTION`` of
        ``total_steps`` (at least 1), fewer than ``total_steps``.
    """
    fn = "make_optimizer"
    if name not in OPTIMIZERS:
        raise InputError(f"{fn}: name must be one of {list(OPTIMIZERS)}, got {name!r}")
    lr = _positive_float(fn, "lr", lr)
    decay = _weight_decay(name, weight_decay)
    steps = _schedule_steps(schedule, total_steps, warmup_steps)
    return _optimizer(name, lr, decay, schedule, *steps)


def _weight_decay(name: str, weight_decay: Any, *, fn: str = "make_optimizer") -> float:
    if weight_decay is None:
        return DEFAULT_WEIGHT_DECAY[name]
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float):
        raise InputTypeError(f"{fn}: weight_decay must be a number, got {weight_decay!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise InputError(f"{fn}: weight_decay must be a finite number >= 0, got {weight_decay}")
    if name == "adam" and weight_decay != 0:
        raise InputError(
            f"{fn}: weight_decay must be 0 with 'adam' (use 'adamw' for Adam with weight "
            f"decay), got {weight_decay}"
        )
    return float(weight_decay)


def _schedule_steps(
    schedule: Any, total_steps: Any, warmup_steps: Any
) -> tuple[int | None, int | None]:
    """``(total_steps, warmup_steps)`` as the schedule uses them (``None`` where unused)."""
    fn = "make_optimizer"
    if schedule not in SCHEDULES:
        raise InputError(f"{fn}: schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    if warmup_steps is not None and schedule != "warmup-cosine":
        raise InputError(
            f"{fn}: warmup_steps is for schedule 'warmup-cosine', got schedule {schedule!r}"
        )
    if schedule == "constant":
        return None, None  # the steps do not matter: equal optimizers for any total_steps
    if total_steps is None:
        raise InputError(
            f"{fn}: schedule {schedule!r} needs total_steps (epochs * steps per epoch)"
        )
    total = _checks.positive_int(fn, "total_steps", total_steps)
    if schedule == "cosine":
        return total, None
    if warmup_steps is None:
        warmup = min(max(1, round(WARMUP_FRACTION * total)), total - 1)
        return total, warmup or None  # one step in all: nothing to warm up
    warmup = _checks.positive_int(fn, "warmup_steps", warmup_steps)
    if warmup >= total:
        raise InputError(f"{fn}: warmup_steps must be fewer than total_steps={total}, got {warmup}")
    return total, warmup


@functools.cache
def _optimizer(
    name: str,
    lr: float,
    weight_decay: float,
    schedule: str,
    total_steps: int | None,
    warmup_steps: int | None,
) -> optax.GradientTransformation:
    """One object per setting, so compiled epochs keyed on the optimizer are shared."""
    rate = _learning_rate(lr, schedule, total_steps, warmup_steps)
    if name == "adamw":
        return optax.adamw(rate, weight_decay=weight_decay)
    if name == "adam":
        return optax.adam(rate)
    if weight_decay == 0:
        return optax.sgd(rate)
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(rate))


def _learning_rate(
    lr: float, schedule: str, total_steps: int | None, warmup_steps: int | None
) -> float | optax.Schedule:
    if schedule == "constant" or total_steps is None:
        return lr
    if schedule == "cosine" or warmup_steps is None:
        return optax.cosine_decay_schedule(lr, decay_steps=total_steps)
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=warmup_steps, decay_steps=total_steps, end_value=0.0
    )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (all JSON-serialisable).

    Attributes:
      model: a name in :data:`jaxcnn.models.MODELS` (``"shapes"``, ...) for
        the command line's built-in models, or None for any other model
        (described by its spec).
      impl: convolution implementation, one of :data:`jaxcnn.ops.CONV_IMPLS`.
      optimizer: one of :data:`OPTIMIZERS`.
      lr: (peak) learning rate (> 0).
      batch_size: samples per step (>= 1).
      epochs: total number of epochs of the run (>= 1).
      seed: seeds the data, the validation split, the initial parameters and
        the batch order (``< 2**32``: a PRNG seed has 32 bits, larger ones would wrap).
      grads: ``"autodiff"`` or ``"manual"``.
      devices: the number of devices each batch is split over (data
        parallelism); the same math on any count, not the same rounding.
      precision: ``"float32"`` or ``"bf16"`` (bfloat16 compute, float32
        weights; see ``fit``).
      weight_decay: >= 0; ``None`` (the default) becomes the optimizer's
        :data:`DEFAULT_WEIGHT_DECAY`.
      schedule: learning-rate schedule, one of :data:`SCHEDULES`.
      val_fraction: fraction of the training split held out for validation
        (:func:`~jaxcnn.train.validation_split`), in ``[0, 1)``; 0: none.
      patience: stop after this many epochs without a better ``monitor``
        value (needs ``val_fraction > 0``); ``None``: never stop early.
      keep_best: also keep the checkpoint of the best ``monitor`` epoch
        (needs ``val_fraction > 0``).
      monitor: what ``patience`` and ``keep_best`` watch, one of
        :data:`~jaxcnn.train.MONITORS`.

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
    weight_decay: float | None = None
    schedule: str = "constant"
    val_fraction: float = 0.0
    patience: int | None = None
    keep_best: bool = False
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        if self.model is not None:
            _choice("model", self.model, tuple(models.MODELS))
        _choice("impl", self.impl, ops.CONV_IMPLS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("grads", self.grads, GRADS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("monitor", self.monitor, tuple(MONITORS))
        object.__setattr__(self, "lr", _positive_float("TrainConfig", "lr", self.lr))
        for name in ("batch_size", "epochs", "devices"):
            _check_int(name, getattr(self, name), minimum=1, limit=2**31)
        _check_int("seed", self.seed, minimum=0, limit=2**32)
        decay = _weight_decay(self.optimizer, self.weight_decay, fn="TrainConfig")
        object.__setattr__(self, "weight_decay", decay)
        object.__setattr__(self, "val_fraction", check_fraction("TrainConfig", self.val_fraction))
        self._check_validation_settings()

    def _check_validation_settings(self) -> None:
        if self.patience is not None:
            _check_int("patience", self.patience, minimum=1, limit=2**31)
        if not isinstance(self.keep_best, bool):
            raise InputTypeError(f"TrainConfig: keep_best must be a bool, got {self.keep_best!r}")
        needs_val = [
            name for name in ("patience", "keep_best") if getattr(self, name) not in (None, False)
        ]
        if needs_val and self.val_fraction == 0:
            raise InputError(
                f"TrainConfig: {' and '.join(needs_val)} need a validation split "
                f"(val_fraction > 0), got val_fraction 0"
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys are errors.

        Keys added after a config was written take their defaults, so the
        configs of older checkpoints still load.
        """
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

    def build_optimizer(self, steps_per_epoch: int | None = None) -> optax.GradientTransformation:
        """The optimizer this config names.

        Args:
          steps_per_epoch: ``ceil(training samples / batch_size)``; needed by
            every schedule but ``"constant"`` (its length is ``epochs *
            steps_per_epoch``).
        """
        total = None
        if self.schedule != "constant":
            if steps_per_epoch is None:
                raise InputError(
                    f"TrainConfig.build_optimizer: schedule {self.schedule!r} needs steps_per_epoch"
                )
            total = self.epochs * _checks.positive_int(
                "TrainConfig.build_optimizer", "steps_per_epoch", steps_per_epoch
            )
        return make_optimizer(
            self.optimizer,
            self.lr,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
            total_steps=total,
        )


def check_fraction(fn: str, value: Any, name: str = "val_fraction") -> float:
    """A number in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputTypeError(f"{fn}: {name} must be a number, got {value!r}")
    if not 0 <= value < 1:
        raise InputError(f"{fn}: {name} must be in [0, 1), got {value}")
    return float(value)


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
