"""``jaxcnn train MODEL`` and ``jaxcnn eval DIR``.

``train`` writes ``DIR/checkpoint.npz`` after every epoch (atomically, so an
interrupted run can ``--resume``) and ``DIR/history.json``, then prints the
test accuracy. With ``--val-fraction`` it validates on data held out from the
training split (``--keep-best`` then keeps ``DIR/best.npz``, ``--patience``
stops early, see :mod:`jaxcnn.cli._controls`); the test split is evaluated
only after training, so it never chooses anything. ``eval`` reloads a run and
prints the same test accuracy. Which data a run uses, and how the model is
sized to it: :mod:`jaxcnn.cli._run_data`.

Exit codes: 0 success, 2 bad arguments, files or data, or a run directory in
use (one line on stderr), 3 training diverged on valid data (the checkpoint
keeps the last finite epoch), 4 a distributed run lost one of its processes
(one line names it and the ``--resume`` command, see ``_cluster``),
130/143/129 Ctrl-C/SIGTERM/SIGHUP.

One ``train`` at a time writes a run directory (see ``_run_dir``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax

from jaxcnn import models, ops, train
from jaxcnn._io import write_json
from jaxcnn.cli import _cluster, _controls, _run_dir
from jaxcnn.cli._common import (
    BEST_CHECKPOINT,
    CHECKPOINT,
    EXIT_DIVERGED,
    HISTORY,
    UsageError,
    check_device_count,
    check_writable,
    non_negative_int,
    positive,
)
from jaxcnn.cli._run_data import (
    DATA,
    add_image_arguments,
    check_fits,
    image_options,
    other_data,
    recorded_data,
    sized_model,
    training_data,
)
from jaxcnn.data import Data
from jaxcnn.layers import Layer

__all__ = ["DATA", "register", "run_eval", "run_train", "train_run"]  # DATA: patched by tests

_TRAIN_OPTIONS = (
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "seed",
    "grads",
    "impl",
    "precision",
    *_controls.OPTIONS,
)
_RUN_FILES = (CHECKPOINT, HISTORY, BEST_CHECKPOINT)
"""What a run writes into its directory (the checkpoint, which a resume reads, first)."""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``train`` and ``eval`` subcommands."""
    parser = subparsers.add_parser(
        "train",
        help="train a model, writing a checkpoint and history to --out",
        description="Train one of the article's models with its defaults (listed below).",
        epilog=_controls.defaults_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", choices=sorted(models.MODELS), help="model to train")
    parser.add_argument("--epochs", type=positive(int), help="total epochs")
    parser.add_argument("--batch-size", type=positive(int), help="samples per step")
    parser.add_argument("--lr", type=positive(float), help="(peak) learning rate (> 0)")
    parser.add_argument("--optimizer", choices=train.OPTIMIZERS)
    _controls.add_arguments(parser)
    parser.add_argument("--seed", type=non_negative_int, help="data, init and batch-order seed")
    parser.add_argument("--grads", choices=train.GRADS, help="gradients (default autodiff)")
    parser.add_argument(
        "--impl", choices=ops.CONV_IMPLS, help="convolution implementation (default auto)"
    )
    parser.add_argument("--conv", dest="impl", choices=ops.CONV_IMPLS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--precision",
        choices=train.PRECISIONS,
        help="float32 (default), or bf16: bfloat16 compute over float32 weights (for GPUs)",
    )
    parser.add_argument(
        "--devices",
        type=positive(int),
        help="data-parallel training: split every batch over N devices (default 1)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="train on other data: a folder of class folders of images (FOLDER/cat/*.jpg, "
        "FOLDER/dog/*.png, or FOLDER/train/... and FOLDER/test/...), a folder of MNIST-format "
        "IDX files, or an .npz holding train_images, train_labels, test_images, test_labels "
        "(the output layer is sized to its classes)",
    )
    add_image_arguments(parser)
    parser.add_argument("--out", type=Path, help="run directory (default runs/MODEL)")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="continue the run in --out")
    existing.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    parser.add_argument("--quiet", action="store_true", help="print only the final line")
    _cluster.add_arguments(parser)
    parser.set_defaults(handler=run_train)

    evaluator = subparsers.add_parser(
        "eval", help="print the test accuracy of a trained run", description=run_eval.__doc__
    )
    evaluator.add_argument("run", type=Path, help="run directory (or its checkpoint file)")
    evaluator.add_argument(
        "--data",
        type=Path,
        help="evaluate on this data (image folder, IDX folder or .npz) instead of the data the "
        "run recorded (an image folder is read at the run's image size and colour)",
    )
    evaluator.set_defaults(handler=run_eval)


class _Start(NamedTuple):
    """Where training starts: fresh parameters, or a checkpoint's state."""

    params: Any
    opt_state: Any
    epoch: int
    history: Any
    key: jax.Array  # the batch-order key


def run_train(args: argparse.Namespace) -> int:
    """Train, checkpointing every epoch; print the test accuracy."""
    out = args.out if args.out is not None else Path("runs") / args.model
    # None unless --distributed (before jax starts its devices); a lost peer ends the block
    with _cluster.joined(args, out / CHECKPOINT) as cluster:
        if cluster is not None:  # a distributed run splits every batch over every device
            args.devices = jax.device_count()
        elif args.devices is not None:
            check_device_count(args.devices)
        if cluster is not None and cluster.process_id != 0:  # process 0 locks and writes `out`
            return _train_locked(args, out, cluster)
        with _run_dir.claim(out, _RUN_FILES, note=_note(args.quiet)):
            return _train_locked(args, out, cluster)


def _train_locked(args: argparse.Namespace, out: Path, cluster: train.Cluster | None = None) -> int:
    """``run_train`` holding the run directory's lock (or process > 0 of a distributed run)."""
    primary = cluster is None or cluster.process_id == 0
    quiet = args.quiet or not primary
    resumed = _resume_point(args, out / CHECKPOINT) if args.resume else None
    if resumed is None and (out / CHECKPOINT).exists() and not args.overwrite:
        raise UsageError(
            f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it"
        )
    config = _config(args, resumed)
    if args.article and not quiet:
        print(f"note: {_controls.ARTICLE_NOTE}", flush=True)
    if args.devices is not None and config.batch_size % args.devices:
        devices = f"--devices {args.devices}" if cluster is None else f"the {args.devices} devices"
        raise UsageError(
            f"--batch-size {config.batch_size} must be divisible by {devices} "
            f"(every batch is split evenly over the devices)"
        )
    if (
        resumed is not None
        and resumed.config is not None
        and resumed.config.devices != config.devices
    ):
        _note(quiet)(
            f"the run was trained on {resumed.config.devices} device(s) up to epoch "
            f"{resumed.epoch}; resuming on {config.devices}: the same math, but the numbers "
            f"will not be bit-identical to an uninterrupted run"
        )
    if args.overwrite and primary:  # the old run can never be resumed by mistake from here on
        _run_dir.discard_run(out, _RUN_FILES)
    if cluster is not None and not quiet:
        print(_cluster.describe(cluster), flush=True)
    return train_run(
        config,
        out,
        resumed=resumed,
        quiet=quiet,
        devices=args.devices,
        data_path=args.data,
        primary=primary,
        data_options=image_options(args),
    )


def _note(quiet: bool) -> Callable[[str], None]:
    """Print a one-line ``note:`` on stderr (nothing with ``--quiet``)."""

    def note(text: str) -> None:
        if not quiet:
            print(f"jaxcnn train: note: {text}", file=sys.stderr, flush=True)

    return note


def train_run(
    config: train.TrainConfig,
    out: Path,
    *,
    resumed: train.Checkpoint | None = None,
    quiet: bool = False,
    devices: int | None = None,
    data_path: Path | None = None,
    primary: bool = True,
    data_options: dict[str, Any] | None = None,
) -> int:
    """Train ``config`` into the run directory ``out``; print the test accuracy; an exit code.

    The data is ``data_path`` (``--data``), else the resumed run's, else the
    model's built-in data; the model is sized to its classes. ``primary=False``
    (every process but 0 of a distributed run) writes and prints nothing.
    ``data_options`` are the image flags (``--image-size``, ``--color``,
    ``--skip-bad-images``) as ``load_data`` keywords.
    """
    started = time.perf_counter()
    if primary:
        check_writable(out)
    data = training_data(config, resumed, data_path, data_options, _note(quiet))
    train_part, val_part = _controls.split_validation(config, data.train)
    n_train = len(train_part[1])
    if train.effective_batch_size(config.batch_size, n_train, devices or 1) < config.batch_size:
        _note(quiet)(
            f"--batch-size {config.batch_size} is larger than the {n_train} training images; "
            f"each epoch is one step over all of them"
        )
    model = sized_model(config, data) if resumed is None else resumed.model
    check_fits(model, data, str(config.model))
    start = _start(config, model, resumed)
    if resumed is None and primary:
        (out / BEST_CHECKPOINT).unlink(missing_ok=True)  # a previous run's, now replaced
    log = _Log(quiet=quiet)
    log.start(config, start, data, devices, n_val=0 if val_part is None else len(val_part[1]))
    test_data = data.test
    try:
        result = _fit(
            config, model, start, data, (train_part, val_part), out, log, devices, primary
        )
    except train.TrainingDivergedError as err:
        if not primary:
            return EXIT_DIVERGED
        good = err.epoch - 1
        kept = f"{out / CHECKPOINT} keeps epoch {good}" if good else "no checkpoint was written"
        print(f"jaxcnn train: error: {err}; {kept}", file=sys.stderr)
        return EXIT_DIVERGED
    # The training batch size: the evaluation fit ran after every epoch, compiled once.
    metrics = train.evaluate(
        model, result.params, test_data, batch_size=config.batch_size, devices=devices
    )
    if not primary:
        return 0
    summary = {**_record(config, data), "history": result.history, "test": metrics._asdict()}
    summary |= _best(config, model, result, out, test_data, log)
    write_json(out / HISTORY, summary)
    seconds = time.perf_counter() - started
    print(f"{_accuracy_line(metrics, len(test_data[1]))} in {seconds:.1f} s")
    return 0


def _start(config: train.TrainConfig, model: Layer, resumed: train.Checkpoint | None) -> _Start:
    init_key, order_key = jax.random.split(jax.random.key(config.seed))
    if resumed is None:
        return _Start(models.init_params(model, init_key), None, 0, None, order_key)
    key = order_key if resumed.key is None else resumed.key
    return _Start(resumed.params, resumed.opt_state, resumed.epoch, resumed.history, key)


def _best(
    config: train.TrainConfig,
    model: Layer,
    result: train.FitResult,
    out: Path,
    test: Any,
    log: _Log,
) -> dict[str, Any]:
    """Say how the run ended; the best epoch (with ``--keep-best`` its test metrics) to record."""
    for line in _controls.ending(config, result):
        log.line(line)
    if result.best is None:
        return {}
    best: dict[str, Any] = {"epoch": result.best.epoch, config.monitor: result.best.value}
    text = _controls.best_text(config, result.best)
    if config.keep_best:
        kept = train.load_checkpoint(out / BEST_CHECKPOINT)
        metrics = train.evaluate(model, kept.params, test, batch_size=config.batch_size)
        best["test"] = metrics._asdict()
        text += f", kept in {out / BEST_CHECKPOINT}: {_accuracy_line(metrics, len(test[1]))}"
    log.line(text)
    return {"best": best}


def _record(config: train.TrainConfig, data: Data) -> dict[str, Any]:
    """What ``history.json`` says about the run besides its numbers."""
    return {"config": config.to_dict(), "data": data.source.to_dict()}


def _fit(
    config: train.TrainConfig,
    model: Layer,
    start: _Start,
    data: Data,
    parts: tuple[Any, Any],
    out: Path,
    log: _Log,
    devices: int | None = None,
    primary: bool = True,
) -> train.FitResult:
    """``train.fit`` on ``parts = (train, val or None)`` with a checkpoint (and with
    ``--keep-best`` the best one, written first) and the history after every epoch,
    written by ``primary`` (process 0 of a distributed run) only."""

    def on_epoch(end: train.EpochEnd) -> None:
        if not primary:
            return
        for path in _controls.epoch_files(config, end, out / CHECKPOINT, out / BEST_CHECKPOINT):
            train.save_checkpoint(
                path,
                model=model,
                params=end.params,
                opt_state=end.opt_state,
                epoch=end.epoch,
                key=start.key,
                config=config,
                history=end.history,
                data=data.source,
            )
        write_json(out / HISTORY, {**_record(config, data), "history": end.history})
        log.epoch(end, config.epochs)

    train_part, val_part = parts
    return train.fit(
        model,
        start.params,
        train_part,
        optimizer=config.build_optimizer(math.ceil(len(train_part[1]) / config.batch_size)),
        epochs=config.epochs,
        batch_size=config.batch_size,
        key=start.key,
        val=val_part,
        patience=config.patience,
        monitor=config.monitor,
        grads=config.grads,
        on_epoch=on_epoch,
        opt_state=start.opt_state,
        start_epoch=start.epoch,
        history=start.history,
        progress=log.bar,
        devices=devices,
        precision=config.precision,
    )


def run_eval(args: argparse.Namespace) -> int:
    """Reload a run's checkpoint and print its test accuracy.

    The data is the run's own, loaded again and checked against the SHA-256
    it recorded (missing or changed data is refused), or ``--data PATH``.
    """
    path = args.run / CHECKPOINT if args.run.is_dir() else args.run
    checkpoint = train.load_checkpoint(path)
    data = (
        recorded_data(checkpoint, "eval")
        if args.data is None
        else other_data(checkpoint, args.data)
    )
    model = checkpoint.model
    check_fits(model, data, model.kind)
    config = checkpoint.config  # the training batch size, as train_run evaluates
    batch = config.batch_size if config is not None else 1000
    metrics = train.evaluate(model, checkpoint.params, data.test, batch_size=batch)
    print(_accuracy_line(metrics, len(data.test[1])))
    return 0


def _accuracy_line(metrics: train.Metrics, count: int) -> str:
    return f"test accuracy {100 * metrics.accuracy:.2f}% ({count} images)"


def _resume_point(args: argparse.Namespace, path: Path) -> train.Checkpoint:
    if not path.exists():
        raise UsageError(f"--resume: {path} does not exist (nothing to resume)")
    checkpoint = train.load_checkpoint(path)
    if checkpoint.config is None:
        raise UsageError(f"--resume: {path} holds no training config (not made by `jaxcnn train`)")
    if checkpoint.config.model != args.model:
        raise UsageError(
            f"--resume: {path} is a {checkpoint.config.model!r} run, not {args.model!r}"
        )
    return checkpoint


def _config(args: argparse.Namespace, resumed: train.Checkpoint | None) -> train.TrainConfig:
    """The run's config: the checkpoint's when resuming (only --epochs may change).

    A new run starts from the model's defaults (or ``--article``'s settings)
    and the options given.
    """
    given = {
        name: getattr(args, name) for name in _TRAIN_OPTIONS if getattr(args, name) is not None
    }
    if args.article:
        given = {**_controls.article_settings(args, given), **given}
    devices = 1 if args.devices is None else args.devices
    if resumed is None:
        defaults = train.MODEL_DEFAULTS[args.model]._asdict()
        return train.TrainConfig(model=args.model, devices=devices, **{**defaults, **given})
    if resumed.config is None:  # _resume_point refuses such a checkpoint
        raise UsageError("--resume: the checkpoint holds no training config")
    saved = resumed.config.to_dict()
    for name, value in given.items():
        if name != "epochs" and value != saved[name]:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"--resume: the run was made with {flag} {saved[name]}, got {value}")
    epochs = given.get("epochs", saved["epochs"])
    _controls.check_resumed_epochs(saved, epochs)
    if epochs < resumed.epoch:
        raise UsageError(
            f"--resume: --epochs {epochs} is fewer than the {resumed.epoch} already run"
        )
    return train.TrainConfig(**{**saved, "epochs": epochs, "devices": devices})


class _Log:
    """Progress output: a tqdm bar on a terminal, one line per epoch otherwise."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = not quiet and sys.stderr.isatty()

    def line(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def start(
        self,
        config: train.TrainConfig,
        start: _Start,
        data: Data,
        devices: int | None = None,
        *,
        n_val: int = 0,
    ) -> None:
        n_params = models.count_params(start.params)
        split = f" split over {devices} devices" if devices is not None else ""
        resume = f", resuming after epoch {start.epoch}" if start.epoch else ""
        n_train, n_test = len(data.train[1]) - n_val, len(data.test[1])
        resume = (
            f", precision {config.precision}" if config.precision != "float32" else ""
        ) + resume
        val = _controls.validation_text(config, n_val)
        self.line(
            f"training {config.model} ({n_params:,} parameters) on {n_train} images of "
            f"{data.source.describe()}{val}, testing on the {n_test} test images after "
            f"training: {_controls.optimizer_text(config)}, batch "
            f"{config.batch_size}{split}, {config.epochs} epochs, seed {config.seed}, "
            f"impl {config.impl}, grads {config.grads}{resume}"
        )
        watch = _controls.watch_text(config)
        if watch:
            self.line(watch)

    def epoch(self, end: train.EpochEnd, epochs: int) -> None:
        if self.quiet or self.bar:
            return
        row = {name: values[-1] for name, values in end.history.items()}
        splits = [split for split in ("train", "val") if f"{split}_loss" in row]
        metrics = ", ".join(
            f"{split} loss {row[f'{split}_loss']:.4f} acc {100 * row[f'{split}_accuracy']:.2f}%"
            for split in splits
        )
        print(f"epoch {end.epoch}/{epochs}: {metrics} ({end.seconds:.2f} s)", flush=True)
