"""Compiled epochs: one jitted function trains a whole epoch, one evaluates a data set.

Both scan over fixed-size batches of indices into data arrays that are passed
as *arguments* (a jitted function that closes over a data set embeds it as a
constant and compiles for minutes). The number of samples rarely divides by
the batch size, so the index list is padded to a whole number of batches and
every sample carries a weight: 1 for a real sample, 0 for padding. Losses are
``sum(weight * loss) / sum(weight)``, so the short last batch's gradient is
the mean over its real samples, exactly the article's ``bs = len(batch_idx)``,
and no batch ever has a different shape (one compile per data-set size).
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxcnn import _checks, models
from jaxcnn._xla_options import EPOCH_COMPILER_OPTIONS
from jaxcnn.layers import ApplyFn, Layer, Params

Dataset: TypeAlias = tuple[Any, Any]
"""``(images [N, H, W, C] float, labels [N] int)``."""
LossFn: TypeAlias = Callable[..., jax.Array]
EpochFn: TypeAlias = Callable[..., tuple[Params, Any, "Metrics"]]


class Metrics(NamedTuple):
    """Mean loss and accuracy over a data set (scalars)."""

    loss: Any  # shape=(), float
    accuracy: Any  # shape=(), float in [0, 1]


def batch_plan(
    n: int, batch_size: int, order: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Sample indices and weights for ``ceil(n / batch_size)`` equal batches.

    Args:
      n: number of samples.
      batch_size: samples per batch.
      order: ``[n]`` int, the order to visit samples in (default ``0..n-1``).

    Returns:
      ``(index, weight)``: ``index: [steps, batch_size]`` int32, every sample
      exactly once, then padding that repeats sample 0; ``weight: [steps,
      batch_size]`` float32, 1 for real samples and 0 for padding.
    """
    steps = math.ceil(n / batch_size)
    order = jnp.arange(n, dtype=jnp.int32) if order is None else order.astype(jnp.int32)
    padding = jnp.zeros(steps * batch_size - n, jnp.int32)
    index = jnp.concatenate([order, padding]).reshape(steps, batch_size)
    weight = (jnp.arange(steps * batch_size) < n).astype(jnp.float32)
    return index, weight.reshape(steps, batch_size)


def epoch_order(key: jax.Array, epoch: jax.Array, n: int) -> jax.Array:
    """The epoch's shuffle: a permutation of ``0..n-1`` drawn from ``fold_in(key, epoch)``.

    Depending only on ``(key, epoch)`` makes a resumed run see the same batches.
    """
    return jax.random.permutation(jax.random.fold_in(key, epoch), n)


def hits(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``[N]`` float32, 1 where the prediction is right.

    One logit (``[N, 1]``): predicts 1 when the logit is > 0 (sigmoid > 0.5).
    ``K`` logits (``[N, K]``): predicts the argmax.
    """
    if logits.shape[-1] == 1:
        predicted = (logits[:, 0] > 0).astype(labels.dtype)
    else:
        predicted = jnp.argmax(logits, axis=-1).astype(labels.dtype)
    return (predicted == labels).astype(jnp.float32)


def training_apply(model: Layer, grads: str) -> ApplyFn:
    """The apply function to differentiate: the model's, or its manual-gradient twin."""
    if grads == "autodiff":
        return model.apply
    if grads == "manual":
        # Imported here: jaxcnn.manual is an optional layer between models and train.
        manual = importlib.import_module("jaxcnn.manual")
        return manual.with_manual_grads(model).apply
    raise ValueError(f"fit: grads must be 'autodiff' or 'manual', got {grads!r}")


class EpochSpec(NamedTuple):
    """The static part of a training epoch (hashable: the key of its compile cache)."""

    apply: ApplyFn  # the function differentiated
    loss: LossFn  # loss(logits, labels, *, weights)
    optimizer: optax.GradientTransformation
    batch_size: int
    unroll: int
    batch_sharding: Any  # None, or the sharding each batch of images is constrained to


def make_epoch_fn(
    model: Layer,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    grads: str = "autodiff",
    unroll: int = 1,
    batch_sharding: Any = None,
    jit_kwargs: Mapping[str, Any] | None = None,
) -> EpochFn:
    """Compile-once training epoch: ``epoch_fn(params, opt_state, images, labels, key, epoch)``.

    The jitted function shuffles with :func:`epoch_order`, scans
    ``ceil(N / batch_size)`` optimizer steps over :func:`batch_plan`
    batches, and returns ``(params, opt_state, Metrics)`` where the metrics
    are the mean training loss and accuracy of the epoch, each batch measured
    before its update (as Keras reports them). ``params`` and ``opt_state``
    are donated: do not use the arrays passed in afterwards.

    Without ``jit_kwargs`` every call with the same model, optimizer object,
    batch size and data shapes shares one compiled function (the static
    :class:`EpochSpec` is the cache key), so repeated ``fit`` calls do not
    recompile.

    Args:
      model: the network; its loss comes from :func:`jaxcnn.models.loss_fn`.
      optimizer: an optax ``GradientTransformation``.
      batch_size: samples per step.
      grads: ``"autodiff"`` or ``"manual"`` (see :func:`training_apply`).
      unroll: ``lax.scan`` unroll factor (speed only).
      batch_sharding: optional sharding each batch's images are constrained
        to, for data parallelism: e.g. a ``NamedSharding`` splitting the batch
        axis over a mesh with ``AxisType.Auto`` axes (``jit_kwargs`` can then
        replicate params and optimizer state with ``in_shardings``).
      jit_kwargs: extra ``jax.jit`` arguments, e.g. ``in_shardings``; the
        function is then jitted afresh.

    Shapes:
      images: ``[N, H, W, C]``; labels: ``[N]``; key: a PRNG key; epoch: int.
    """
    spec = EpochSpec(
        training_apply(model, grads),
        models.loss_fn(model),
        optimizer,
        _checks.positive_int("make_epoch_fn", "batch_size", batch_size),
        _checks.positive_int("make_epoch_fn", "unroll", unroll),
        batch_sharding,
    )
    if jit_kwargs:
        options = {"compiler_options": EPOCH_COMPILER_OPTIONS, "donate_argnums": (0, 1)}
        return jax.jit(functools.partial(_train_epoch, spec=spec), **{**options, **jit_kwargs})
    return functools.partial(train_epoch, spec=spec)


def _train_epoch(
    params: Params,
    opt_state: Any,
    images: Any,
    labels: Any,
    key: Any,
    epoch: Any,
    *,
    spec: EpochSpec,
) -> tuple[Params, Any, Metrics]:
    n = images.shape[0]
    plan = batch_plan(n, spec.batch_size, epoch_order(key, epoch, n))
    step = functools.partial(_train_step, spec, (images, labels))
    carry, (loss_sums, hit_counts) = lax.scan(step, (params, opt_state), plan, unroll=spec.unroll)
    return (*carry, Metrics(jnp.sum(loss_sums) / n, jnp.sum(hit_counts) / n))


train_epoch = jax.jit(
    _train_epoch,
    static_argnames="spec",
    donate_argnums=(0, 1),
    compiler_options=EPOCH_COMPILER_OPTIONS,
)
"""The jitted epoch shared by every :func:`make_epoch_fn` without ``jit_kwargs``."""


def _train_step(
    spec: EpochSpec, data: Dataset, carry: Any, batch: tuple[jax.Array, jax.Array]
) -> Any:
    """One optimizer step on the batch ``data[index]``; returns its loss sum and hit count."""
    params, opt_state = carry
    index, weight = batch
    x, y = data[0][index], data[1][index]
    if spec.batch_sharding is not None:
        x = lax.with_sharding_constraint(x, spec.batch_sharding)

    def batch_loss(params: Params) -> Any:
        logits = spec.apply(params, x)
        return spec.loss(logits, y, weights=weight), logits

    (value, logits), grad = jax.value_and_grad(batch_loss, has_aux=True)(params)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int step counts and floats
        updates, opt_state = spec.optimizer.update(grad, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state), (value * jnp.sum(weight), jnp.sum(weight * hits(logits, y)))


def evaluate(
    model: Layer,
    params: Params,
    data: Dataset,
    *,
    batch_size: int = 1000,
    devices: int | None = None,
    mesh: Any = None,
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

    Returns:
      :class:`Metrics` of Python floats.
    """
    images, labels = check_dataset("evaluate", "data", data)
    batch_size = _checks.positive_int("evaluate", "batch_size", batch_size)
    if devices is not None or mesh is not None:
        # Imported here: jaxcnn._parallel builds on this module.
        parallel = importlib.import_module("jaxcnn._parallel")
        metrics = parallel.evaluate_sharded(
            model, params, images, labels, batch_size=batch_size, devices=devices, mesh=mesh
        )
    else:
        metrics = evaluate_arrays(model, params, images, labels, batch_size=batch_size)
    return Metrics(float(metrics.loss), float(metrics.accuracy))


def evaluate_arrays(
    model: Layer,
    params: Params,
    images: jax.Array,
    labels: jax.Array,
    *,
    batch_size: int,
    batch_sharding: Any = None,
) -> Metrics:
    """:func:`evaluate` on checked arrays, returning device scalars (no host sync).

    With ``batch_sharding`` (split over ``d`` devices) each batch is
    constrained to it and the batch size rounded up to a multiple of ``d``.
    """
    batch_size = min(batch_size, images.shape[0])
    if batch_sharding is not None:
        shards = batch_sharding.num_devices
        batch_size = -(-batch_size // shards) * shards
    return _evaluate_jit(
        params,
        images,
        labels,
        apply=model.apply,
        loss=models.loss_fn(model),
        batch_size=batch_size,
        batch_sharding=batch_sharding,
    )


@functools.partial(
    jax.jit,
    static_argnames=("apply", "loss", "batch_size", "batch_sharding"),
    compiler_options=EPOCH_COMPILER_OPTIONS,
)
def _evaluate_jit(
    params: Params,
    images: jax.Array,
    labels: jax.Array,
    *,
    apply: ApplyFn,
    loss: LossFn,
    batch_size: int,
    batch_sharding: Any = None,
) -> Metrics:
    n = images.shape[0]

    def body(carry: Any, batch: tuple[jax.Array, jax.Array]) -> Any:
        index, weight = batch
        x = images[index]
        if batch_sharding is not None:
            x = lax.with_sharding_constraint(x, batch_sharding)
        logits = apply(params, x)
        y = labels[index]
        return carry, (loss(logits, y, weights=weight) * jnp.sum(weight), weight @ hits(logits, y))

    _, (loss_sums, hit_counts) = lax.scan(body, None, batch_plan(n, batch_size))
    return Metrics(jnp.sum(loss_sums) / n, jnp.sum(hit_counts) / n)


def check_dataset(fn: str, name: str, data: Any) -> tuple[jax.Array, jax.Array]:
    """Validate an ``(images, labels)`` pair; return it as jax arrays."""
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise TypeError(f"{fn}: {name} must be an (images, labels) pair, got {type(data).__name__}")
    images, labels = jnp.asarray(data[0]), jnp.asarray(data[1])
    if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(
            f"{fn}: {name} images must be a 4-D (N, H, W, C) float array, "
            f"got shape {tuple(images.shape)} dtype {images.dtype}"
        )
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"{fn}: {name} labels must have shape (N,) = ({images.shape[0]},), "
            f"got {tuple(labels.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{fn}: {name} must hold at least one sample, got 0")
    return images, labels
