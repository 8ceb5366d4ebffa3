"""``jaxcnn train``'s training controls: optimizer settings, validation, best epoch, defaults.

The options here map one to one onto :class:`~jaxcnn.train.TrainConfig`
fields; ``--article`` stands for the article's own settings
(:data:`~jaxcnn.train.ARTICLE_SETTINGS`), and the help's epilog lists every
model's defaults (:data:`~jaxcnn.train.MODEL_DEFAULTS`).

The validation split is carved from the training split with the key
``fold_in(key(seed), 1)`` (apart from the initialisation and batch-order
keys); with ``--keep-best`` the best epoch's checkpoint is written before the
last one, so after a crash between the two ``--resume`` redoes that epoch
(bit-identically) and writes both again.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax

from jaxcnn import train
from jaxcnn.cli._common import UsageError, fraction, non_negative_float, positive

ARTICLE_NOTE = (
    "the article's settings are seed-sensitive: SGD at lr 0.25 is on the edge of stability "
    "for this model (97.4-100% test accuracy over seeds 0-9, docs/training.md)"
)
"""What ``jaxcnn train shapes --article`` prints before training."""

SETTINGS = ("optimizer", "lr", "batch_size", "epochs", "schedule", "weight_decay")
"""The options ``--article`` fixes."""
OPTIONS = ("weight_decay", "schedule", "val_fraction", "patience", "keep_best", "monitor")
"""The TrainConfig fields set by the options added here (besides ``--optimizer``)."""
VAL_SPLIT_STREAM = 1
"""The validation split's key is ``fold_in(key(seed), VAL_SPLIT_STREAM)``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--weight-decay``, ``--schedule``, validation and ``--article`` to ``parser``."""
    parser.add_argument(
        "--weight-decay",
        type=non_negative_float,
        help="weight decay (sgd: L2 term in the gradient; adamw: decoupled; "
        f"default {train.DEFAULT_WEIGHT_DECAY['adamw']:g} for adamw, else 0)",
    )
    parser.add_argument(
        "--schedule",
        choices=train.SCHEDULES,
        help="learning-rate schedule over the whole run (default constant)",
    )
    parser.add_argument(
        "--val-fraction",
        type=fraction,
        help="hold out this fraction of the training split (per class, drawn from --seed) "
        "for validation; the test split is only evaluated after training (default 0: none)",
    )
    parser.add_argument(
        "--patience",
        type=positive(int),
        help="stop early after N epochs without a better --monitor value (needs --val-fraction)",
    )
    parser.add_argument(
        "--keep-best",
        action="store_true",
        default=None,
        help="also keep the checkpoint of the best --monitor epoch as DIR/best.npz "
        "(needs --val-fraction; --resume still continues the last epoch)",
    )
    parser.add_argument(
        "--monitor",
        choices=tuple(train.MONITORS),
        help="what --patience and --keep-best watch (default val_loss)",
    )
    parser.add_argument(
        "--article",
        action="store_true",
        help="the article's exact settings (shapes only: "
        f"{describe(train.ARTICLE_SETTINGS['shapes'])}); seed-sensitive",
    )


def describe(settings: train.Defaults) -> str:
    """``sgd lr 0.25, batch 32, 20 epochs`` (and the schedule when not constant)."""
    text = (
        f"{settings.optimizer} lr {settings.lr:g}, batch {settings.batch_size}, "
        f"{settings.epochs} epochs"
    )
    return text if settings.schedule == "constant" else f"{text}, {settings.schedule} schedule"


def defaults_epilog() -> str:
    """The per-model defaults, one line per model, for ``jaxcnn train --help``."""
    width = max(len(name) for name in train.MODEL_DEFAULTS)
    lines = ["defaults per model (jaxcnn.train.MODEL_DEFAULTS; options override them):"]
    for name, settings in train.MODEL_DEFAULTS.items():
        lines.append(f"  {name:<{width}}  {describe(settings)}")
    lines += textwrap.wrap(f"--article: {ARTICLE_NOTE}.", width=78, subsequent_indent="  ")
    return "\n".join(lines)


def article_settings(args: argparse.Namespace, given: dict[str, Any]) -> dict[str, Any]:
    """The article's settings for ``args.model`` (``--article``).

    Args:
      args: the parsed options (``model``).
      given: the options given explicitly (name -> value).

    Raises:
      UsageError: for a model the article gives no settings for, or with an
        option ``--article`` fixes.
    """
    if args.model not in train.ARTICLE_SETTINGS:
        raise UsageError(
            f"--article: the article gives training settings for "
            f"{sorted(train.ARTICLE_SETTINGS)} only, got model {args.model!r}"
        )
    clash = [name for name in SETTINGS if name in given]
    if clash:
        flags = ", ".join("--" + name.replace("_", "-") for name in clash)
        raise UsageError(f"--article fixes {flags}; drop --article or {flags}")
    return train.ARTICLE_SETTINGS[args.model]._asdict()


def check_resumed_epochs(saved: Mapping[str, Any], epochs: int) -> None:
    """Refuse a new ``--epochs`` under a schedule: its length is the run's epochs."""
    if epochs != saved["epochs"] and saved.get("schedule", "constant") != "constant":
        raise UsageError(
            f"--resume: --epochs cannot change under the {saved['schedule']!r} schedule "
            f"(its length is the run's {saved['epochs']} epochs), got --epochs {epochs}"
        )


def split_validation(config: train.TrainConfig, data: Any) -> tuple[Any, Any]:
    """``(train, val)``: ``config.val_fraction`` of ``data`` held out, or ``(data, None)``."""
    if config.val_fraction == 0:
        return data, None
    key = jax.random.fold_in(jax.random.key(config.seed), VAL_SPLIT_STREAM)
    return train.validation_split(data, config.val_fraction, key=key)


def epoch_files(
    config: train.TrainConfig, end: train.EpochEnd, last: Path, best: Path
) -> list[Path]:
    """The checkpoints to write after ``end``: ``best`` first when it is the best epoch."""
    if config.keep_best:
        top = train.best_epoch(end.history, config.monitor)
        if top is not None and top.epoch == end.epoch:
            return [best, last]
    return [last]


def optimizer_text(config: train.TrainConfig) -> str:
    """``sgd lr 0.1``, with the schedule and weight decay when they are not the plain ones."""
    text = f"{config.optimizer} lr {config.lr:g}"
    if config.schedule != "constant":
        text += f" ({config.schedule} schedule)"
    if config.weight_decay:
        text += f", weight decay {config.weight_decay:g}"
    return text


def validation_text(config: train.TrainConfig, n_val: int) -> str:
    """``, validating on 320 held out from them (val_fraction 0.1)``, or nothing."""
    if not n_val:
        return ""
    return f", validating on {n_val} held out from them (val_fraction {config.val_fraction:g})"


def watch_text(config: train.TrainConfig) -> str:
    """What ``--keep-best`` and ``--patience`` do in this run, or nothing."""
    watched = []
    if config.keep_best:
        watched.append("keeping the best epoch in best.npz")
    if config.patience is not None:
        watched.append(f"stopping after {config.patience} epochs without improvement")
    return f"{' and '.join(watched)} by {config.monitor}" if watched else ""


def ending(config: train.TrainConfig, result: train.FitResult) -> list[str]:
    """A line saying that the run stopped early, if it did."""
    if not result.stopped_early:
        return []
    return [
        f"stopped early after epoch {result.epoch}: {config.monitor} did not improve "
        f"for {config.patience} epochs"
    ]


def best_text(config: train.TrainConfig, best: train.Best) -> str:
    """``best epoch 9 by val_loss 0.0097`` (accuracies in percent)."""
    value = best.value
    shown = f"{100 * value:.2f}%" if config.monitor.endswith("accuracy") else f"{value:.4g}"
    return f"best epoch {best.epoch} by {config.monitor} {shown}"
