"""Best epoch and early stopping, as pure functions of a run's history.

Everything here is computed from the per-epoch history that ``fit`` keeps
(and checkpoints store), never from hidden state, so a resumed run picks the
same best epoch and stops after the same epoch as the uninterrupted run.

An epoch *improves* on the ones before it when its monitored value is
strictly better (lower ``val_loss``, higher ``val_accuracy``) than all of
theirs; the best epoch is the last that improved, i.e. the first epoch that
reached the best value. With ``patience = P`` training stops once ``P``
epochs in a row have not improved (Keras' ``EarlyStopping`` with
``min_delta=0``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from jaxcnn import _checks
from jaxcnn.errors import InputError

MONITORS: dict[str, str] = {"val_loss": "min", "val_accuracy": "max"}
"""What the best epoch and early stopping can watch, and which way is better."""


class Best(NamedTuple):
    """The best epoch of a history so far."""

    epoch: int  # 1-based
    value: float  # its monitored value


def check_monitor(fn: str, monitor: Any) -> str:
    """Require one of :data:`MONITORS`."""
    if monitor not in MONITORS:
        raise InputError(f"{fn}: monitor must be one of {list(MONITORS)}, got {monitor!r}")
    return str(monitor)


def check_patience(fn: str, patience: Any) -> int | None:
    """``None`` (never stop early) or an int >= 1."""
    return None if patience is None else _checks.positive_int(fn, "patience", patience)


def best_epoch(history: Mapping[str, Sequence[float]], monitor: str = "val_loss") -> Best | None:
    """The first epoch that reached the best ``history[monitor]`` value.

    Args:
      history: per-epoch lists, as ``fit`` returns them (``val_*`` keys need ``val``).
      monitor: one of :data:`MONITORS`.

    Returns:
      :class:`Best`, or ``None`` when no epoch has a finite monitored value yet.
    """
    values = _values("best_epoch", history, monitor)
    sign = 1.0 if MONITORS[monitor] == "min" else -1.0
    best: Best | None = None
    for epoch, value in enumerate(values, start=1):
        if math.isfinite(value) and (best is None or sign * value < sign * best.value):
            best = Best(epoch, float(value))
    return best


def should_stop(history: Mapping[str, Sequence[float]], monitor: str, patience: int | None) -> bool:
    """Whether the last ``patience`` epochs of ``history`` all failed to improve.

    ``patience=None`` never stops. A history without a finite monitored value
    stops after ``patience`` epochs.
    """
    if patience is None:
        return False
    values = _values("should_stop", history, monitor)
    best = best_epoch(history, monitor)
    return len(values) - (0 if best is None else best.epoch) >= patience


def _values(fn: str, history: Mapping[str, Sequence[float]], monitor: str) -> Sequence[float]:
    check_monitor(fn, monitor)
    if monitor not in history:
        raise InputError(
            f"{fn}: history has no {monitor!r} (train with val=... to monitor it), "
            f"got keys {sorted(history)}"
        )
    return history[monitor]
