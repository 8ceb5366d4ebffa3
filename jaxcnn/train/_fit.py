"""The training loop: compiled epochs, history, progress bar, divergence check."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from jaxcnn import _checks
from jaxcnn.errors import InputError, InputTypeError, JaxcnnError
from jaxcnn.layers import Layer, Params
from jaxcnn.train import _feed, _sharding
from jaxcnn.train._dataset import Dataset, check_dataset, check_finite_tree, effective_batch_size
from jaxcnn.train._epoch import Metrics, check_grads, evaluate_arrays, make_epoch_fn
from jaxcnn.train._loss import Loss, resolve_loss
from jaxcnn.train._precision import check_precision
from jaxcnn.train._stopping import Best, best_epoch, check_monitor, check_patience, should_stop

History: TypeAlias = dict[str, list[float]]
"""Per-epoch ``train_loss``, ``train_accuracy`` and, with ``val``,
``val_loss``, ``val_accuracy`` (Python floats, one entry per epoch)."""


class TrainingDivergedError(JaxcnnError, RuntimeError):
    """The training loss stopped being finite (NaN or infinity).

    Attributes:
      epoch: the 1-based epoch whose loss was not finite.
      history: the history of the epochs before it (all finite).
    """

    def __init__(self, epoch: int, loss: float, history: History) -> None:
        super().__init__(
            f"fit: training diverged in epoch {epoch}: the mean training loss is {loss} "
            f"(try a smaller learning rate)"
        )
        self.epoch = epoch
        self.history = history


class EpochEnd(NamedTuple):
    """What ``on_epoch`` receives after each finished (finite) epoch.

    ``params`` and ``opt_state`` are host (NumPy) copies, safe to keep.
    """

    epoch: int  # epochs completed so far (1-based), counting those before a resume
    params: Params
    opt_state: Any
    history: History
    seconds: float  # wall time of this epoch, including compilation for the first one


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns; it unpacks as ``params, history = fit(...)``.

    Attributes:
      params: the parameters after the last epoch run.
      history: per-epoch metrics (:data:`History`), one entry per epoch run,
        counting those before a resume.
      opt_state: the optimizer state after the last epoch (pass it back as
        ``opt_state=`` to continue training).
      epoch: epochs completed, fewer than ``epochs`` when stopped early.
      stopped_early: whether ``patience`` ended the run before ``epochs``.
      best: the best epoch of ``history`` by ``monitor`` (:class:`Best`), or
        ``None`` without ``val``.
      best_params: the parameters after that epoch; ``None`` without ``val``,
        or when the best epoch ran before this call (before a resume).
    """

    params: Params
    history: History
    opt_state: Any = None
    epoch: int = 0
    stopped_early: bool = False
    best: Best | None = None
    best_params: Params | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.params, self.history))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> Any:
        return (self.params, self.history)[index]


def fit(
    model: Layer,
    params: Params,
    train: Any,
    *,
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int,
    key: jax.Array,
    val: Any = None,
    loss: Loss = None,
    grads: str = "autodiff",
    on_epoch: Callable[[EpochEnd], None] | None = None,
    opt_state: Any = None,
    start_epoch: int = 0,
    history: History | None = None,
    progress: bool = True,
    unroll: int = 1,
    eval_batch_size: int | None = None,
    devices: int | None = None,
    mesh: Any = None,
    precision: str = "float32",
    patience: int | None = None,
    monitor: str = "val_loss",
) -> FitResult:
    """Train ``model`` with mini-batch ``optimizer`` steps; one compiled function per epoch.

    Epoch ``e`` (0-based) visits every training sample once, in the order
    ``permutation(fold_in(key, e))``, in ``ceil(N / batch_size)`` steps; the
    short last batch is padded and masked, so its gradient is the mean over
    its real samples (see :func:`make_epoch_fn`). The same arguments give
    bit-identical parameters and history, and a run resumed from epoch ``k``
    (``start_epoch=k`` with the params, ``opt_state`` and history saved
    after epoch ``k``) ends exactly as the uninterrupted run.

    Args:
      model: the network.
      params: initial parameters (not modified; copied before donation).
      train: ``(images [N, H, W, C], labels [N])``.
      optimizer: an optax ``GradientTransformation`` (see ``make_optimizer``).
      epochs: total number of epochs; runs epochs ``start_epoch .. epochs-1``.
      batch_size: samples per step. A batch larger than the data set is
        clamped to ``N`` (rounded up to a multiple of the device count): the
        same single full-batch step per epoch, without the padding's memory.
      key: PRNG key of the batch order.
      val: optional ``(images, labels)`` evaluated after every epoch.
      loss: None (the model's ``config["loss"]``, set by ``serial(...,
        loss=NAME)``), a name of :data:`jaxcnn.ops.LOSSES`, or a function
        ``(logits, labels, weights) -> scalar`` returning the weighted mean
        (weights are 0 for the padding of a short last batch).
      grads: ``"autodiff"`` (``jax.grad`` of ``model.apply``) or ``"manual"``
        (the article's hand-derived backward, ``jaxcnn.manual``).
      on_epoch: called with an :class:`EpochEnd` after each epoch (e.g. to
        write a checkpoint). Not called for a diverged epoch.
      opt_state: optimizer state to resume from (default ``optimizer.init``).
      start_epoch: number of epochs already done (for resuming).
      history: history of those epochs (copied, not modified).
      progress: show a tqdm bar over epochs (hidden when not a terminal).
      unroll: ``lax.scan`` unroll factor of the epoch (speed only).
      eval_batch_size: batch size of the ``val`` evaluation (memory and speed
        only); default ``batch_size``, so that the evaluation's layers have the
        training forward pass's shapes (on a GPU, XLA then reuses the training
        program's convolution autotuning instead of autotuning again).
      devices: data parallelism: split every batch over the first
        ``devices`` devices (``batch_size`` must be divisible by it); params,
        optimizer state and data are replicated, the gradient is still the
        mean over the global batch. Default: one device, as without it.
        The returned params are then replicated on those devices.
      mesh: or split every batch over all devices of this
        ``jax.sharding.Mesh``. A mesh (or ``devices``) spanning several
        processes (after :func:`~jaxcnn.train.init_distributed`) trains with
        process-local data: every process calls ``fit`` with the same
        arguments and its host copy of ``train`` (NumPy or memory-mapped
        arrays, never copied whole to a device), and puts only its own share
        of each batch on its devices. See docs/scaling.md.
        Streamed images (a ``numpy.memmap``, :class:`jaxcnn.data.ImageRows`
        or another array-like, see :func:`~jaxcnn.train._feed.is_streamed`)
        are fed the same way in one process: a chunk of steps at a time, so
        memory does not grow with the data set (docs/data.md).
      precision: ``"float32"`` (default), or ``"bf16"``: each step's forward
        and backward passes in bfloat16 over float32 parameters, optimizer
        state, gradients and loss (mixed precision; faster on GPUs, slower
        on CPUs). ``val`` is evaluated in float32.
      patience: early stopping: stop once this many epochs in a row have
        not improved ``monitor`` (needs ``val``); checked before every epoch,
        so a resumed run that had stopped stays stopped. ``None``: run all
        ``epochs``. See :func:`should_stop`.
      monitor: the validation metric that picks the best epoch and drives
        ``patience``: ``"val_loss"`` (lower is better) or ``"val_accuracy"``.

    Returns:
      a :class:`FitResult`: ``params, history = fit(...)`` unpacks it, and it
      also carries the final ``opt_state``, the epochs run, and the best
      epoch and its parameters.

    Raises:
      InputError: bad data (checked before compiling: finite images, labels
        in the model's range, matching counts), non-finite ``params``, or
        another bad argument; the message names it.
      TrainingDivergedError: if an epoch's mean training loss is not finite
        (the data and parameters were valid, so the training itself diverged).
    """
    mesh = _sharding.resolve_mesh("fit", devices=devices, mesh=mesh)
    across = mesh is not None and _feed.spans_processes(mesh)  # process-local data
    host = across or streamed_pair(train)  # data fed from the host, a chunk at a time
    if host and mesh is None:
        mesh = _feed.single_device_mesh()
    check = _feed.check_host_dataset if host else check_dataset
    images, labels = check("fit", "train", train, model=model, params=params)
    val_arrays = None if val is None else check("fit", "val", val, model=model, params=params)
    check_finite_tree("fit", "params", params)
    batch_size = _checks.positive_int("fit", "batch_size", batch_size)
    epochs = _checks.positive_int("fit", "epochs", epochs)
    start_epoch = _check_start(start_epoch, epochs)
    _check_key(key)
    grads = check_grads("fit", grads)
    precision = check_precision("fit", precision)
    if eval_batch_size is None:
        eval_batch_size = batch_size
    monitor = check_monitor("fit", monitor)
    patience = check_patience("fit", patience)
    if patience is not None and val is None:
        raise InputError(f"fit: patience needs val=(images, labels) to monitor {monitor!r}")
    resolve_loss("fit", model, loss, grads)  # a bad loss fails here, naming fit
    batch_size = effective_batch_size(batch_size, len(labels), 1 if mesh is None else mesh.size)
    if mesh is None:
        epoch_fn = make_epoch_fn(
            model,
            optimizer,
            batch_size=batch_size,
            grads=grads,
            unroll=unroll,
            loss=loss,
            precision=precision,
        )
    elif host:
        epoch_fn = _feed.fed_epoch_fn(
            model,
            optimizer,
            batch_size=batch_size,
            grads=grads,
            unroll=unroll,
            mesh=_feed.check_mesh_covers_processes("fit", mesh),
            loss=loss,
            precision=precision,
        )
    else:
        epoch_fn = _sharding.sharded_epoch_fn(
            model,
            optimizer,
            batch_size=batch_size,
            grads=grads,
            unroll=unroll,
            mesh=mesh,
            loss=loss,
            precision=precision,
        )
    params = jax.tree.map(jnp.array, params)  # private copies: the epoch function donates them
    opt_state = optimizer.init(params) if opt_state is None else jax.tree.map(jnp.array, opt_state)
    if host:  # params and optimizer state replicated; data fed per chunk of steps (_feed)
        params, opt_state = _sharding.replicate((params, opt_state), mesh)
    elif mesh is not None:  # everything replicated on every device of the mesh
        placed = _sharding.replicate((params, opt_state, images, labels, key, val_arrays), mesh)
        params, opt_state, images, labels, key, val_arrays = placed
    evaluate_val = _val_evaluator(model, val_arrays, eval_batch_size, mesh, host, loss)
    history = _start_history(history, start_epoch, with_val=val is not None)
    bar = tqdm(
        total=epochs, initial=start_epoch, desc="train", unit="epoch", disable=not progress or None
    )
    best_params = None
    with bar:
        for epoch in range(start_epoch, epochs):
            if should_stop(history, monitor, patience):
                break
            started = time.perf_counter()
            params, opt_state, metrics = epoch_fn(
                params, opt_state, images, labels, key, np.int32(epoch)
            )
            row = _epoch_row(metrics, params, evaluate_val)
            if not math.isfinite(row["train_loss"]):
                raise TrainingDivergedError(epoch + 1, row["train_loss"], history)
            for name, value in row.items():
                history[name].append(value)
            if val is not None and _is_best(history, monitor, epoch + 1):
                best_params = jax.tree.map(jnp.copy, params)  # params are donated next epoch
            bar.set_postfix({name: f"{value:.4g}" for name, value in row.items()}, refresh=False)
            bar.update()
            if on_epoch is not None:
                seconds = time.perf_counter() - started
                snapshot = {name: list(values) for name, values in history.items()}
                on_epoch(
                    EpochEnd(epoch + 1, _to_host(params), _to_host(opt_state), snapshot, seconds)
                )
    done = len(history["train_loss"])
    return FitResult(
        params,
        history,
        opt_state,
        epoch=done,
        stopped_early=done < epochs,
        best=None if val is None else best_epoch(history, monitor),
        best_params=best_params,
    )


def streamed_pair(data: Any) -> bool:
    """Whether ``data`` is an ``(images, labels)`` pair whose images are streamed from the host."""
    return isinstance(data, tuple | list) and len(data) == 2 and _feed.is_streamed(data[0])


def _is_best(history: History, monitor: str, epoch: int) -> bool:
    best = best_epoch(history, monitor)
    return best is not None and best.epoch == epoch


def _val_evaluator(
    model: Layer, val: Any, batch_size: int, mesh: Any, across: bool, loss: Loss
) -> Callable[[Params], Metrics] | None:
    """``params -> Metrics`` on the validation set (device scalars), or ``None`` without one."""
    if val is None:
        return None
    if across:
        return _feed.evaluator(model, val, batch_size=batch_size, mesh=mesh, loss=loss)
    sharding = None if mesh is None else _sharding.batch_sharding(mesh)
    return lambda params: evaluate_arrays(
        model, params, *val, batch_size=batch_size, batch_sharding=sharding, loss=loss
    )


def _epoch_row(
    train_metrics: Metrics,
    params: Params,
    evaluate_val: Callable[[Params], Metrics] | None,
) -> dict[str, float]:
    """One history row; the single host sync of an epoch."""
    metrics = {"train": train_metrics}
    if evaluate_val is not None:
        metrics["val"] = evaluate_val(params)
    values = jax.device_get(metrics)
    return {
        f"{split}_{name}": float(getattr(m, name))
        for split, m in values.items()
        for name in Metrics._fields
    }


def _start_history(history: History | None, start_epoch: int, *, with_val: bool) -> History:
    names = [f"{split}_{name}" for split in ("train", "val") for name in Metrics._fields]
    names = names if with_val else names[:2]
    if history is None:
        if start_epoch:
            raise InputError(f"fit: start_epoch={start_epoch} needs the history of those epochs")
        return {name: [] for name in names}
    lengths = {name: len(history.get(name, [])) for name in names}
    if set(history) != set(names) or set(lengths.values()) != {start_epoch}:
        raise InputError(
            f"fit: history must hold {start_epoch} entries (start_epoch) for each of {names}, "
            f"got {lengths} for keys {sorted(history)}"
        )
    return {name: list(history[name]) for name in names}


def _check_start(start_epoch: Any, epochs: int) -> int:
    if isinstance(start_epoch, bool) or not isinstance(start_epoch, int):
        raise InputTypeError(f"fit: start_epoch must be an int, got {start_epoch!r}")
    if not 0 <= start_epoch <= epochs:
        raise InputError(f"fit: start_epoch must be in [0, epochs={epochs}], got {start_epoch}")
    return start_epoch


def _check_key(key: Any) -> None:
    """Accept a typed PRNG key or a raw ``uint32[2]`` one."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    typed = dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key) and shape == ()
    if not (typed or (dtype == jnp.uint32 and shape == (2,))):
        raise InputTypeError(
            f"fit: key must be a PRNG key (jax.random.key(seed)), got {type(key).__name__} "
            f"with dtype {dtype} and shape {shape}"
        )


def _to_host(tree: Any) -> Any:
    """NumPy copies of every array (the device buffers are donated next epoch)."""
    return jax.tree.map(np.array, jax.device_get(tree))


def evaluate(
    model: Layer,
    params: Params,
    data: Dataset,
    *,
    batch_size: int = 1000,
    devices: int | None = None,
    mesh: Any = None,
    loss: Loss = None,
) -> Metrics:
    """Mean loss and accuracy of ``model`` on a whole data set.

    Runs one jitted scan over padded, masked batches of ``min(batch_size,
    N)`` samples, so any data-set size compiles once.

    Args:
      model: the network.
      params: its parameters.
      data: ``(images [N, H, W, C], labels [N])``.
      batch_size: samples per forward pass (memory, not results).
      devices: split each batch over the first ``devices`` devices (data
        parallel, see docs/scaling.md); the batch is rounded up to a multiple
        of the device count (the padding is masked).
      mesh: or split it over every device of this ``jax.sharding.Mesh``.
      loss: the loss to report, as for :func:`fit` (default: the model's).

    Returns:
      :class:`Metrics` of Python floats.

    Raises:
      InputError: bad data (non-finite images, labels outside the model's
        range, mismatched counts) or non-finite ``params``.
    """
    resolved = _sharding.resolve_mesh("evaluate", devices=devices, mesh=mesh)
    across = resolved is not None and _feed.spans_processes(resolved)  # process-local data
    if across or streamed_pair(data):
        resolved = resolved if resolved is not None else _feed.single_device_mesh()
        host = _feed.check_host_dataset("evaluate", "data", data, model=model, params=params)
        check_finite_tree("evaluate", "params", params)
        batch_size = _checks.positive_int("evaluate", "batch_size", batch_size)
        metrics = _feed.evaluate_across_processes(
            model, params, host, batch_size=batch_size, mesh=resolved, loss=loss
        )
        return Metrics(float(metrics.loss), float(metrics.accuracy))
    images, labels = check_dataset("evaluate", "data", data, model=model, params=params)
    check_finite_tree("evaluate", "params", params)
    batch_size = _checks.positive_int("evaluate", "batch_size", batch_size)
    if devices is not None or mesh is not None:
        metrics = _sharding.evaluate_sharded(
            model,
            params,
            images,
            labels,
            batch_size=batch_size,
            devices=devices,
            mesh=mesh,
            loss=loss,
        )
    else:
        metrics = evaluate_arrays(model, params, images, labels, batch_size=batch_size, loss=loss)
    return Metrics(float(metrics.loss), float(metrics.accuracy))
